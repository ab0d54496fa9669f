"""Contact sheets of faces: N random faces per class, labelled, to look at a dataset.

Usage::

    sheet = contact_sheet(ds, per_class=8, seed=0)     # uint8 image
    save_image("grid.png", sheet)
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ferkit.data.dataset import FaceDataset
from ferkit.utils import atomic_path


def contact_sheet(
    dataset: FaceDataset,
    *,
    per_class: int = 8,
    scale: int = 2,
    seed: int = 0,
    images: np.ndarray | None = None,
    title: str | None = None,
) -> np.ndarray:
    """One row per class: the class name and ``per_class`` random faces (grey or RGB).

    ``images`` (same length as ``dataset``) replaces the pictures shown, e.g. augmented ones.
    Classes with no samples get an empty row saying so.
    """
    pics = dataset.images if images is None else images
    rng = np.random.default_rng(seed)
    h, w = pics.shape[1] * scale, pics.shape[2] * scale
    label_w, pad = 130, 4
    rows = []
    for c, name in enumerate(dataset.label_set.names):
        members = np.flatnonzero(dataset.labels == c)
        chosen = rng.choice(members, size=min(per_class, members.size), replace=False) if members.size else []
        row = np.full((h + 2 * pad, label_w + per_class * (w + pad) + pad, 3), 255, np.uint8)
        text = f"{name} ({members.size})"
        cv2.putText(row, text, (6, h // 2 + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        if not len(chosen):
            cv2.putText(
                row,
                "no samples",
                (label_w + 6, h // 2 + 10),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                (0, 0, 200),
                1,
                cv2.LINE_AA,
            )
        for k, i in enumerate(chosen):
            face = cv2.resize(pics[i], (w, h), interpolation=cv2.INTER_NEAREST)
            if face.ndim == 2:
                face = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
            else:
                face = cv2.cvtColor(face, cv2.COLOR_RGB2BGR)
            x = label_w + k * (w + pad)
            row[pad : pad + h, x : x + w] = face
        rows.append(row)
    sheet = np.concatenate(rows, axis=0)
    if title:
        band = np.full((28, sheet.shape[1], 3), 255, np.uint8)
        cv2.putText(band, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        sheet = np.concatenate([band, sheet], axis=0)
    return sheet


def save_image(path: str | os.PathLike, image_bgr: np.ndarray) -> Path:
    """Write an image atomically; the format follows the extension."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".png", image_bgr)
    if not ok:
        raise ValueError(f"{path}: cannot encode an image with extension {path.suffix!r}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return path
