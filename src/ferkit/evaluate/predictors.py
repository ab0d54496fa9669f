"""Checkpoints as predictors: a run folder or ``.pt`` file run by torch, for evaluation.

Usage::

    predictor = TorchPredictor("runs/vgg_fer-.../")     # usually via ferkit.runtime.catalog.load_model
    probs = predictor.predict_proba(faces)               # (N, 48, 48) uint8 -> (N, K)

ONNX files never come here: ``load_model`` runs them on ONNX Runtime alone.
"""

from __future__ import annotations

import os

import numpy as np

from ferkit.errors import ModelError


class TorchPredictor:
    """A ferkit checkpoint run by torch (fp32, CPU unless told otherwise)."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        import torch

        from ferkit.train.checkpoint import load_checkpoint, model_from_checkpoint

        ckpt = load_checkpoint(path)
        if "model_name" not in ckpt:
            raise ModelError(
                f"{path}: a bare state dict has no labels or preprocessing; use a ferkit checkpoint"
            )
        self._torch = torch
        self.model = model_from_checkpoint(ckpt).to(device)
        self.device = device
        pre = ckpt["preprocessing"]
        self._labels = tuple(ckpt["label_names"])
        self._size = int(pre["input_size"])
        self.mean, self.std = float(pre["mean"]), float(pre["std"])
        self.color = pre["color"]
        self.name = str(path)
        self.checkpoint = ckpt
        from ferkit.train.checkpoint import card_from_checkpoint

        self.card = card_from_checkpoint(ckpt, None, self.model)  # what an export would carry

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def input_size(self) -> int:
        return self._size

    def predict_proba(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        torch = self._torch
        faces = np.asarray(faces)
        if faces.shape[1:3] != (self._size, self._size):
            import cv2

            faces = np.stack(
                [cv2.resize(f, (self._size, self._size), interpolation=cv2.INTER_AREA) for f in faces]
            )
        x = torch.from_numpy(np.ascontiguousarray(faces))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                batch = (x[i : i + batch_size].to(self.device).float() / 255.0 - self.mean) / self.std
                out.append(self.model(batch).float().softmax(1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self._labels)), np.float32)
