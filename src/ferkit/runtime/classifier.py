"""Expression classifier on ONNX Runtime: numpy in, probabilities out. Never imports torch.

Usage::

    clf = OnnxClassifier("model.onnx")
    clf.labels                         # ('angry', 'disgust', ...)
    probs = clf.predict_proba(faces)   # faces: (N, 48, 48) uint8 grey -> (N, K) float32

ferkit's ONNX files carry their labels and preprocessing in ``metadata_props`` and take
float32 pixels in [0, 1] (normalisation and softmax are inside the graph), so the same
file gives the same numbers wherever it runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferkit.errors import FerkitError


class ModelError(FerkitError, ValueError):
    pass


@dataclass(frozen=True)
class ModelCard:
    """What a weight file says about itself (ONNX ``metadata_props`` / the JSON beside it)."""

    labels: tuple[str, ...]
    input_size: int = 48
    color: str = "gray"
    architecture: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str) -> ModelCard:
        if "labels" not in meta:
            raise ModelError(f"{source}: no 'labels' in the model's metadata: not a ferkit model file")
        try:
            labels = tuple(json.loads(meta["labels"]))
            extra = {k: _maybe_json(v) for k, v in meta.items()}
            return cls(
                labels,
                int(meta.get("input_size", 48)),
                meta.get("color", "gray"),
                meta.get("architecture", ""),
                extra,
            )
        except (ValueError, TypeError) as exc:
            raise ModelError(f"{source}: malformed metadata ({exc})") from exc


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


class _Carded:
    """Labels and input size come from the model's card (``self.card``)."""

    card: ModelCard

    @property
    def labels(self) -> tuple[str, ...]:
        return self.card.labels

    @property
    def input_size(self) -> int:
        return self.card.input_size


class OnnxClassifier(_Carded):
    """An exported ferkit model (``.onnx``) on ONNX Runtime's CPU provider."""

    def __init__(
        self, path: str | os.PathLike, *, threads: int | None = None, providers: list[str] | None = None
    ):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.exists():
            raise ModelError(f"{self.path}: model file not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # No spin-waiting after a call: between calls the cores go to the face detector
        # (measured: a 640x480 frame's detect + classify went from 7.9 to 6.0 ms on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ModelError(
                f"{self.path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})"
            ) from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        self.card = ModelCard.from_metadata(meta, str(self.path))
        self.input_name = self.session.get_inputs()[0].name

    def prepare(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, H, W) or (N, H, W, 3) -> float32 (N, C, S, S) in [0, 1]."""
        faces = np.asarray(faces)
        if faces.ndim == 2 or (faces.ndim == 3 and self.card.color == "rgb" and faces.shape[-1] == 3):
            faces = faces[None]
        size = self.input_size
        if faces.shape[1:3] != (size, size):
            faces = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces])
        if self.card.color == "gray":
            if faces.ndim == 4:
                faces = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in faces])
            x = faces[:, None]
        else:
            if faces.ndim == 3:
                faces = np.repeat(faces[..., None], 3, axis=3)
            x = faces.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32) * np.float32(1 / 255)

    def predict_proba(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, K) for uint8 face crops."""
        x = self.prepare(faces)
        if len(x) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        out = [
            self.session.run(None, {self.input_name: x[i : i + batch_size]})[0]
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out).astype(np.float32)


class EnsembleClassifier(_Carded):
    """Several ferkit ONNX models as one: the weighted mean of their probabilities.

    Described by a JSON card (``"kind": "ensemble"``, ``members``: shipped names or ``.onnx``
    paths relative to the card, ``member_weights``, ``labels`` and the usual card fields), so
    it loads, evaluates and recognises like any single model. The weighted mean is linear, so
    flip TTA on the ensemble equals the weighted mean of each member's flip TTA.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        self.path = Path(path)
        try:
            card = json.loads(self.path.read_text())
            members, weights = card["members"], card["member_weights"]
            labels = tuple(card["labels"])
        except FileNotFoundError as exc:
            raise ModelError(f"{self.path}: ensemble card not found") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(
                f"{self.path}: not an ensemble card (needs members, member_weights, labels: {exc})"
            ) from exc
        if card.get("kind") != "ensemble" or len(members) != len(weights) or not members:
            raise ModelError(f"{self.path}: an ensemble card needs kind 'ensemble' and one weight per member")
        from ferkit.runtime.models import resolve_model

        self.members = []
        for member in members:
            beside = self.path.parent / f"{member}"
            spec = beside if str(member).endswith(".onnx") and beside.exists() else member
            clf = OnnxClassifier(resolve_model(spec), threads=threads)
            if clf.labels != labels:
                raise ModelError(
                    f"{self.path}: member {member} predicts {clf.labels}, the card says {labels}"
                )
            self.members.append(clf)
        self.weights = np.asarray(weights, np.float64) / float(np.sum(weights))
        size = max(m.input_size for m in self.members)
        self.card = ModelCard(labels, size, "gray", card.get("architecture", "ensemble"), card)

    def predict_proba(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        stack = np.stack([m.predict_proba(faces, batch_size) for m in self.members])
        return np.tensordot(self.weights, stack, axes=1).astype(np.float32)


def is_ensemble_card(path: str | os.PathLike) -> bool:
    path = Path(path)
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("kind") == "ensemble"
    except (ValueError, AttributeError, OSError):
        return False


def load_classifier(path: str | os.PathLike, *, threads: int | None = None):
    """An ``.onnx`` model or an ensemble card (``.json``) -> a classifier with predict_proba."""
    if Path(path).suffix == ".json":
        return EnsembleClassifier(path, threads=threads)
    return OnnxClassifier(path, threads=threads)
