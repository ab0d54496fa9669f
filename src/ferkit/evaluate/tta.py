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

TTA_MODES = ("none", "flip", "tencrop")


def tta_views(faces: np.ndarray, mode: str, crop_fraction: float = 42 / 48) -> list[np.ndarray]:
    """The augmented copies of a (N, H, W[, C]) batch that TTA averages over."""
    if mode == "none":
        return [faces]
    if mode == "flip":
        return [faces, faces[:, :, ::-1]]
    if mode != "tencrop":
        raise ValueError(f"unknown TTA mode {mode!r}; choose one of {TTA_MODES}")
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


def predict_tta(predictor, faces: np.ndarray, mode: str = "none", batch_size: int = 256) -> np.ndarray:
    views = tta_views(np.asarray(faces), mode)
    total = None
    for v in views:
        p = predictor.predict_proba(np.ascontiguousarray(v), batch_size=batch_size)
        total = p if total is None else total + p
    return total / len(views)
