"""Vectorised augmentation of whole uint8 batches (no per-sample Python, no PIL).

Usage::

    x = augment_batch(images_u8, cfg.augment, generator)   # (B, C, H, W) float in [0, 1]
    x, soft_targets = mix_batch(x, one_hot, cfg.augment, generator)

All geometric changes (flip, zoom / resized crop, shift, rotation, ten-crop style crops)
are one affine matrix per sample applied by a single ``grid_sample``; photometric changes
and random erasing are broadcast arithmetic. The real-photo degradations (gamma, a light
gradient, low resolution, blur, sensor noise, JPEG) are batched too: blur is one grouped
convolution with a kernel per image, JPEG is an 8x8 block DCT quantised with libjpeg's tables
at a quality per image. Each is off by default and draws no random numbers while off, so
older runs resume exactly. Random numbers come from a CPU generator so a seeded run is
reproducible on any device.
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
    x = degrade(x, cfg, gen)
    if cfg.erasing > 0:
        x = random_erasing(x, cfg.erasing, gen)
    return x


def _chosen(gen: torch.Generator, n: int, p: float) -> Tensor:
    return torch.rand(n, generator=gen) < p


def degrade(x: Tensor, cfg: AugmentConfig, gen: torch.Generator) -> Tensor:
    """The real-photo degradations that ``cfg`` switches on, in the order a camera makes them."""
    for name, apply in _DEGRADATIONS:
        p = getattr(cfg, name)
        if p > 0:
            x = apply(x, p, gen)
    return x


def random_gamma(x: Tensor, p: float, gen: torch.Generator, limit: float = 1.6) -> Tensor:
    b = x.shape[0]
    log_g = _uniform(gen, b, -math.log(limit), math.log(limit))
    g = torch.where(_chosen(gen, b, p), log_g.exp(), torch.ones(b))
    return x.clamp(min=0.0).pow(g.to(x.device).view(b, 1, 1, 1))


def light_gradient(x: Tensor, p: float, gen: torch.Generator, strength: float = 0.35) -> Tensor:
    """Multiply by ``1 + a * (cos t * u + sin t * v)`` over [-1, 1]^2: light from one side."""
    b, _, h, w = x.shape
    angle = _uniform(gen, b, 0.0, 2 * math.pi)
    amp = torch.where(_chosen(gen, b, p), _uniform(gen, b, 0.1, strength), torch.zeros(b))
    dev = x.device
    v = torch.linspace(-1, 1, h, device=dev).view(1, h, 1)
    u = torch.linspace(-1, 1, w, device=dev).view(1, 1, w)
    cos, sin, amp = (t.to(dev).view(b, 1, 1) for t in (torch.cos(angle), torch.sin(angle), amp))
    gain = 1.0 + amp * (cos * u + sin * v)
    return (x * gain.unsqueeze(1)).clamp_(0.0, 1.0)


def low_resolution(x: Tensor, p: float, gen: torch.Generator, low: float = 0.35, high: float = 0.8) -> Tensor:
    """Area-downscale the chosen images (one factor per batch) and enlarge them back, bilinear."""
    b, _, h, w = x.shape
    factor = float(_uniform(gen, 1, low, high))
    chosen = _chosen(gen, b, p).to(x.device)
    if not bool(chosen.any()):
        return x
    small = F.interpolate(x, size=(max(2, round(h * factor)), max(2, round(w * factor))), mode="area")
    back = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return torch.where(chosen.view(b, 1, 1, 1), back, x)


def gaussian_blur(
    x: Tensor, p: float, gen: torch.Generator, sigma: tuple[float, float] = (0.4, 1.5)
) -> Tensor:
    """Separable Gaussian blur, a sigma per image (in pixels at 48 px, scaled to the image)."""
    b, c, h, w = x.shape
    scale = h / 48.0
    sig = _uniform(gen, b, *sigma) * scale
    sig = torch.where(_chosen(gen, b, p), sig, torch.zeros(b))
    radius = max(1, math.ceil(3 * sigma[1] * scale))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32).view(1, -1)
    kernel = torch.exp(-(t**2) / (2 * sig.clamp(min=1e-3).view(b, 1) ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # sigma 0 -> a delta: the image unchanged
    kernel = kernel.repeat_interleave(c, 0).to(x.device, x.dtype)  # (b * c, k)
    flat = x.reshape(1, b * c, h, w)
    flat = F.pad(flat, (radius, radius, 0, 0), mode="replicate")
    flat = F.conv2d(flat, kernel.view(b * c, 1, 1, -1), groups=b * c)
    flat = F.pad(flat, (0, 0, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel.view(b * c, 1, -1, 1), groups=b * c)
    return flat.view(b, c, h, w)


def sensor_noise(
    x: Tensor, p: float, gen: torch.Generator, levels: tuple[float, float] = (1.0, 8.0)
) -> Tensor:
    b = x.shape[0]
    sig = torch.where(_chosen(gen, b, p), _uniform(gen, b, *levels) / 255.0, torch.zeros(b))
    noise = torch.randn(tuple(x.shape), generator=gen).to(x.device)
    return (x + noise * sig.to(x.device).view(b, 1, 1, 1)).clamp_(0.0, 1.0)


# libjpeg's base quantisation tables (ITU T.81 Annex K), scaled by quality as libjpeg does
_LUMA_Q = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
_CHROMA_Q = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32  # fmt: skip


def jpeg_tables(quality: Tensor, base: list[int] = _LUMA_Q) -> Tensor:
    """(n,) qualities 1-100 -> (n, 8, 8) quantisation tables, libjpeg's scaling and rounding."""
    q = quality.clamp(1, 100)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    table = torch.tensor(base, dtype=torch.float32).view(1, 8, 8)
    return torch.floor((table * scale.view(-1, 1, 1) + 50.0) / 100.0).clamp(1, 255)


