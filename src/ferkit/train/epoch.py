"""One epoch: train it (``train_one_epoch``), predict or score a split; the typed results.

Usage::

    stats = train_one_epoch(model, data, optimizer, cfg, epoch=0, device=device, precision="bf16")
    loss, accuracy, probs = evaluate_split(model, data.val, data, device, "bf16", cfg)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ferkit.errors import FerkitError
from ferkit.train.augment import augment_batch, mix_batch
from ferkit.train.config import TrainConfig
from ferkit.train.data import Split, TrainData, batch_order, class_weights, epoch_generator
from ferkit.train.device import Dist, autocast
from ferkit.train.distill import kd_loss
from ferkit.train.optim import EMA


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    seconds: float
    images_per_s: float


def normalise(x: Tensor, mean: float, std: float) -> Tensor:
    return (x - mean) / std


def train_one_epoch(
    model: nn.Module,
    data: TrainData,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    *,
    epoch: int,
    device: torch.device,
    precision: str,
    scheduler: Any = None,
    ema: EMA | None = None,
    on_batch: Callable[[int, int, float, float], None] | None = None,
    shard: Dist = Dist(),
) -> EpochStats:
    """One pass over the training split; returns mean loss, accuracy and throughput.

    Under DDP every rank draws the same global batch (same seed) and trains on its slice
    of it, so N processes see exactly the batches one process would.
    """
    model.train()
    if cfg.freeze_bn:  # BatchNorms normalise with their running statistics and stay as they are
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
                for p in module.parameters(recurse=False):
                    p.requires_grad_(False)
    gen = epoch_generator(cfg.seed, epoch)
    torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # dropout etc.
    split = data.train
    num_classes = len(data.label_set)
    sample_weights = None
    loss_weights = None
    if cfg.balance == "sampler":
        sample_weights = class_weights(split.labels, num_classes)[split.labels.cpu()]
    elif cfg.balance == "weights":
        loss_weights = class_weights(split.labels, num_classes).to(device)
    batches = batch_order(len(split), cfg.batch_size, gen, sample_weights)
    # torch 2.13 crashes in the bf16 channels_last CPU backward of depthwise convolutions
    # when the batch size is odd (3, 37, 101 crash; even sizes do not): drop one sample.
    even_only = cfg.channels_last and device.type == "cpu" and has_grouped_conv(model)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    total_loss = total_correct = seen = 0.0
    start = time.perf_counter()
    for i, idx in enumerate(batches):
        idx = idx.to(device)
        if even_only and len(idx) % (2 * shard.world):
            idx = idx[: len(idx) - len(idx) % (2 * shard.world)]
        x = augment_batch(split.images[idx], cfg.augment, gen)
        labels = split.labels[idx]
        if cfg.ferplus_mode == "soft" and split.soft is not None:
            targets = split.soft[idx]
        else:
            targets = F.one_hot(labels, num_classes).float()
        x, targets = mix_batch(x, targets, cfg.augment, gen)
        teacher = split.teacher[idx] if split.teacher is not None else None  # (B, K)
        if shard.world > 1:
            part = torch.arange(len(idx)).tensor_split(shard.world)[shard.rank].to(device)
            x, targets, labels, idx = x[part], targets[part], labels[part], idx[part]
            teacher = teacher[part] if teacher is not None else None
        x = normalise(x, data.mean, data.std)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            logits = model(x)
        loss = F.cross_entropy(
            logits.float(), targets, weight=loss_weights, label_smoothing=cfg.label_smoothing
        )
        if teacher is not None:
            kd = kd_loss(logits, teacher, cfg.kd_temperature)
            loss = (1 - cfg.kd_weight) * loss + cfg.kd_weight * kd
        if not torch.isfinite(loss):
            raise FerkitError(
                f"epoch {epoch + 1}, batch {i + 1}: loss is {loss.item()} (lower the learning rate?)"
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None and cfg.schedule != "plateau":
            scheduler.step()
        if ema is not None:
            ema.update(getattr(model, "module", model))
        n = len(idx)
        total_loss += loss.item() * n
        total_correct += (logits.argmax(1) == labels).sum().item()
        seen += n
        if on_batch is not None:
            on_batch(i + 1, len(batches), total_loss / seen, total_correct / seen)
    seconds = time.perf_counter() - start
    return EpochStats(
        total_loss / max(seen, 1), total_correct / max(seen, 1), seconds, seen / max(seconds, 1e-9)
    )


@torch.no_grad()
def predict_split(
    model: nn.Module,
    images: Tensor,
    mean: float,
    std: float,
    device: torch.device,
    precision: str = "fp32",
    batch_size: int = 512,
    tta: str = "none",
    channels_last: bool = True,
) -> Tensor:
    """Class probabilities (N, K) for uint8 images (N, C, H, W); ``tta='flip'`` averages a mirror."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = normalise(images[start : start + batch_size].to(device).float() / 255.0, mean, std)
        views = [x, x.flip(3)] if tta == "flip" else [x]
        probs = 0
        for v in views:
            if channels_last:
                v = v.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                probs = probs + model(v).float().softmax(1)
        out.append((probs / len(views)).cpu())
    return torch.cat(out)


def evaluate_split(
    model: nn.Module, split: Split, data: TrainData, device: torch.device, precision: str, cfg: TrainConfig
) -> tuple[float, float, Tensor]:
    """(loss, accuracy, probabilities) on one split."""
    probs = predict_split(
        model,
        split.images,
        data.mean,
        data.std,
        device,
        precision,
        cfg.eval_batch_size,
        channels_last=cfg.channels_last,
    )
    labels = split.labels.cpu()
    loss = F.nll_loss(probs.clamp_min(1e-8).log(), labels).item()
    return loss, (probs.argmax(1) == labels).float().mean().item(), probs


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    best_epoch: int
    best_val_accuracy: float
    test_accuracy: float | None
    test_metrics: dict[str, Any]
    wall_seconds: float


def has_grouped_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in model.modules())
