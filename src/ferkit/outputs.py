"""Output paths checked before anything is written: nothing the user gave is ever overwritten.

Usage::

    check_outputs(
        {"--csv": (csv_path, "csv"), "--json": (json_path, "jsonl"), "--annotate": (folder, "folder")},
        inputs=["photos/", "a.jpg"],        # files and folders the command reads
        protected=[run / "config.yaml"],    # the run's own files (export), never outputs
        overwrite=False,
    )

The rules, each a :class:`~ferkit.errors.FerkitError` naming the option and the path:

- two outputs may not share a path;
- an output may not be an input (same file, also through links), a protected file, or (an
  annotation folder) a folder that holds an input file directly;
- an existing output file is replaced only when it is the same kind of output (a ferkit CSV,
  JSON Lines, a video container, an ONNX model) or empty; ``overwrite`` allows any
  file that is not an input.

Annotated images carry a ``tEXt`` marker (:func:`mark_png`), so a later run replaces only
files it wrote (:func:`is_ours_png`).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from ferkit.errors import FerkitError

KINDS = ("csv", "jsonl", "json", "video", "onnx", "torch", "folder")
# The first columns of the CSVs ferkit writes: images (file), video frames (frame, time).
_CSV_STARTS = ("file,x,y,w,h,", "frame,time,x,y,w,h,")
_VIDEO_MAGIC = (b"ftyp", b"RIFF", b"\x1a\x45\xdf\xa3")  # MP4/MOV (at byte 4), AVI, Matroska/WebM
_PNG_MARK = b"ferkit annotate"


def _resolved(path: str | os.PathLike) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (RuntimeError, OSError):  # a symlink loop: its own absolute name
        return Path(os.path.abspath(Path(path).expanduser()))


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode): the same file through any name, link or mount; None when absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _head(path: Path, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def is_kind(path: Path, kind: str) -> bool:
    """Whether an existing file is an output of this kind (what a re-run may replace)."""
    head = _head(path)
    if not head:
        return True  # empty: nothing to lose
    if kind == "csv":
        return head.decode("utf-8", "replace").startswith(_CSV_STARTS)
    if kind == "jsonl":
        return head.lstrip().startswith((b'{"file"', b'{"frame"'))
    if kind == "json":
        return head.lstrip()[:1] == b"{"
    if kind == "video":
        return head[4:8] == _VIDEO_MAGIC[0] or head[:4] in _VIDEO_MAGIC[1:]
    if kind == "onnx":
        return path.suffix == ".onnx" and head[:1] == b"\x08"  # protobuf field 1: ir_version
    if kind == "torch":
        return head[:2] == b"PK"  # torch.save's zip container
    raise ValueError(f"unknown output kind {kind!r}")


def check_outputs(
    outputs: Mapping[str, tuple[str | os.PathLike | None, str]],
    inputs: Iterable[str | os.PathLike] = (),
    *,
    protected: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
) -> None:
    """Refuse outputs that would overwrite an input, each other or a file of another kind."""
    named = {opt: (_resolved(p), kind) for opt, (p, kind) in outputs.items() if p is not None}
    in_paths = [_resolved(p) for p in inputs]
    in_ids = {_identity(p): p for p in in_paths} | {p: p for p in in_paths}
    first_in: dict[Path, Path] = {}  # each folder holding an input file: its first such file
    for p in in_paths:
        if p.parent not in first_in and not p.is_dir():  # one stat per folder, not per file
            first_in[p.parent] = p
    in_dirs = {_identity(d): p for d, p in first_in.items()}
    guarded = {_identity(p) for p in map(_resolved, protected)} - {None}
    seen: dict = {}
    for opt, (path, kind) in named.items():
        if kind not in KINDS:
            raise ValueError(f"unknown output kind {kind!r}")
        ident = _identity(path)
        for key in (path, ident):
            if key is not None and key in seen:
                raise FerkitError(f"{opt} and {seen[key]} name the same path ({path}); give each its own")
        seen.update({path: opt} | ({ident: opt} if ident else {}))
        if path in in_ids or (ident is not None and ident in in_ids):
            raise FerkitError(f"{opt} {path}: that is an input; the output would overwrite it")
        if ident is not None and ident in guarded:
            raise FerkitError(f"{opt} {path}: that file belongs to the source; choose another path")
        if kind == "folder":
            if path.exists() and not path.is_dir():
                raise FerkitError(f"{opt} {path}: that is a file; give a folder")
            if ident is not None and ident in in_dirs:
                raise FerkitError(
                    f"{opt} {path}: that folder holds the input {in_dirs[ident].name}; annotated copies "
                    "could overwrite inputs: choose another folder"
                )
            continue
        if path.is_dir():
            raise FerkitError(f"{opt} {path}: that is a folder; give a file name")
        if path.exists() and not overwrite and not is_kind(path, kind):
            raise FerkitError(
                f"{opt} {path}: the file exists and is not a ferkit {kind} output; "
                "choose another path, or --overwrite to replace it"
            )


def mark_png(png: bytes) -> bytes:
    """The PNG with a ``tEXt`` chunk (Software: ferkit annotate) after its header chunk."""
    body = b"Software\x00" + _PNG_MARK
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    end_of_ihdr = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def is_ours_png(head: bytes) -> bool:
    return head.startswith(b"\x89PNG") and b"tEXtSoftware\x00" + _PNG_MARK in head[:256]


def annotated_target(path: Path, overwrite: bool = False) -> Path:
    """``path`` when it is free, a ferkit annotation or ``overwrite``; otherwise an error naming it."""
    if path.exists() and not overwrite and (path.is_dir() or not is_ours_png(_head(path, 256))):
        raise FerkitError(
            f"{path}: exists and is not an annotated image ferkit wrote; "
            "choose another --annotate folder, or --overwrite to replace it"
        )
    return path
