"""How small a face each BlazeFace model finds: one look at the whole frame vs the default tiling.

Usage::

    python bench/face_sizes.py [--data ../shared/datasets/sfew] [--split Val] [--step 4]

Every ``--step``-th labelled SFEW 2.0 face (aligned film crops) is shrunk to a given width and
pasted at a random place in a 640x480 frame of blurred noise. A face counts as found when a
detection's centre falls inside it. Prints, per face width, the faces found and the other
detections, for ``tiles="never"`` (one look, and what ``process_frames`` runs between whole
searches) and ``tiles="auto"`` (the default), with the CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ferkit.imageio import read_image
from ferkit.runtime.detect import create_detector
from ferkit.utils import cpu_description
from near_faces import SHARED  # the same SFEW folders as bench/near_faces.py (run from bench/ or as a script)

WIDTHS = (32, 48, 64, 80, 100, 128, 160, 240, 320)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED, help="SPLIT/LABEL/*.png folders (SFEW 2.0's)")
    parser.add_argument("--split", default="Val")
    parser.add_argument("--step", type=int, default=4, help="take every STEP-th face")
    args = parser.parse_args()
    files = sorted((args.data / args.split).glob("*/*.png"))[:: args.step]
    if not files:
        raise SystemExit(f"no SPLIT/LABEL/*.png files under {args.data / args.split}")
    faces = [read_image(str(f), color="rgb") for f in files]
    rng = np.random.default_rng(0)
    noise = rng.integers(60, 200, (31, 41, 3)).astype(np.uint8)
    background = cv2.GaussianBlur(cv2.resize(noise, (640, 480)), (0, 0), 3)
    detectors = {
        f"{name}, tiles {tiles}": create_detector(name, tiles=tiles)
        for name in ("blazeface", "blazeface-short")
        for tiles in ("never", "auto")
    }
    print(f"CPU: {cpu_description()}; {len(files)} faces of {args.data / args.split} in 640x480 frames\n")
    print("| face width | " + " | ".join(f"{name}: found, other" for name in detectors) + " |")
    print("| ---: | " + " | ".join("---:" for _ in detectors) + " |")
    for width in WIDTHS:
        cells = {name: [0, 0] for name in detectors}
        for face in faces:
            height = min(480, round(face.shape[0] * width / face.shape[1]))
            x0, y0 = int(rng.integers(0, 640 - width + 1)), int(rng.integers(0, 480 - height + 1))
            frame = background.copy()
            frame[y0 : y0 + height, x0 : x0 + width] = cv2.resize(
                face, (width, height), interpolation=cv2.INTER_AREA
            )
            for name, detector in detectors.items():
                found = detector.detect(frame)
                inside = [
                    x0 <= d.box[0] + d.box[2] / 2 <= x0 + width
                    and y0 <= d.box[1] + d.box[3] / 2 <= y0 + height
                    for d in found
                ]
                cells[name][0] += any(inside)
                cells[name][1] += len(found) - sum(inside)
        row = " | ".join(f"{c[0] / len(faces):.0%}, {c[1]}" for c in cells.values())
        print(f"| {width} px ({width / 640:.2f}) | {row} |", flush=True)


if __name__ == "__main__":
    main()
