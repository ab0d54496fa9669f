"""Recognise expressions in many image files: expand inputs, decode safely, batch, report failures.

Usage::

    for item in predict_files(["photos/", "*.jpg"], recognizer, workers=2):
        item.path, item.faces, item.error       # error is a message when the file was bad
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.errors import DataError
from ferkit.imageio import check_file, is_image_name, read_image
from ferkit.runtime.parallel import ordered_map
from ferkit.runtime.recognize import Face, Recognizer


@dataclass
class ImageResult:
    path: str
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)  # kept only when asked (annotation)


def expand_inputs(
    inputs: Iterable[str], accept: Callable[[str], bool] = is_image_name
) -> tuple[list[str], list[ImageResult]]:
    """Files, folders (recursively, names ``accept`` takes: images) and globs -> sorted paths;
    missing ones, broken symlinks and unreadable folders as errors (an error whose path is
    one of ``inputs`` is about a named input; others are inside a folder)."""
    paths: list[str] = []
    missing: list[ImageResult] = []
    for item in inputs:
        if os.path.islink(item) and not os.path.exists(item):  # dangling or a loop
            try:
                check_file(item)
            except DataError as exc:
                missing.append(ImageResult(item, error=exc.problem))
        elif os.path.isdir(item):
            # os.walk skips unreadable folders silently; each becomes an error (the top one is
            # reported under the name given, as os.walk passes it).
            for root, dirs, files in os.walk(item, onerror=lambda exc: missing.append(_unreadable(exc))):
                dirs.sort()
                paths += [os.path.join(root, f) for f in sorted(files) if accept(f) and not f.startswith(".")]
        elif os.path.exists(item):
            paths.append(item)
        else:
            matches = sorted(glob.glob(item, recursive=True))
            if matches:
                paths += [m for m in matches if not os.path.isdir(m)]  # special files: reported
            else:
                missing.append(ImageResult(item, error="no such file, folder or glob match"))
    return paths, missing


def _unreadable(exc: OSError) -> ImageResult:
    return ImageResult(str(exc.filename), error=f"folder not readable ({exc.strerror or exc})")


def auto_workers(recognizer: Recognizer) -> int:
    """How many images ``predict_files`` works on at once by default: the CPU cores (up to 4)
    for one model; 1 for an ensemble, whose several models already keep the cores busy
    (measured on 2 cores, 640x480 JPEG files: ``fast`` 6.9 -> 4.5 ms an image with 2 workers,
    ``accurate`` 8.7 -> 6.4, the ensemble 13.5 -> 14.8)."""
    from ferkit.runtime.classifier import EnsembleClassifier, default_threads

    return 1 if isinstance(recognizer.classifier, EnsembleClassifier) else default_threads()


def predict_files(
    paths: list[str],
    recognizer: Recognizer,
    *,
    batch_size: int = 16,
    keep_images: bool = False,
    max_pixels: int | None = None,
    workers: int = 1,
) -> Iterator[ImageResult]:
    """Yield one result per path, in order; unreadable files yield their error and the job goes on.

    ``workers`` > 1 decodes, detects and classifies that many chunks of images at once, each
    on its own copy of the recognizer (:meth:`Recognizer.replicas`, one thread each); results
    still come in order, at most ``2 * workers`` chunks ahead of the consumer. Closing the
    generator early (a stop) waits only for the chunks already running.
    """
    lanes = recognizer.replicas(workers) if workers > 1 and len(paths) > 1 else [recognizer]
    if len(lanes) == 1:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            yield from _recognize_chunk(chunk, recognizer, keep_images, max_pixels)
        return
    size = max(1, min(batch_size, math.ceil(len(paths) / len(lanes))))
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]

    def run(lane: Recognizer, chunk: list[str]) -> list[ImageResult]:
        return _recognize_chunk(chunk, lane, keep_images, max_pixels)

    with contextlib.closing(ordered_map(run, chunks, lanes, name="ferkit-predict")) as done:
        for _, results in done:
            yield from results


def _recognize_chunk(
    chunk: list[str], recognizer: Recognizer, keep_images: bool, max_pixels: int | None
) -> list[ImageResult]:
    """Read a few files and recognise them together (one batched classifier call)."""
    images, results = [], []
    for path in chunk:
        result = ImageResult(path)
        try:
            image = read_image(path, color="rgb", max_pixels=max_pixels)
            images.append(image)
            if keep_images:
                result.image = image
        except DataError as exc:
            result.error = exc.problem
        results.append(result)
    faces = iter(recognizer.recognize_batch(images) if images else [])
    for result in results:
        if result.error is None:
            result.faces = next(faces)
    return results


def output_name(path: str, out_dir: Path, used: set[str]) -> Path:
    """A unique PNG name in ``out_dir`` for an input path (same stems in different folders)."""
    stem = Path(path).stem or "image"
    name, k = f"{stem}.png", 1
    while name in used:
        name, k = f"{stem}_{k}.png", k + 1
    used.add(name)
    return out_dir / name
