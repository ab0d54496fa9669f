"""Open any supported dataset by path, detecting its format, with a cache of decoded arrays.

Usage::

    ds = load_dataset("../shared/datasets/fer2013/fer2013.tar.gz")   # ~7 s first, ~0.3 s after
    ds = load_dataset("fer2013new.csv", pixels="fer2013.tar.gz")      # FER+ majority labels
    ds = load_dataset("my_faces/", size=64, color="rgb")
    write_packed(ds, "fer2013.ferkit.xz"); load_dataset("fer2013.ferkit.xz")   # one small file

The cache (``~/.cache/ferkit/data/*.npz``, or ``$FERKIT_CACHE_DIR``) is keyed by the
source's path, size and modification time and by every reader option, so an edited file
is re-read. Writes are atomic, so an interrupted first load never leaves a broken cache.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import lzma
import os
from pathlib import Path
from typing import Literal

import numpy as np

from ferkit.data.dataset import FaceDataset
from ferkit.data.fer2013 import open_text_member, read_fer2013_csv
from ferkit.data.ferplus import FerplusMode, read_ferplus
from ferkit.data.folder import read_image_folder
from ferkit.errors import DataError, OnError, Skipped
from ferkit.imageio import Color
from ferkit.labels import LabelSet, get_label_set
from ferkit.utils import atomic_path, cache_dir

CACHE_VERSION = 2  # 2: image folders keep each file's name
Format = Literal["auto", "fer2013-csv", "ferplus", "images", "packed"]
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")


def detect_format(path: str | os.PathLike) -> str:
    """``fer2013-csv``, ``ferplus`` or ``images``, from the path and, for CSVs, the header."""
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        if any(path.glob("*.csv")) and not any(p.is_dir() for p in path.iterdir()):
            return detect_format(sorted(path.glob("*.csv"))[0])
        return "images"
    if not path.exists():
        raise DataError(str(path), "file or folder not found")
    if name.endswith(PACKED_SUFFIX):
        return "packed"
    if name.endswith(_ARCHIVE_SUFFIXES):
        return "fer2013-csv"
    if name.endswith(".zip"):
        return "images"
    if name.endswith((".csv", ".csv.gz")):
        with open_text_member(path) as (text, display):
            header = next(csv.reader(text), [])
        header = [h.strip() for h in header]
        if "pixels" in header:
            return "fer2013-csv"
        if "Image name" in header:
            return "ferplus"
        raise DataError(
            display,
            f"unrecognised CSV header {header[:6]}: expected FER-2013 (emotion,pixels,Usage) or FER+ votes",
        )
    raise DataError(
        str(path),
        "unsupported dataset: expected a FER-2013 CSV / tar.gz, a FER+ CSV, an images folder or a .zip",
    )


def _find_pixels_beside(votes: Path) -> Path:
    for name in ("fer2013.csv", "fer2013.csv.gz", "fer2013.tar.gz", "fer2013/fer2013.csv"):
        candidate = votes.parent / name
        if candidate.exists():
            return candidate
    raise DataError(
        str(votes), "FER+ votes need the FER-2013 pixels: pass pixels=... (fer2013.csv or fer2013.tar.gz)"
    )


def _cache_key(paths: list[Path], options: dict) -> str:
    parts = []
    for p in paths:
        st = p.stat()
        if p.is_dir():  # a folder changes when any file in it does
            mtimes = [f.stat().st_mtime_ns for f in p.rglob("*") if f.is_file()]
            parts.append([str(p.resolve()), len(mtimes), max(mtimes, default=0), sum(mtimes)])
        else:
            parts.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps([CACHE_VERSION, parts, options], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:20]


def _dataset_arrays(ds: FaceDataset) -> dict[str, np.ndarray]:
    arrays = {
        "images": ds.images,
        "labels": ds.labels,
        "splits": ds.splits,
        "label_names": np.asarray(ds.label_set.names, str),
        "meta": np.asarray(
            json.dumps(
                {
                    "label_set": ds.label_set.name,
                    "number_base": ds.label_set.number_base,
                    "format": ds.format,
                    "source": ds.source,
                }
            )
        ),
        "skipped": np.asarray([[s.source, s.location or "", s.problem] for s in ds.skipped], str).reshape(
            -1, 3
        ),
    }
    if ds.soft_labels is not None:
        arrays["soft_labels"] = ds.soft_labels
    if ds.names is not None:
        arrays["names"] = ds.names
    return arrays


def _save_cache(path: Path, ds: FaceDataset) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, **_dataset_arrays(ds))


def _load_cache(path: Path | io.BytesIO) -> FaceDataset:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        label_set = LabelSet(meta["label_set"], tuple(z["label_names"].tolist()), meta["number_base"])
        return FaceDataset(
            images=z["images"],
            labels=z["labels"],
            splits=z["splits"],
            label_set=label_set,
            source=meta["source"],
            format=meta["format"],
            soft_labels=z["soft_labels"] if "soft_labels" in z.files else None,
            skipped=[Skipped(s, loc or None, p) for s, loc, p in z["skipped"].tolist()],
            names=z["names"] if "names" in z.files else None,
        )


PACKED_SUFFIX = ".ferkit.xz"
_XZ_MAGIC = b"\xfd7zXZ\x00"


def write_packed(ds: FaceDataset, path: str | os.PathLike, *, preset: int = 6) -> Path:
    """One compact file with everything ``load_dataset`` read (images, labels, splits, label
    set, FER+ vote distributions): an xz-compressed ``.npz``, for moving a dataset to
    another machine (a GPU box) as one small file. ``load_dataset`` and ``ferkit train``
    read it directly."""
    path = Path(path)
    if not path.name.endswith(PACKED_SUFFIX):
        raise DataError(str(path), f"a packed dataset's name ends in {PACKED_SUFFIX}")
    buf = io.BytesIO()
    np.savez(buf, **_dataset_arrays(ds))
    # A delta filter over one image row first: neighbouring rows are alike, so xz packs the
    # differences ~9% smaller (FER-2013: 55 MiB instead of 60).
    row = int(np.prod(ds.images.shape[2:])) or 1
    filters = [{"id": lzma.FILTER_DELTA, "dist": min(row, 256)}, {"id": lzma.FILTER_LZMA2, "preset": preset}]
    with atomic_path(path) as tmp:
        tmp.write_bytes(lzma.compress(buf.getbuffer(), format=lzma.FORMAT_XZ, filters=filters))
    return path


def read_packed(path: str | os.PathLike) -> FaceDataset:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(6) != _XZ_MAGIC:
                raise DataError(str(path), "not a packed ferkit dataset (no xz header)")
            f.seek(0)
            data = lzma.decompress(f.read())
        return _load_cache(io.BytesIO(data))
    except (lzma.LZMAError, EOFError) as exc:
        raise DataError(str(path), f"packed dataset is truncated or corrupt ({exc})") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(str(path), f"not a packed ferkit dataset ({exc})") from exc


def load_dataset(
    path: str | os.PathLike,
    *,
    format: Format = "auto",
    size: int = 48,
    color: Color = "gray",
    labels: str | None = None,
    pixels: str | os.PathLike | None = None,
    ferplus_mode: FerplusMode = "majority",
    on_error: OnError = "raise",
    cache: bool = True,
    show_progress: bool | None = None,
) -> FaceDataset:
    """Load a FER-2013 CSV/tar.gz, FER+ votes, or a labelled image folder/zip.

    ``labels`` names the label set of a folder whose class names are ambiguous (``"custom"``:
    the folder names themselves, sorted);
    ``pixels`` gives the FER-2013 file that FER+ votes join to (default: found beside).
    """
    path = Path(path)
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "packed":  # already arrays: no parsing, no cache
        ds = read_packed(path)
        if ds.images.shape[1] != size or (ds.images.ndim == 4) != (color == "rgb"):
            raise DataError(
                str(path),
                f"packed at {ds.images.shape[1]} px {'rgb' if ds.images.ndim == 4 else 'gray'}; "
                f"asked for {size} px {color} (pack it again with --size)",
            )
        return ds
    sources = [path]
    if fmt == "ferplus":
        pixels_path = Path(pixels) if pixels else _find_pixels_beside(path)
        sources.append(pixels_path)
    options = {
        "fmt": fmt,
        "size": size,
        "color": color,
        "labels": labels,
        "on_error": on_error,
        "ferplus_mode": ferplus_mode,
    }
    cache_file = cache_dir("data") / f"{_cache_key(sources, options)}.npz" if cache else None
    if cache_file is not None and cache_file.exists():
        try:
            return _load_cache(cache_file)
        except (OSError, ValueError, KeyError, EOFError):
            cache_file.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    if fmt == "fer2013-csv":
        if color != "gray":
            raise DataError(str(path), "FER-2013 CSV images are grey; color='rgb' is not available")
        ds = read_fer2013_csv(path, size=size, on_error=on_error, show_progress=show_progress)
    elif fmt == "ferplus":
        fer = load_dataset(
            sources[1], format="fer2013-csv", size=size, cache=cache, show_progress=show_progress
        )
        ds = read_ferplus(path, fer, mode=ferplus_mode, on_error=on_error)
    elif fmt == "images":
        label_set = labels if labels == "custom" else get_label_set(labels) if labels else None
        ds = read_image_folder(
            path, size=size, color=color, labels=label_set, on_error=on_error, show_progress=show_progress
        )
    else:
        raise ValueError(f"unknown dataset format {fmt!r}")
    if cache_file is not None:
        _save_cache(cache_file, ds)
    return ds
