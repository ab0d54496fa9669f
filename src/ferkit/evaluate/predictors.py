"""Anything that turns uint8 faces into class probabilities, loaded from a path or a name.

Usage::

    predictor = load_predictor("runs/vgg_fer-.../")     # run folder, .pt, .onnx, or shipped name
    probs = predictor.predict_proba(faces)               # (N, 48, 48) uint8 -> (N, K)

ONNX files are run by ONNX Runtime alone; checkpoints need torch (imported only then).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from ferkit.errors import FerkitError
from ferkit.runtime.classifier import EnsembleClassifier, ModelError, OnnxClassifier, is_ensemble_card
from ferkit.runtime.models import WEIGHTS_DIR, shipped_models


class Predictor(Protocol):
    name: str

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def input_size(self) -> int: ...

    def predict_proba(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray: ...


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
        from ferkit.export import card_json, card_metadata
        from ferkit.runtime.classifier import ModelCard

        # The card an export of this checkpoint would carry (report tables read it).
        self.card = ModelCard(
            self._labels,
            self._size,
            self.color,
            ckpt["model_name"],
            card_json(card_metadata(ckpt, None, self.model)),
        )

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


def load_predictor(spec: str | os.PathLike) -> Predictor:
    """A run folder, a ``.pt`` checkpoint, an ``.onnx`` file, or a shipped model name."""
    path = Path(spec).expanduser()
    if path.suffix == ".onnx":
        predictor: Predictor = OnnxClassifier(path)
    elif path.suffix == ".json":
        predictor = EnsembleClassifier(path)
    elif path.is_dir() or path.suffix in (".pt", ".pth"):
        if not path.exists():
            raise ModelError(f"{path}: model not found")
        try:
            predictor = TorchPredictor(path)
        except ModuleNotFoundError as exc:
            raise FerkitError(
                f"{path}: evaluating a checkpoint needs torch (pip install 'ferkit[train]')"
            ) from exc
    elif (WEIGHTS_DIR / f"{spec}.onnx").exists():
        predictor = OnnxClassifier(WEIGHTS_DIR / f"{spec}.onnx")
    elif is_ensemble_card(WEIGHTS_DIR / f"{spec}.json"):
        predictor = EnsembleClassifier(WEIGHTS_DIR / f"{spec}.json")
    else:
        shipped = ", ".join(shipped_models()) or "none yet"
        raise ModelError(
            f"{spec}: not a model: expected a run folder, a .pt checkpoint, an .onnx file, "
            f"or a shipped model name ({shipped})"
        )
    predictor.name = str(spec)
    return predictor
