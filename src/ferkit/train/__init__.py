"""Training: config, vectorised augmentation, the loop, checkpoints, fine-tuning (needs torch).

Usage::

    from ferkit.train import fit, load_config
    result = fit(load_config("run.yaml", overrides=["epochs=5"], data="fer2013.tar.gz"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> module; imported on first use, so ferkit.train.runs (listing runs) loads no torch.
_EXPORTS = {
    "AugmentConfig": "ferkit.train.config",
    "TrainConfig": "ferkit.train.config",
    "load_config": "ferkit.train.config",
    "TrainResult": "ferkit.train.epoch",
    "evaluate_split": "ferkit.train.epoch",
    "train_one_epoch": "ferkit.train.epoch",
    "fit": "ferkit.train.loop",
}

if TYPE_CHECKING:
    from ferkit.train.config import AugmentConfig, TrainConfig, load_config
    from ferkit.train.epoch import TrainResult, evaluate_split, train_one_epoch
    from ferkit.train.loop import fit


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ferkit.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "AugmentConfig",
    "TrainConfig",
    "TrainResult",
    "evaluate_split",
    "fit",
    "load_config",
    "train_one_epoch",
]
