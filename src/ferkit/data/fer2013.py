"""FER-2013 challenge CSV (``emotion,pixels,Usage``): read plain, ``.csv.gz`` or Kaggle's tar.gz.

Usage::

    ds = read_fer2013_csv("fer2013.tar.gz")           # read in place, no extraction
    write_fer2013_csv(ds, "copy.csv")
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import math
import os
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ferkit.data.dataset import FaceDataset
from ferkit.errors import DataError, ErrorLog, OnError
from ferkit.framing import frame_face
from ferkit.labels import FER2013, remap
from ferkit.progress import progress_iter
from ferkit.utils import atomic_path

USAGES = ("Training", "PublicTest", "PrivateTest")
REQUIRED_COLUMNS = ("emotion", "pixels", "Usage")

# "0 ".."255 " as fixed-width bytes (NUL-padded): a row's text is one take + one replace.
_PIXEL_TOKENS = np.array([f"{i} ".encode() for i in range(256)], dtype="S4")

# Errors a truncated or corrupt compressed stream raises while it is read.
_STREAM_ERRORS = (EOFError, tarfile.TarError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile)


@contextlib.contextmanager
def open_text_member(path: str | os.PathLike, suffix: str = ".csv") -> Iterator[tuple[IO[str], str]]:
    """Open a CSV given as a plain file, a ``.gz`` file, or the first ``*suffix`` in a tar/zip.

    Yields ``(text_stream, display_name)``; the display name includes the archive member.
    """
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise DataError(str(path), "file not found")
    if path.stat().st_size == 0:
        raise DataError(str(path), "file is empty")
    try:
        if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
            with tarfile.open(path) as tar:
                member = next((m for m in tar if m.isfile() and m.name.endswith(suffix)), None)
                if member is None:
                    raise DataError(str(path), f"archive holds no {suffix} file")
                raw = tar.extractfile(member)
                assert raw is not None
                with io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
                    yield text, f"{path}:{member.name}"
        elif name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                member_name = next((n for n in zf.namelist() if n.endswith(suffix)), None)
                if member_name is None:
                    raise DataError(str(path), f"archive holds no {suffix} file")
                with io.TextIOWrapper(zf.open(member_name), encoding="utf-8", newline="") as text:
                    yield text, f"{path}:{member_name}"
        elif name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
                yield text, str(path)
        else:
            with open(path, encoding="utf-8", newline="") as text:
                yield text, str(path)
    except _STREAM_ERRORS as exc:
        raise DataError(str(path), f"archive is truncated or corrupt ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"not a UTF-8 text CSV ({exc.reason} at byte {exc.start})") from exc


def _diagnose_pixels(text: str, expected: int) -> str:
    """Say exactly what is wrong with one row's pixel field (slow path, bad rows only)."""
    tokens = text.split()
    for i, token in enumerate(tokens):
        try:
            value = int(token)
        except ValueError:
            return f"pixel {i + 1} is not a number: {token[:20]!r}"
        if not 0 <= value <= 255:
            return f"pixel {i + 1} is {token[:20]}, outside 0..255"
    return f"expected {expected} pixel values, found {len(tokens)}"


def _row_side(text: str, usual: int = 48) -> int:
    """The side of a row's square image: FER-2013's 48, or another square count's root
    (a CSV of another size); a row that is neither is reported against the usual 48."""
    count = len(text.split())
    root = math.isqrt(count)
    return root if count != usual * usual and root >= 8 and root * root == count else usual


def _parse_pixels(text: str, expected: int) -> np.ndarray | None:
    """Fast parse of a space-separated pixel field; None when it is not exactly valid."""
    with warnings.catch_warnings():
        # On a non-numeric token older numpy warns and stops early (the count check catches
        # it); newer numpy raises.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            # float64 holds any integer token without wrapping around (int16 read 65636 as 100)
            values = np.fromstring(text, dtype=np.float64, sep=" ")
        except ValueError:
            return None
    if values.size != expected or values.min(initial=0) < 0 or values.max(initial=0) > 255:
        return None
    if not np.array_equal(values, np.floor(values)):  # 1.5 is no pixel value
        return None
    return values.astype(np.uint8)