def _dct_matrix() -> Tensor:
    k = torch.arange(8, dtype=torch.float64).view(8, 1)
    n = torch.arange(8, dtype=torch.float64).view(1, 8)
    m = torch.cos((2 * n + 1) * k * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m.float()


def jpeg_compress(x: Tensor, quality: Tensor) -> Tensor:
    """Round-trip (B, C, H, W) images in [0, 1] through JPEG at a quality per image.

    Grey images use the luminance table; colour images go through YCbCr with the chroma
    table for Cb/Cr (no chroma subsampling). Sides that are not multiples of 8 are padded by
    replication, as an encoder does, and cropped back.
    """
    b, c, h, w = x.shape
    dev = x.device
    px = x.clamp(0, 1) * 255.0
    if c == 3:
        r, g, bl = px[:, 0], px[:, 1], px[:, 2]
        y = 0.299 * r + 0.587 * g + 0.114 * bl
        px = torch.stack([y, (bl - y) * 0.564 + 128.0, (r - y) * 0.713 + 128.0], 1)
    ph, pw = (-h) % 8, (-w) % 8
    if ph or pw:
        px = F.pad(px, (0, pw, 0, ph), mode="replicate")
    hh, ww = px.shape[2] // 8, px.shape[3] // 8
    blocks = (px.round() - 128.0).view(b, px.shape[1], hh, 8, ww, 8).permute(0, 1, 2, 4, 3, 5)
    d = _dct_matrix().to(dev)
    coef = d @ blocks @ d.T
    tables = [jpeg_tables(quality, _LUMA_Q)] + [jpeg_tables(quality, _CHROMA_Q)] * (2 if c == 3 else 0)
    qt = torch.stack(tables, 1).to(dev).view(b, len(tables), 1, 1, 8, 8)
    blocks = d.T @ (torch.round(coef / qt) * qt) @ d
    px = blocks.permute(0, 1, 2, 4, 3, 5).reshape(b, -1, hh * 8, ww * 8)[:, :, :h, :w] + 128.0
    if c == 3:
        y, cb, cr = px[:, 0], px[:, 1] - 128.0, px[:, 2] - 128.0
        px = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    return px.round().clamp(0, 255) / 255.0


def jpeg_artifacts(
    x: Tensor, p: float, gen: torch.Generator, quality: tuple[float, float] = (15, 75)
) -> Tensor:
    b = x.shape[0]
    q = _uniform(gen, b, *quality).round()
    chosen = _chosen(gen, b, p).to(x.device)
    if not bool(chosen.any()):
        return x
    return torch.where(chosen.view(b, 1, 1, 1), jpeg_compress(x, q), x)


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


# (config field, function): the order a camera degrades a face in
_DEGRADATIONS = (
    ("gamma", random_gamma),
    ("lighting", light_gradient),
    ("lowres", low_resolution),
    ("blur", gaussian_blur),
    ("noise", sensor_noise),
    ("jpeg", jpeg_artifacts),
)
