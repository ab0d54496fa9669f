"""Face rows to CSV and JSON Lines, written as they come, so a stopped run keeps every finished image.

Usage::

    with FaceRowWriter(labels, csv_path="faces.csv", jsonl_path="faces.jsonl", resume=True) as out:
        todo = [p for p in paths if p not in out.done]     # resume: files already written
        out.write("a.jpg", faces)                          # one row per face, flushed

Rows of one image are written together and flushed; a resumed run drops the rows of the
last file in the outputs (it may have been cut off mid-write) and any half-written line,
then appends. Files with no face or that failed leave no row, so a resumed run reads them
again.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from ferkit.errors import DataError
from ferkit.runtime.recognize import Face
from ferkit.utils import atomic_path, deferred_stops


def csv_header(labels: Sequence[str], keys: Sequence[str] = ("file",), tracked: bool = False) -> list[str]:
    """Key columns (``file``; ``frame``, ``time`` for video), then ``Face.row``'s columns."""
    return [*keys, "x", "y", "w", "h", "score", "label", *(("id", "detected") if tracked else ()), *labels]


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV injection");
# a text cell that does gets a leading apostrophe, and so does one that starts with an
# apostrophe, so the original is recovered by dropping one (:func:`csv_text`).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_safe(text: str) -> str:
    """A text cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_text(cell: str) -> str:
    """The text :func:`csv_safe` was given."""
    return cell[1:] if cell.startswith("'") else cell


def face_csv_row(key: Sequence[Any], face: Face, labels: Sequence[str]) -> list[Any]:
    row = face.row(labels)
    row["score"] = f"{row['score']:.4f}"
    row.update({n: f"{row[n]:.6f}" for n in labels})
    return [*(csv_safe(k) if isinstance(k, str) else k for k in key), *row.values()]


def face_json(keys: Sequence[str], key: Sequence[Any], face: Face) -> dict[str, Any]:
    return {**dict(zip(keys, key, strict=True)), **face.to_dict(digits=6)}


# Outputs are UTF-8; a file name that is not (a Latin-1 name on a UTF-8 system) is written as
# its own bytes in CSV (surrogateescape) and as \\udcXX escapes in JSON, both lossless.
ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


def _complete_lines(text: str) -> list[str]:
    """Lines that end in a newline (a killed run may leave half a line last)."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]]


def _kept_rows(path: Path, kind: str, header: list[str]) -> tuple[list[str], list[str]]:
    """(lines to keep, the files they cover) of an existing output, minus its last file."""
    text = path.read_text(**ENCODING)
    if kind == "csv":
        # Records, not lines: a file name may hold a newline (quoted in the CSV).
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows:
            return [], []
        if rows[0] != header:
            raise DataError(
                str(path),
                "its columns are not this run's (another model or label set?); give a new output file",
            )
        whole = [row for row in rows[1:] if len(row) == len(header)]  # a cut-off last row goes
        body = [_csv_line(row) for row in whole]
        files = [csv_text(row[0]) for row in whole]
    else:
        lines = _complete_lines(text)
        body, files = [], []
        for line in lines:
            try:
                files.append(str(json.loads(line)[header[0]]))
            except (ValueError, KeyError, TypeError):
                raise DataError(str(path), f"line {len(body) + 1} is not a ferkit face record") from None
            body.append(line)
    if files:  # the last file may have been cut off between two of its rows: redo it
        last = files[-1]
        keep = [i for i, f in enumerate(files) if f != last]
        body, files = [body[i] for i in keep], [files[i] for i in keep]
    return body, files


class FaceRowWriter:
    """CSV and/or JSONL outputs of face rows, appended and flushed image by image."""

    def __init__(
        self,
        labels: Sequence[str],
        *,
        csv_path: str | os.PathLike | None = None,
        jsonl_path: str | os.PathLike | None = None,
        resume: bool = False,
        keys: Sequence[str] = ("file",),
        tracked: bool = False,
    ) -> None:
        """``keys``: the columns that say where a face was (``file``; video: ``frame``, ``time``);
        ``tracked``: faces carry track ids (video). Resuming is by the first key (files)."""
        self.labels, self.keys = list(labels), tuple(keys)
        self.header = csv_header(self.labels, self.keys, tracked)
        self.done: set[str] = set()
        self._files: dict[str, IO[str]] = {}
        self._csv: Any = None
        outputs = {k: Path(p) for k, p in (("csv", csv_path), ("jsonl", jsonl_path)) if p is not None}
        existing = {k: p for k, p in outputs.items() if resume and p.exists() and p.stat().st_size > 0}
        if existing:
            kept = {k: _kept_rows(p, k, self.header) for k, p in existing.items()}
            done_sets = [set(files) for _, files in kept.values()]
            # A file counts as done only when every output has it (both were written together).
            self.done = set.intersection(*done_sets) if len(outputs) == len(existing) else set()
            for kind, path in existing.items():
                body, files = kept[kind]
                lines = [line for line, f in zip(body, files, strict=True) if f in self.done]
                with atomic_path(path) as tmp:
                    header = [] if kind == "jsonl" else [_csv_line(self.header)]
                    tmp.write_text("".join(header + lines), **ENCODING)
        try:
            for kind, path in outputs.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                append = kind in existing
                f = open(path, "a" if append else "w", newline="", **ENCODING)  # noqa: SIM115
                self._files[kind] = f
                if kind == "csv":
                    self._csv = csv.writer(f)
                    if not append:
                        self._csv.writerow(self.header)
                        f.flush()
        except OSError as exc:
            self.close()
            raise DataError(str(exc.filename or path), f"cannot write output ({exc.strerror})") from exc

    def write(self, key: str | Sequence[Any], faces: Sequence[Face]) -> None:
        """The rows of one image (``key``: its file) or frame (``(frame, time)``), flushed."""
        if not faces:
            return
        key = (key,) if isinstance(key, str) else tuple(key)
        # A stop (Ctrl-C, SIGTERM) waits until the image's rows are in every output, so that
        # a stopped run's CSV and JSONL hold the same files.
        with deferred_stops():
            self._write(key, faces)

    def _write(self, key: tuple[Any, ...], faces: Sequence[Face]) -> None:
        kind = ""
        try:
            if "csv" in self._files:
                kind = "csv"
                for face in faces:
                    self._csv.writerow(face_csv_row(key, face, self.labels))
                self._files["csv"].flush()
            if "jsonl" in self._files:
                kind = "jsonl"
                lines = (json.dumps(face_json(self.keys, key, f)) + "\n" for f in faces)
                self._files["jsonl"].write("".join(lines))
                self._files["jsonl"].flush()
        except OSError as exc:  # a full disk, a removed drive: say which file, keep what was written
            raise DataError(self._files[kind].name, f"cannot write output ({exc.strerror or exc})") from None

    def close(self) -> None:
        for f in self._files.values():
            try:
                f.close()
            except OSError:  # the flush of a full disk: reported by write() already
                pass
        self._files.clear()

    def __enter__(self) -> FaceRowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _csv_line(row: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    return buf.getvalue()
