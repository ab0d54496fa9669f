"""Batch recognition throughput on Ray: images/s for 1 vs 2 workers, and what a cluster would cost.

Usage::

    python bench/scale.py [--n 2000] [--detector auto] [--price 0.045]

Writes ``--n`` 640x480 JPEG photos (one face each, Grace Hopper from matplotlib's sample data,
at varying scale and position on a noisy background; 1 in 100 is a corrupt file) to a
temporary folder, then times:

- ``single``: one process, ``ferkit predict``'s loop (``predict_files``): one image at a time
  on the default threads, and its default workers (one image per core, one thread each);
- ``ray-1`` / ``ray-2``: ``predict_ray`` with 1 and 2 actors (one CPU, one ONNX thread each),
  Ray already started (cluster start-up is reported separately), fresh output each time.

Then prints a plan: the measured per-worker rate extrapolated to N workers and the cost of a
million images at ``--price`` dollars per vCPU-hour (default: roughly an on-demand x86 cloud
vCPU; spot prices are 60-70% lower). Decoding and detection dominate at this size, so the
rate depends on the detector more than the classifier.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from matplotlib import cbook


def make_photos(folder: Path, n: int, seed: int = 0) -> None:
    grace = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 6)
    for i in range(n):
        path = folder / f"{i // 1000:03d}" / f"photo{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i % 100 == 99:
            path.write_bytes(b"\xff\xd8\xff\xe0 corrupt")
            continue
        side = int(rng.integers(180, 400))
        face = cv2.resize(grace, (side, int(side * grace.shape[0] / grace.shape[1])))[:480, :640]
        img = background.copy()
        y = int(rng.integers(0, 480 - face.shape[0] + 1))
        x = int(rng.integers(0, 640 - face.shape[1] + 1))
        img[y : y + face.shape[0], x : x + face.shape[1]] = face
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--model", default="default")
    ap.add_argument("--tta", default="flip")
    ap.add_argument("--partition-size", type=int, default=100)
    ap.add_argument("--price", type=float, default=0.045, help="dollars per vCPU-hour")
    args = ap.parse_args()

    import ray

    from ferkit.runtime.batch import auto_workers, expand_inputs, predict_files
    from ferkit.runtime.recognize import Recognizer
    from ferkit.scale import predict_ray

    work = Path(tempfile.mkdtemp(prefix="ferkit-scale-"))
    try:
        make_photos(work / "photos", args.n)
        paths, _ = expand_inputs([str(work / "photos")])
        rec = Recognizer(args.model, detector=args.detector, tta=args.tta)
        print(f"{args.n} photos 640x480, detector {type(rec.detector).__name__}, model {args.model}")
        rows = []
        for workers in sorted({1, auto_workers(rec)}):
            t0 = time.perf_counter()
            faces = sum(len(r.faces) for r in predict_files(paths, rec, workers=workers))
            rows.append((f"single process, {workers} worker(s)", args.n / (time.perf_counter() - t0), faces))

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        print(f"ray.init (local, 2 CPUs): {time.perf_counter() - t0:.1f} s")
        try:
            for workers in (1, 2):
                out = work / f"out-{workers}"
                t0 = time.perf_counter()
                report = predict_ray(
                    [str(work / "photos")],
                    out,
                    model=args.model,
                    detector=args.detector,
                    tta=args.tta,
                    workers=workers,
                    partition_size=args.partition_size,
                    progress=False,
                )
                rows.append((f"ray, {workers} worker(s)", args.n / (time.perf_counter() - t0), report.faces))
        finally:
            ray.shutdown()

        print("\n| engine | images/s | faces found |\n| --- | ---: | ---: |")
        for name, rate, n_faces in rows:
            print(f"| {name} | {rate:.1f} | {n_faces} |")
        ray_rate = {name: rate for name, rate, _ in rows if name.startswith("ray")}
        per_worker = ray_rate["ray, 1 worker(s)"]
        scaling = ray_rate["ray, 2 worker(s)"] / per_worker
        print(f"\n2 workers / 1 worker: {scaling:.2f}x on this 2-core machine")
        per_hour = per_worker * 3600
        cost = 1e6 / per_hour * args.price
        print(
            f"\nPlan: one worker = one vCPU = {per_worker:.1f} images/s = {per_hour / 1e3:.0f} k images/hour."
            "\n"
            f"A million images = {1e6 / per_hour:.1f} vCPU-hours = ${cost:.2f} at ${args.price}/vCPU-hour."
        )
        for n_workers in (16, 64, 256):
            minutes = 1e6 / (per_worker * n_workers) / 60
            print(f"  {n_workers:4d} workers: a million images in {minutes:.0f} min (if scaling is linear)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
