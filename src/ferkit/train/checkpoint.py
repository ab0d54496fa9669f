"""Self-describing checkpoints: weights, model name and arguments, labels, preprocessing, state.

Usage::

    save_checkpoint(path, payload)                 # atomic: a crash never leaves half a file
    ckpt = load_checkpoint("run/best.pt")
    model = model_from_checkpoint(ckpt)            # rebuilt without the script that made it

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads
with ``torch.load(weights_only=True)`` (no pickled code runs).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ferkit.card import LICENSE, ModelCard
from ferkit.errors import CheckpointError
from ferkit.models import create_model
from ferkit.utils import atomic_path

CHECKPOINT_FORMAT = "ferkit-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a ferkit checkpoint or a plain state dict; clear errors for missing or corrupt files."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise CheckpointError(f"{path}: run folder has no best.pt or last.pt")
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {str(exc).splitlines()[0]}"
        ) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of weights, found {type(obj).__name__}")
    if obj.get("format") != CHECKPOINT_FORMAT:
        # A bare state dict (e.g. torchvision weights): wrap it.
        state = obj.get("state_dict", obj.get("model", obj))
        if not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{path}: neither a ferkit checkpoint nor a state dict of tensors")
        return {"model": state, "source": str(path)}
    obj["source"] = str(path)
    return obj


def model_from_checkpoint(ckpt: dict[str, Any], *, ema: bool = True) -> nn.Module:
    """Rebuild the model a ferkit checkpoint describes and load its (EMA, if any) weights."""
    if "model_name" not in ckpt:
        raise CheckpointError(f"{ckpt.get('source')}: a bare state dict does not say which model it is")
    args = dict(ckpt.get("model_args", {}))
    model = create_model(ckpt["model_name"], **args)
    state = ckpt["ema"] if ema and ckpt.get("ema") is not None else ckpt["model"]
    model.load_state_dict(state)
    model.eval()
    return model


def card_from_checkpoint(
    ckpt: dict[str, Any], metrics: dict[str, Any] | None = None, model: nn.Module | None = None
) -> ModelCard:
    """The model card of a training checkpoint (what its ONNX export carries)."""
    pre = ckpt["preprocessing"]
    config = ckpt.get("config", {})
    history = ckpt.get("history", [])
    extra: dict[str, Any] = {
        "label_set": ckpt.get("label_set", ""),
        "input_range": "float32 pixels in [0, 1], shape (batch, channels, size, size)",
        "output": "probabilities (softmax in graph)",
        "epochs": ckpt.get("epoch", ""),  # epochs these weights were trained for
        "schedule_epochs": config.get("epochs", ""),  # the run's planned length
        "best_epoch": ckpt.get("best_epoch", ""),
        "train_seconds": round(sum(r.get("seconds", 0.0) for r in history)),
        "hardware": ckpt.get("hardware", ""),
    }
    if model is not None:
        from ferkit.models import count_macs

        chans = 1 if pre["color"] == "gray" else 3
        extra["parameters"] = sum(p.numel() for p in model.parameters())
        extra["macs"] = count_macs(model, int(pre["input_size"]), chans)
    if config.get("init"):
        extra["initial_weights"] = str(config["init"])
    return ModelCard(
        labels=tuple(ckpt["label_names"]),
        input_size=int(pre["input_size"]),
        color=pre["color"],
        architecture=ckpt["model_name"],
        model_args=dict(ckpt.get("model_args", {})),
        normalization={"mean": pre["mean"], "std": pre["std"], "applied_in_graph": True},
        recipe=dict(config),
        metrics=dict(metrics or {}),
        license=LICENSE,
        extra=extra,
    )
