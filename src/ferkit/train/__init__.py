"""Training: config, vectorised augmentation, the loop, checkpoints, fine-tuning (needs torch).

Usage::

    from ferkit.train import fit, load_config
    result = fit(load_config("run.yaml", overrides=["epochs=5"], data="fer2013.tar.gz"))
"""

from ferkit.train.config import AugmentConfig, TrainConfig, load_config
from ferkit.train.epoch import TrainResult, evaluate_split, train_one_epoch
from ferkit.train.loop import fit

__all__ = [
    "AugmentConfig",
    "TrainConfig",
    "TrainResult",
    "evaluate_split",
    "fit",
    "load_config",
    "train_one_epoch",
]
