"""Test-time augmentation on uint8 faces: none, horizontal flip, ten-crop.

Usage::

    probs = predict_tta(predictor, faces, "tencrop")

Ten-crop is the FER-2013 protocol: four corner crops and the centre crop (here 42 of 48
pixels, resized back to the model's input size), each also mirrored; probabilities are
averaged over the views.
"""

from __future__ import annotations

import cv2
import numpy as np

from ferkit.errors import UnknownNameError

TTA_MODES = ("none", "flip", "tencrop")
BATCH_SIZE = 256  # images (views) in one model call of predict_tta


def check_tta(mode: str) -> str:
    """``mode`` if it is a TTA mode; else an error that suggests the closest."""
    if mode not in TTA_MODES:
        raise UnknownNameError("TTA mode", mode, TTA_MODES)
    return mode


def tta_views(faces: np.ndarray, mode: str, crop_fraction: float = 42 / 48) -> list[np.ndarray]:
    """The augmented copies of a (N, H, W[, C]) batch that TTA averages over."""
    if mode == "none":
        return [faces]
    if mode == "flip":
        return [faces, faces[:, :, ::-1]]
    if check_tta(mode) != "tencrop":
        raise AssertionError(mode)  # check_tta accepted a mode handled above
    h, w = faces.shape[1:3]
    ch, cw = int(round(h * crop_fraction)), int(round(w * crop_fraction))
    origins = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
    views = []
    for y, x in origins:
        crops = faces[:, y : y + ch, x : x + cw]
        crops = (
            np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in crops])
            if len(crops)
            else crops
        )
        views += [crops, crops[:, :, ::-1]]
    return views


def predict_tta(predictor, faces: np.ndarray, mode: str = "none", batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Mean probabilities over the TTA views; all views of a batch go through one model call."""
    faces = np.asarray(faces)
    views = tta_views(faces, mode)
    if len(views) == 1:
        return predictor.predict_proba(faces, batch_size=batch_size)
    n = len(faces)
    out = []
    for start in range(0, n, max(1, batch_size // len(views))):
        chunk = np.concatenate(
            [np.ascontiguousarray(v[start : start + batch_size // len(views)]) for v in views]
        )
        probs = predictor.predict_proba(chunk, batch_size=len(chunk))
        out.append(probs.reshape(len(views), -1, probs.shape[1]).mean(0))
    return np.concatenate(out) if out else predictor.predict_proba(faces)
