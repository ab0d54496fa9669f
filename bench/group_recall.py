"""Face-detection recall on collages and group pictures, per BlazeFace tiling mode.

Usage::

    python bench/group_recall.py [--seeds 5]

Made from the openly licensed portraits in ``examples/photos`` (see its SOURCES.md):

- **collages**: g x g grids (g = 2, 3, 4) of the portraits on square canvases of 800, 1280
  and 1920 px; each cell's true box is the face found in the full-size portrait, scaled;
- **group pictures**: 12 face crops pasted at random, not overlapping, on a 1280x720 or
  1920x1080 textured background, at face widths from 24 to 120 px.

A detection finds a true face when their boxes overlap with IoU >= 0.3. Prints recall,
false detections and milliseconds per image for tiles=never / auto / always, with the CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ferkit.runtime.detect import create_detector
from ferkit.utils import cpu_description

PHOTOS = Path(__file__).resolve().parents[1] / "examples" / "photos"
# Each portrait's face box (x, y, w, h) at full size: the scenes' ground truth. Fixed here, as
# BlazeFace found them at 55ccb65, rather than found on each run: a scene's layout follows its
# crops' sizes, so a detector change that moved one box by a pixel would otherwise compare
# different pictures.
PORTRAITS = {
    "grace_hopper.jpg": (158, 118, 210, 210),
    "eileen_collins.jpg": (173, 68, 107, 107),
    "cameraman.jpg": (203, 125, 71, 71),
}
MODES = ("never", "auto", "always")


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def portraits() -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Each portrait (and a mirrored copy) with its face box."""
    out = []
    for name, box in PORTRAITS.items():
        rgb = cv2.cvtColor(cv2.imread(str(PHOTOS / name)), cv2.COLOR_BGR2RGB)
        x, y, w, h = box
        out.append((rgb, box))
        out.append((rgb[:, ::-1].copy(), (rgb.shape[1] - x - w, y, w, h)))
    return out


def collage(people, grid: int, side: int):
    cell = side // grid
    canvas = np.zeros((cell * grid, cell * grid, 3), np.uint8)
    truth = []
    for k in range(grid * grid):
        img, (x, y, w, h) = people[k % len(people)]
        r, c = divmod(k, grid)
        canvas[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = cv2.resize(
            img, (cell, cell), interpolation=cv2.INTER_AREA
        )
        sx, sy = cell / img.shape[1], cell / img.shape[0]
        truth.append((c * cell + x * sx, r * cell + y * sy, w * sx, h * sy))
    return canvas, truth


def group(people, size: tuple[int, int], widths, rng):
    width, height = size
    noise = rng.integers(60, 200, (height // 16 + 1, width // 16 + 1, 3)).astype(np.uint8)
    canvas = cv2.GaussianBlur(cv2.resize(noise, (width, height)), (0, 0), 3)
    truth: list = []
    for k in range(12):
        img, (x, y, w, h) = people[k % len(people)]
        m = int(0.6 * w)  # the crop keeps hair, neck and some background around the face
        x0, y0 = max(0, x - m), max(0, y - m)
        crop = img[y0 : min(img.shape[0], y + h + m), x0 : min(img.shape[1], x + w + m)]
        scale = widths[k % len(widths)] / w
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        ch, cw = crop.shape[:2]
        for _ in range(200):  # a free place
            px, py = int(rng.integers(0, width - cw)), int(rng.integers(0, height - ch))
            if all(
                px + cw < tx or tx + tw < px or py + ch < ty or ty + th < py for tx, ty, tw, th, *_ in truth
            ):
                break
        else:
            continue
        canvas[py : py + ch, px : px + cw] = crop
        truth.append((px, py, cw, ch, px + (x - x0) * scale, py + (y - y0) * scale, w * scale, h * scale))
    return canvas, [t[4:] for t in truth]


def score(detector, image, truth) -> tuple[int, int, float]:
    start = time.perf_counter()
    found = [f.box for f in detector.detect(image)]
    ms = (time.perf_counter() - start) * 1000
    hit = sum(any(iou(t, f) >= 0.3 for f in found) for t in truth)
    false = sum(not any(iou(t, f) >= 0.3 for t in truth) for f in found)
    return hit, false, ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="group pictures per size")
    args = parser.parse_args()
    people = portraits()
    detectors = {mode: create_detector("blazeface", tiles=mode) for mode in MODES}
    scenes = []
    for grid in (2, 3, 4):
        for side in (800, 1280, 1920):
            image, truth = collage(people, grid, side)
            scenes.append((f"collage {grid}x{grid}, {side} px", image, truth))
    rng = np.random.default_rng(0)
    for size in ((1280, 720), (1920, 1080)):
        for widths, label in (((24, 32), "24-32 px"), ((48, 64), "48-64 px"), ((96, 120), "96-120 px")):
            for _ in range(args.seeds):
                image, truth = group(people, size, widths, rng)
                scenes.append((f"group {size[0]}x{size[1]}, faces {label}", image, truth))
    print(f"CPU: {cpu_description()}; BlazeFace full range, ONNX Runtime, 2 threads\n", file=sys.stderr)
    print("| scene | faces | " + " | ".join(f"{m}: found, false, ms" for m in MODES) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in MODES) + " |")
    rows: dict[str, list] = {}
    for name, image, truth in scenes:
        rows.setdefault(name, []).append([len(truth)] + [score(detectors[m], image, truth) for m in MODES])
    totals = {m: [0, 0, 0.0, 0] for m in MODES}
    n_faces = 0
    for name, runs in rows.items():
        faces = sum(r[0] for r in runs)
        n_faces += faces
        cells = []
        for i, mode in enumerate(MODES, 1):
            hit = sum(r[i][0] for r in runs)
            false = sum(r[i][1] for r in runs)
            ms = np.mean([r[i][2] for r in runs])
            totals[mode][0] += hit
            totals[mode][1] += false
            totals[mode][2] += sum(r[i][2] for r in runs)
            totals[mode][3] += len(runs)
            cells.append(f"{hit} ({hit / faces:.0%}), {false}, {ms:.0f}")
        print(f"| {name} | {faces} | " + " | ".join(cells) + " |")
    cells = [f"{t[0]} ({t[0] / n_faces:.1%}), {t[1]}, {t[2] / t[3]:.0f}" for t in (totals[m] for m in MODES)]
    print(f"| **all** | {n_faces} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