def read_fer2013_csv(
    path: str | os.PathLike,
    *,
    size: int = 48,
    on_error: OnError = "raise",
    show_progress: bool | None = False,
) -> FaceDataset:
    """Read the FER-2013 challenge CSV into a :class:`FaceDataset` (grey, ``size``x``size``).

    The rows' own side is the first row's (FER-2013's: 48); faces are framed to ``size``
    where it differs, as the runtime frames a crop (a 112 px network trains on FER-2013).
    Rows with another pixel count, a non-numeric or out-of-range pixel, an unknown emotion
    or Usage are errors naming the line; ``on_error='skip'`` leaves them out and lists them
    in ``dataset.skipped``.
    """
    log = ErrorLog(on_error)
    side = expected = 0  # from the first row
    images: list[np.ndarray] = []
    labels: list[int] = []
    splits: list[str] = []
    with open_text_member(path, ".csv") as (text, display):
        reader = csv.reader(text)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise DataError(display, f"not a CSV file ({exc})", "line 1") from exc
        if header is None:
            raise DataError(display, "CSV has no header row")
        header = [h.strip() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataError(
                display,
                f"missing column(s) {missing}; a FER-2013 CSV has columns {list(REQUIRED_COLUMNS)}",
                "line 1",
            )
        col_emotion, col_pixels, col_usage = (header.index(c) for c in REQUIRED_COLUMNS)
        width = len(header)
        rows = progress_iter(reader, description="parsing CSV", total=None, enabled=show_progress)
        try:
            for row in rows:
                line = f"line {reader.line_num}"
                if not row:
                    continue
                if len(row) != width:
                    log.fail(display, f"expected {width} fields, found {len(row)}", line)
                    continue
                emotion, pixel_text, usage = row[col_emotion], row[col_pixels], row[col_usage]
                try:
                    label = FER2013.index(int(emotion.strip()))
                except (ValueError, KeyError):
                    log.fail(display, f"unknown emotion {emotion!r} (expected 0..6)", line)
                    continue
                usage = usage.strip()
                if usage not in USAGES:
                    log.fail(display, f"unknown Usage {usage!r} (expected one of {USAGES})", line)
                    continue
                if not expected:
                    side = _row_side(pixel_text)
                    expected = side * side
                pixels = _parse_pixels(pixel_text, expected)
                if pixels is None:
                    log.fail(display, _diagnose_pixels(pixel_text, expected), line)
                    continue
                face = pixels.reshape(side, side)
                images.append(face if side == size else frame_face(face, None, size))
                labels.append(label)
                splits.append(usage)
        except _STREAM_ERRORS as exc:
            raise DataError(
                display, f"archive is truncated or corrupt ({exc})", f"after line {reader.line_num}"
            ) from exc
        except csv.Error as exc:
            raise DataError(display, f"malformed CSV ({exc})", f"line {reader.line_num}") from exc
    if not images and not log.skipped:
        raise DataError(display, "CSV has a header but no rows")
    return FaceDataset(
        images=np.stack(images) if images else np.zeros((0, size, size), np.uint8),
        labels=np.asarray(labels, dtype=np.int64),
        splits=np.asarray(splits, dtype=str),
        label_set=FER2013,
        source=str(path),
        format="fer2013-csv",
        skipped=log.skipped,
    )


def write_fer2013_csv(
    dataset: FaceDataset,
    path: str | os.PathLike,
) -> Path:
    """Write a dataset as a FER-2013 CSV (``.csv`` or ``.csv.gz``), atomically.

    Labels are mapped to FER-2013's order; a class with no FER-2013 equivalent (contempt)
    is an error naming it. Colour images are converted to grey.
    """
    path = Path(path)
    labels = remap(dataset.labels, dataset.label_set, FER2013)
    if (labels < 0).any():
        bad = sorted({dataset.label_set.names[i] for i in dataset.labels[labels < 0]})
        raise DataError(str(path), f"label(s) {bad} have no FER-2013 equivalent; drop them first")
    images = dataset.images
    if images.ndim == 4:
        images = (images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round()
        images = images.clip(0, 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        # gzip level 6: level 9 (the default) is 3x slower for about 2% less.
        gz = path.name.lower().endswith(".gz")
        with gzip.open(tmp, "wb", compresslevel=6) if gz else open(tmp, "wb") as f:
            f.write(b"emotion,pixels,Usage\n")
            for img, label, split in zip(images, labels, dataset.splits, strict=True):
                pixels = _PIXEL_TOKENS[img.ravel()].tobytes().replace(b"\x00", b"")[:-1]
                f.write(b"%d,%s,%s\n" % (label, pixels, str(split).encode()))
    return path
