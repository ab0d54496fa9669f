"""Optimisers, learning-rate schedules and the EMA of weights.

Usage::

    optimizer = make_optimizer(cfg, model)
    scheduler = make_scheduler(cfg, optimizer, steps_per_epoch)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ferkit.train.config import TrainConfig
from ferkit.train.finetune import param_groups


class EMA:
    """Exponential moving average of weights (and BN buffers copied)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(self.decay).add_(v.detach().float(), alpha=1 - self.decay)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.shadow = {k: v.clone().float() for k, v in state.items()}


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.lr, cfg.weight_decay, cfg.backbone_lr_mult)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """LR multiplier at a step: warm-up then cosine / one-cycle / constant."""
    if schedule == "onecycle":  # 30% up from lr/25, then cosine down to lr/1e4
        peak = max(int(0.3 * total), 1)
        if step < peak:
            return 0.04 + 0.96 * step / peak
        t = (step - peak) / max(total - peak, 1)
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        t = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return 1.0


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=3)
    total = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup, cfg.schedule))
