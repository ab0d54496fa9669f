"""Faces near the camera: how often each BlazeFace model finds them, and how often the default
model then reads their expression right, in 640x480 frames.

Usage::

    python bench/near_faces.py [--data ../shared/datasets/sfew] [--split Val]

Each labelled SFEW 2.0 face (aligned film crops, 720x576) is shrunk to a given width and
pasted in the middle of a grey 640x480 frame, as a face at a webcam or a selfie camera would
fill it (240 px: about arm's length; 400 px: closer). Every frame goes through
``Recognizer(detector=...)`` (``fast``, flip TTA, as ``ferkit predict`` reads a photo); a
frame where no face is found counts as wrong. Prints faces found, expressions right (of all
frames, and of the frames where a face was found) and ms per frame, per detector and width,
with the CPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from ferkit.imageio import read_image
from ferkit.runtime.recognize import Recognizer
from ferkit.utils import cpu_description

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sfew"
DETECTORS = ("blazeface", "blazeface-short")
WIDTHS = (240, 400)


def framed(face: np.ndarray, width: int) -> np.ndarray:
    """``face`` (RGB) shrunk to ``width`` px wide in the middle of a grey 640x480 frame."""
    height = round(face.shape[0] * width / face.shape[1])
    frame = np.full((480, 640, 3), 90, np.uint8)
    small = cv2.resize(face, (width, height), interpolation=cv2.INTER_AREA)[:480]
    y0, x0 = (480 - small.shape[0]) // 2, (640 - width) // 2
    frame[y0 : y0 + small.shape[0], x0 : x0 + width] = small
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED, help="SPLIT/LABEL/*.png folders (SFEW 2.0's)")
    parser.add_argument("--split", default="Val")
    args = parser.parse_args()
    files = sorted((args.data / args.split).glob("*/*.png"))
    if not files:
        raise SystemExit(f"no SPLIT/LABEL/*.png files under {args.data / args.split}")
    faces = [read_image(str(f), color="rgb") for f in files]
    labels = [f.parent.name.lower() for f in files]  # Angry -> angry, as the models name them
    print(f"CPU: {cpu_description()}; {len(files)} faces of {args.data / args.split}; `fast`, flip TTA\n")
    print(
        "| detector | face width in 640x480 | faces found | expression right (all frames) "
        "| right where found | ms a frame |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    recognizers = {name: Recognizer("fast", detector=name) for name in DETECTORS}
    for width in WIDTHS:
        frames = [framed(face, width) for face in faces]
        for name, rec in recognizers.items():
            found = right = 0
            start = time.perf_counter()
            for frame, label in zip(frames, labels, strict=True):
                seen = rec.recognize(frame)
                if seen:
                    found += 1
                    right += seen[0].label == label
            ms = (time.perf_counter() - start) / len(frames) * 1000
            print(
                f"| {name} | {width} px | {found} of {len(frames)} | {right / len(frames):.2%} "
                f"| {right / max(found, 1):.2%} | {ms:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
