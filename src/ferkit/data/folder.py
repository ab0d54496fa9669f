"""Folders of labelled face images, as a directory or a ``.zip`` read in place.

Usage::

    ds = read_image_folder("fer2013-images.zip")     # Kaggle: train/<label>/Training_1.jpg
    ds = read_image_folder("rafdb/")                 # <split>/<label>/* or <label>/*
    write_image_folder(ds, "out/")                   # lossless PNG, Kaggle layout

Layouts: ``<root>/<split>/<label>/<file>`` or ``<root>/<label>/<file>`` (any wrapper
folders above are ignored). Labels are emotion names (any common spelling), RAF-DB
numbers (1..7), or any other names (a custom label set, sorted). The split comes from a
FER-2013 file-name prefix (``Training_``, ``PublicTest_``, ``PrivateTest_``) when there is
one, else from the split folder, else it is ``all``.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from ferkit.data.dataset import SPLIT_ROLES, FaceDataset
from ferkit.errors import DataError, ErrorLog, OnError
from ferkit.framing import frame_face
from ferkit.imageio import Color, decode_image, is_image_name, max_bytes_limit, read_bytes
from ferkit.labels import FER2013, FERPLUS, RAFDB, LabelSet, canonical_emotion, get_label_set
from ferkit.progress import progress_iter
from ferkit.utils import atomic_path

_PREFIX_RE = re.compile(r"^(Training|PublicTest|PrivateTest)_")
_NUMBER_RE = re.compile(r"(\d+)$")
_SPLIT_ALIASES = {alias.lower() for names in SPLIT_ROLES.values() for alias in names}
# Where each FER-2013 split lives in Kaggle's images layout.
_KAGGLE_DIR = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}
UNSPLIT = "all"


@dataclass(frozen=True)
class _Entry:
    parts: tuple[str, ...]  # path inside the root, split into folders + file name
    display: str  # what errors call it

    @property
    def sort_key(self) -> tuple:
        match = _NUMBER_RE.search(PurePosixPath(self.parts[-1]).stem)
        return (int(match.group(1)) if match else -1, self.parts)


def _list_entries(path: Path) -> tuple[list[_Entry], Callable[[_Entry], bytes], Callable[[], None]]:
    """Image entries under a folder or in a zip, a reader for one entry, and a closer."""
    if path.is_dir():
        entries = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                if is_image_name(name) and not name.startswith("."):
                    rel = Path(root, name).relative_to(path)
                    entries.append(_Entry(rel.parts, str(Path(root, name))))
        return entries, lambda e: read_bytes(e.display), lambda: None
    if not path.exists():
        raise DataError(str(path), "file or folder not found")
    if path.stat().st_size == 0:
        raise DataError(str(path), "file is empty")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DataError(str(path), f"not a readable zip archive ({exc})") from exc
    entries = [
        _Entry(PurePosixPath(info.filename).parts, f"{path}:{info.filename}")
        for info in zf.infolist()
        if not info.is_dir()
        and is_image_name(info.filename)
        and not info.filename.startswith("__MACOSX/")
        and not PurePosixPath(info.filename).name.startswith(".")
    ]

    def read(entry: _Entry) -> bytes:
        name = "/".join(entry.parts)
        size, limit = zf.getinfo(name).file_size, max_bytes_limit()
        if size > limit:  # checked before inflating: a zip member can be a bomb too
            raise DataError(entry.display, f"archive member is {size:,} bytes, over the {limit:,}-byte limit")
        try:
            return zf.read(name)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise DataError(entry.display, f"archive member is truncated or corrupt ({exc})") from exc

    return entries, read, zf.close


def _infer_label_set(names: set[str], source: str) -> LabelSet:
    """Emotion names (any spelling), RAF-DB or FER-2013 numbers, or a set with no emotion
    name at all (a custom task). Emotion folders mixed with unknown ones are an error."""
    if all(n.isdigit() for n in names):
        numbers = {int(n) for n in names}
        if numbers <= set(range(1, 8)):
            return RAFDB
        if numbers <= set(range(0, 7)):
            return FER2013
        raise DataError(
            source,
            f"numbered label folders {sorted(numbers)} match neither RAF-DB (1..7) nor FER-2013 (0..6)",
        )
    canon = {n: canonical_emotion(n) for n in names}
    unknown = sorted(n for n, c in canon.items() if c is None)
    if not unknown:
        return FERPLUS if "contempt" in canon.values() else FER2013
    if len(unknown) < len(names):
        raise DataError(
            source,
            f"label folder(s) {unknown} are not emotions ferkit knows (the others are: "
            f"{sorted(set(names) - set(unknown))}); rename or remove them, or train on exactly these "
            f"folders as a custom label set with labels='custom' (CLI: --labels custom)",
        )
    return custom_label_set(names)


def custom_label_set(names: set[str]) -> LabelSet:
    return LabelSet("custom", tuple(sorted(names)))


def _split_of(entry: _Entry) -> str:
    match = _PREFIX_RE.match(entry.parts[-1])
    if match:
        return match.group(1)
    if len(entry.parts) >= 3 and entry.parts[-3].lower() in _SPLIT_ALIASES:
        return entry.parts[-3]
    return UNSPLIT


def read_image_folder(
    path: str | os.PathLike,
    *,
    size: int | None = 48,
    color: Color = "gray",
    labels: str | LabelSet | None = None,
    on_error: OnError = "raise",
    show_progress: bool | None = False,
) -> FaceDataset:
    """Read a folder (or zip) of labelled face images into a :class:`FaceDataset`.

    ``size=None`` keeps every image whole (``images`` is then an object array of uint8
    arrays of their own sizes): photos for a face detector, as in ``ferkit eval --detect``."""
    path = Path(path)
    log = ErrorLog(on_error)
    entries, read, close = _list_entries(path)
    try:
        entries = [e for e in entries if len(e.parts) >= 2]  # files need a label folder
        if not entries:
            raise DataError(
                str(path), "no images in label folders (<label>/<image> or <split>/<label>/<image>)"
            )
        entries.sort(key=lambda e: e.sort_key)
        if labels == "custom":
            label_set = custom_label_set({e.parts[-2] for e in entries})
        elif isinstance(labels, str):
            label_set = get_label_set(labels)
        else:
            label_set = labels or _infer_label_set({e.parts[-2] for e in entries}, str(path))
        channels = () if color == "gray" else (3,)
        if size is None:
            images = np.empty(len(entries), object)
        else:
            images = np.empty((len(entries), size, size, *channels), np.uint8)
        label_idx = np.empty(len(entries), np.int64)
        splits: list[str] = []
        names: list[str] = []
        n = 0
        for entry in progress_iter(entries, description="decoding images", enabled=show_progress):
            try:
                label = label_set.index(entry.parts[-2])
            except KeyError as exc:
                log.fail(entry.display, str(exc.args[0]))
                continue
            try:
                img = decode_image(read(entry), entry.display, color)
            except DataError as exc:
                log.fail(exc.source, exc.problem, exc.location)
                continue
            images[n] = img if size is None else frame_face(img, None, size)  # as the runtime frames a crop
            label_idx[n] = label
            splits.append(_split_of(entry))
            names.append("/".join(entry.parts))
            n += 1
    finally:
        close()
    return FaceDataset(
        images=images[:n],
        labels=label_idx[:n],
        splits=np.asarray(splits, dtype=str).reshape(n),
        label_set=label_set,
        source=str(path),
        format="image-zip" if path.is_file() else "image-folder",
        skipped=log.skipped,
        names=np.asarray(names, dtype=str).reshape(n),
    )


def write_image_folder(dataset: FaceDataset, path: str | os.PathLike, *, ext: str = ".png") -> Path:
    """Write a dataset as ``<split>/<label>/<Split>_<index>.png``, to a folder or a ``.zip``.

    FER-2013 splits go where Kaggle's layout puts them (Training in ``train/``, both test
    splits in ``test/``, the split kept in the file-name prefix). The index is the row in
    ``dataset``, so reading the folder back restores the original order. Written atomically.
    """
    path = Path(path)
    width = max(5, len(str(len(dataset))))
    params = [cv2.IMWRITE_PNG_COMPRESSION, 3] if ext == ".png" else []

    def members():
        rows = zip(dataset.images, dataset.labels, dataset.splits, strict=True)
        for i, (img, label, split) in enumerate(rows):
            folder = _KAGGLE_DIR.get(str(split), str(split))
            name = f"{folder}/{dataset.label_set.names[label]}/{split}_{i:0{width}d}{ext}"
            bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
            ok, buf = cv2.imencode(ext, bgr, params)
            if not ok:
                raise DataError(name, f"could not encode image as {ext}")
            yield name, buf.tobytes()

    if path.suffix.lower() == ".zip":
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for name, data in members():
                zf.writestr(name, data)
    else:
        with atomic_path(path, is_dir=True) as tmp:
            for name, data in members():
                target = tmp / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    return path
