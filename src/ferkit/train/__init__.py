"""Training: config, vectorised augmentation, the loop, checkpoints, fine-tuning (needs torch).

Usage::

    from ferkit.train import fit, load_config
    result = fit(load_config("run.yaml", overrides=["epochs=5"], data="fer2013.tar.gz"))
"""

from ferkit.train.config import AugmentConfig, TrainConfig, load_config
from ferkit.train.loop import TrainResult, evaluate, fit, train_one_epoch

__all__ = ["AugmentConfig", "TrainConfig", "TrainResult", "evaluate", "fit", "load_config", "train_one_epoch"]
