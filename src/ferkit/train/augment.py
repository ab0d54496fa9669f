"""Vectorised augmentation of whole uint8 batches (no per-sample Python, no PIL).

Usage::

    x = augment_batch(images_u8, cfg.augment, generator)   # (B, C, H, W) float in [0, 1]
    x, soft_targets = mix_batch(x, one_hot, cfg.augment, generator)

All geometric changes (flip, zoom / resized crop, shift, rotation, ten-crop style crops)
are one affine matrix per sample applied by a single ``grid_sample``; photometric changes
and random erasing are broadcast arithmetic. Random numbers come from a CPU generator so a
seeded run is reproducible on any device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ferkit.train.config import AugmentConfig


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def affine_params(n: int, cfg: AugmentConfig, gen: torch.Generator) -> Tensor:
    """(n, 2, 3) matrices mapping output to input coordinates (``affine_grid`` convention)."""
    scale = _uniform(gen, n, *cfg.scale)
    if cfg.ten_crop:  # a random 40/48 crop, enlarged back to full size
        scale = scale * (48.0 / 40.0)
    angle = _uniform(gen, n, -cfg.rotate, cfg.rotate) * (math.pi / 180.0)
    flip = torch.where(torch.rand(n, generator=gen) < cfg.flip, -1.0, 1.0)
    max_shift = 2.0 * cfg.shift + (2.0 * (1 - 40.0 / 48.0) / 2 if cfg.ten_crop else 0.0)
    tx = _uniform(gen, n, -max_shift, max_shift)
    ty = _uniform(gen, n, -max_shift, max_shift)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    return theta  # (n, 2, 3)


def augment_batch(images: Tensor, cfg: AugmentConfig, gen: torch.Generator) -> Tensor:
    """Augment a (B, C, H, W) uint8 batch; returns float32 in [0, 1] on the same device."""
    b = images.shape[0]
    device = images.device
    x = images.float().div_(255.0)
    geometric = cfg.flip > 0 or cfg.rotate > 0 or cfg.shift > 0 or cfg.scale != (1.0, 1.0) or cfg.ten_crop
    if geometric:
        theta = affine_params(b, cfg, gen).to(device)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if cfg.brightness > 0 or cfg.contrast > 0:
        contrast = _uniform(gen, b, 1 - cfg.contrast, 1 + cfg.contrast).to(device).view(b, 1, 1, 1)
        bright = _uniform(gen, b, -cfg.brightness, cfg.brightness).to(device).view(b, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean + bright * 0.5).clamp_(0.0, 1.0)
    if cfg.erasing > 0:
        x = random_erasing(x, cfg.erasing, gen)
    return x


def random_erasing(x: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """Erase one random rectangle (2-20% of the area, aspect 0.3-3.3) with noise, w.p. ``p``."""
    b, _, h, w = x.shape
    area = _uniform(gen, b, 0.02, 0.2) * h * w
    log_ratio = _uniform(gen, b, math.log(0.3), math.log(3.3))
    ratio = torch.exp(log_ratio)
    eh = torch.sqrt(area * ratio).clamp(1, h).floor()
    ew = torch.sqrt(area / ratio).clamp(1, w).floor()
    y0 = (torch.rand(b, generator=gen) * (h - eh + 1)).floor()
    x0 = (torch.rand(b, generator=gen) * (w - ew + 1)).floor()
    apply = torch.rand(b, generator=gen) < p
    fill = torch.rand(b, generator=gen)
    dev = x.device
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    y0, x0, eh, ew = (t.to(dev).view(b, 1, 1) for t in (y0, x0, eh, ew))
    mask = (ys >= y0) & (ys < y0 + eh) & (xs >= x0) & (xs < x0 + ew) & apply.to(dev).view(b, 1, 1)
    return torch.where(mask.unsqueeze(1), fill.to(dev).view(b, 1, 1, 1), x)


def mix_batch(x: Tensor, targets: Tensor, cfg: AugmentConfig, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Mixup or cutmix (one chosen per batch when both are on) with soft (B, K) targets."""
    if cfg.mixup <= 0 and cfg.cutmix <= 0:
        return x, targets
    use_cutmix = cfg.cutmix > 0 and (cfg.mixup <= 0 or torch.rand(1, generator=gen).item() < 0.5)
    alpha = cfg.cutmix if use_cutmix else cfg.mixup
    lam = _beta(alpha, gen)
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    if use_cutmix:
        h, w = x.shape[2:]
        cut = math.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * targets + (1 - lam) * targets[perm]


def _beta(alpha: float, gen: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw that follows the seeded torch generator."""
    seed = int(torch.randint(2**62, (1,), generator=gen))
    return float(np.random.default_rng(seed).beta(alpha, alpha))
