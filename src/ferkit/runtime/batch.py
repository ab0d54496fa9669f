"""Recognise expressions in many image files: expand inputs, decode safely, batch, report failures.

Usage::

    for item in predict_files(["photos/", "*.jpg"], recognizer):
        item.path, item.faces, item.error       # error is a message when the file was bad
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.errors import DataError
from ferkit.imageio import check_file, is_image_name, read_image
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


def predict_files(
    paths: list[str],
    recognizer: Recognizer,
    *,
    batch_size: int = 16,
    keep_images: bool = False,
    max_pixels: int | None = None,
) -> Iterator[ImageResult]:
    """Yield one result per path, in order; unreadable files yield their error and the job goes on."""
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
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
        faces = recognizer.recognize_batch(images) if images else []
        it = iter(faces)
        for result in results:
            if result.error is None:
                result.faces = next(it)
            yield result


def output_name(path: str, out_dir: Path, used: set[str]) -> Path:
    """A unique PNG name in ``out_dir`` for an input path (same stems in different folders)."""
    stem = Path(path).stem or "image"
    name, k = f"{stem}.png", 1
    while name in used:
        name, k = f"{stem}_{k}.png", k + 1
    used.add(name)
    return out_dir / name
