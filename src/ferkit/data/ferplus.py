"""FER+ relabelling (``fer2013new.csv``, Barsoum et al. 2016) joined to the FER-2013 pixels.

Usage::

    ds = read_ferplus("fer2013new.csv", "fer2013.tar.gz")                 # majority labels
    ds = read_ferplus("fer2013new.csv", "fer2013.tar.gz", mode="all")     # every row, votes kept

Each FER+ row holds 10 annotators' votes for the 8 emotions plus ``unknown`` and ``NF``
(not a face), in the same row order as ``fer2013.csv``. Majority protocol (Barsoum et al.):
votes cast by a single annotator are dropped as outliers, the top emotion must hold more
than half of the remaining votes, and rows whose top is unknown / not-a-face, or that FER+
leaves unnamed, are dropped. ``soft_labels`` holds the normalised vote distribution over
the 8 emotions (for soft-label training).
"""

from __future__ import annotations

import csv
import os
from typing import Literal

import numpy as np

from ferkit.data.dataset import FaceDataset
from ferkit.data.fer2013 import open_text_member, read_fer2013_csv
from ferkit.errors import DataError, ErrorLog, OnError
from ferkit.labels import FERPLUS

VOTE_COLUMNS = (*FERPLUS.names, "unknown", "NF")
FerplusMode = Literal["majority", "all"]


def read_ferplus_votes(
    path: str | os.PathLike, log: ErrorLog | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse ``fer2013new.csv``: ``(votes (N, 10) float32, usage (N,) str, has_name (N,) bool)``.

    Bad rows raise (or, under ``skip``, are kept as all-zero votes so the row order stays
    aligned with ``fer2013.csv``; such rows never pass the majority filter).
    """
    log = log or ErrorLog("raise")
    votes, usages, named = [], [], []
    with open_text_member(path, ".csv") as (text, display):
        reader = csv.reader(text)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in ("Usage", "Image name", *VOTE_COLUMNS) if c not in header]
        if missing:
            raise DataError(display, f"not a FER+ votes file: missing column(s) {missing}", "line 1")
        cols = [header.index(c) for c in VOTE_COLUMNS]
        col_usage, col_name = header.index("Usage"), header.index("Image name")
        for row in reader:
            if not row:
                continue
            try:
                values = [float(row[c]) for c in cols]
                if min(values) < 0:
                    raise ValueError("negative vote count")
            except (ValueError, IndexError) as exc:
                log.fail(display, f"bad vote counts ({exc})", f"line {reader.line_num}")
                values = [0.0] * len(cols)
            votes.append(values)
            usages.append(row[col_usage].strip() if len(row) > col_usage else "")
            named.append(len(row) > col_name and bool(row[col_name].strip()))
    return (
        np.asarray(votes, np.float32).reshape(-1, len(VOTE_COLUMNS)),
        np.asarray(usages, str),
        np.asarray(named, bool),
    )


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """Barsoum et al.'s majority label per row (index into FER+), -1 where the row is dropped."""
    votes = np.where(votes <= 1.0, 0.0, votes)  # a single vote is an outlier
    total = votes.sum(axis=1)
    top = votes.argmax(axis=1)
    top_votes = votes.max(axis=1)
    keep = (top_votes > 0.5 * total) & (top < len(FERPLUS)) & (total > 0)
    return np.where(keep, top, -1)


def read_ferplus(
    votes_path: str | os.PathLike,
    pixels: str | os.PathLike | FaceDataset,
    *,
    mode: FerplusMode = "majority",
    on_error: OnError = "raise",
    show_progress: bool | None = False,
) -> FaceDataset:
    """Join FER+ votes to FER-2013 pixels row by row.

    ``mode='majority'`` keeps the rows with a majority label (Barsoum's protocol);
    ``mode='all'`` keeps every named row, labelled by the top emotion vote.
    ``pixels`` is the FER-2013 CSV / tar.gz, or that file already loaded.
    """
    if not isinstance(pixels, FaceDataset):
        # Pixel rows are never skipped: a missing row would misalign every vote after it.
        pixels = read_fer2013_csv(pixels, on_error="raise", show_progress=show_progress)
    pixels_path = pixels.source
    log = ErrorLog(on_error)
    votes, usages, named = read_ferplus_votes(votes_path, log)
    if len(votes) != len(pixels):
        raise DataError(
            str(votes_path),
            f"has {len(votes)} rows but {pixels_path} has {len(pixels)}: FER+ rows must pair "
            "one-to-one with fer2013.csv rows",
        )
    mismatch = np.flatnonzero((usages != pixels.splits) & (usages != ""))
    if mismatch.size:
        i = int(mismatch[0])
        raise DataError(
            str(votes_path),
            f"Usage {usages[i]!r} differs from fer2013.csv's {pixels.splits[i]!r}: the files do not pair",
            f"line {i + 2}",
        )
    emotion_votes = votes[:, : len(FERPLUS)]
    totals = emotion_votes.sum(axis=1, keepdims=True)
    soft = np.divide(emotion_votes, totals, out=np.zeros_like(emotion_votes), where=totals > 0)
    if mode == "majority":
        labels = majority_labels(votes)
        keep = named & (labels >= 0)
    elif mode == "all":
        labels = emotion_votes.argmax(axis=1)
        keep = named & (totals[:, 0] > 0)
    else:
        raise ValueError(f"unknown FER+ mode {mode!r}; choose 'majority' or 'all'")
    index = np.flatnonzero(keep)
    return FaceDataset(
        images=pixels.images[index],
        labels=labels[index].astype(np.int64),
        splits=pixels.splits[index],
        label_set=FERPLUS,
        source=f"{votes_path} + {pixels_path}",
        format=f"ferplus-{mode}",
        soft_labels=soft[index].astype(np.float32),
        skipped=pixels.skipped + log.skipped,
    )
