"""CycleGAN training between two expression classes (e.g. neutral <-> disgust).

Usage::

    cfg = GanConfig(data="fer2013.tar.gz", source="neutral", target="disgust", epochs=20)
    result = train_cyclegan(cfg)              # or train_cyclegan(cfg, resume=run_dir)

Both domains come from the Training split only. Losses: LSGAN (mean squared error against
1 / 0), cycle consistency (L1, weight ``lambda_cycle``) and identity (L1, weight
``lambda_cycle * lambda_identity``). Discriminators see fakes drawn from a 50-image history
buffer. Adam (2e-4, beta1 0.5), constant learning rate then linear decay to 0 from
``decay_from`` to the last epoch. Each epoch writes ``last.pt`` (atomically, with the
history buffers and optimiser state, so a resumed run continues exactly), a row of
``metrics.csv`` and ``samples/epoch_NNN.png`` (rows: source | translated | reconstructed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ferkit.errors import ConfigError, FerkitError
from ferkit.gan.networks import CycleGan, ImagePool
from ferkit.progress import batch_progress
from ferkit.train.checkpoint import load_checkpoint, save_checkpoint
from ferkit.train.config import AugmentConfig, _apply
from ferkit.train.device import autocast, resolve_device, resolve_precision
from ferkit.utils import atomic_path, new_run_dir, write_history_csv

GAN_KIND = "cyclegan"


@dataclass
class GanConfig:
    data: str = ""
    source: str = "neutral"  # domain A
    target: str = "disgust"  # domain B
    split: str = "train"  # only this split's faces are used (role or exact name)
    limit: int = 0  # at most N faces per domain (quick runs); 0 = all
    epochs: int = 20
    decay_from: int = 0  # epoch after which the LR decays linearly to 0; 0 = half of epochs
    steps_per_epoch: int = 0  # 0 = one pass over the larger domain
    batch_size: int = 32
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    # Sized for a 2-core CPU (~30 img/s in bf16); the paper's 64 / 9 / 64 suit a GPU.
    ngf: int = 16
    n_blocks: int = 4
    ndf: int = 32
    n_layers: int = 3
    flip: float = 0.5  # augmentation: horizontal flips and a little zoom / shift
    jitter: float = 0.04
    device: str = "auto"
    precision: str = "auto"
    threads: int = 0
    seed: int = 0
    samples: int = 8  # faces in each epoch's sample grid
    out: str | None = None
    progress: bool | None = None


def gan_config(**values: Any) -> GanConfig:
    cfg = GanConfig()
    _apply(cfg, {k: v for k, v in values.items() if v is not None})
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise ConfigError("epochs, batch_size and lr must be positive")
    if cfg.source == cfg.target:
        raise ConfigError(f"source and target are both {cfg.source!r}; pick two different classes")
    return cfg


# ----------------------------------------------------------------------------- data
def to_unit(images_u8: Tensor) -> Tensor:
    """uint8 (B, 1, H, W) -> float in [-1, 1]."""
    return images_u8.float().div(127.5).sub(1.0)


def to_uint8(x: Tensor) -> np.ndarray:
    """float in [-1, 1] (B, 1, H, W) -> uint8 (B, H, W)."""
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)[:, 0].cpu().numpy()


def domain_images(dataset, label: str, split: str, limit: int = 0) -> np.ndarray:
    """The (N, H, W) uint8 faces of one class in one split (grey only)."""
    if dataset.channels != 1:
        raise FerkitError(f"{dataset.source}: the CycleGAN works on grey faces, this dataset is RGB")
    try:
        index = dataset.label_set.index(label)
    except (KeyError, ValueError) as exc:
        raise FerkitError(
            f"{dataset.source}: unknown class {label!r}; classes are {', '.join(dataset.label_set.names)}"
        ) from exc
    part = dataset.pick(split)
    images = part.images[part.labels == index]
    if limit:
        images = images[:limit]
    if len(images) < 2:
        raise FerkitError(f"{dataset.source}: split {split!r} has {len(images)} {label!r} faces; need >= 2")
    return images


@dataclass
class GanResult:
    run_dir: Path
    epochs: int
    history: list[dict[str, float]] = field(default_factory=list)
    wall_seconds: float = 0.0


def _lr_lambda(cfg: GanConfig, steps: int):
    decay_from = cfg.decay_from or cfg.epochs // 2

    def factor(step: int) -> float:
        epoch = step / steps
        if epoch < decay_from:
            return 1.0
        return max(0.0, 1.0 - (epoch - decay_from) / max(cfg.epochs - decay_from, 1))

    return factor


def _steps_per_epoch(cfg: GanConfig, n_a: int, n_b: int) -> int:
    return cfg.steps_per_epoch or max(1, max(n_a, n_b) // cfg.batch_size)


def _epoch_indices(n: int, count: int, gen: torch.Generator) -> Tensor:
    reps = -(-count // n)
    return torch.cat([torch.randperm(n, generator=gen) for _ in range(reps)])[:count]


def train_step(
    gan: CycleGan,
    real_a: Tensor,
    real_b: Tensor,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    pools: tuple[ImagePool, ImagePool],
    cfg: GanConfig,
    gen: torch.Generator,
    amp: contextlib.AbstractContextManager | None = None,
) -> dict[str, float]:
    """One CycleGAN update: generators first, then both discriminators on pooled fakes."""
    amp_ctx = amp if amp is not None else contextlib.nullcontext()
    for d in (gan.d_a, gan.d_b):
        d.requires_grad_(False)
    with amp_ctx:
        fake_b = gan.g_ab(real_a)
        rec_a = gan.g_ba(fake_b)
        fake_a = gan.g_ba(real_b)
        rec_b = gan.g_ab(fake_a)
        pred_fb, pred_fa = gan.d_b(fake_b), gan.d_a(fake_a)
        idt_b = gan.g_ab(real_b) if cfg.lambda_identity > 0 else None
        idt_a = gan.g_ba(real_a) if cfg.lambda_identity > 0 else None
    adv = _lsgan(pred_fb, 1.0) + _lsgan(pred_fa, 1.0)
    cycle = F.l1_loss(rec_a.float(), real_a) + F.l1_loss(rec_b.float(), real_b)
    identity = torch.zeros((), device=real_a.device)
    if idt_a is not None and idt_b is not None:
        identity = F.l1_loss(idt_a.float(), real_a) + F.l1_loss(idt_b.float(), real_b)
    loss_g = adv + cfg.lambda_cycle * cycle + cfg.lambda_cycle * cfg.lambda_identity * identity
    if not torch.isfinite(loss_g):
        raise FerkitError(f"generator loss is {loss_g.item()} (lower the learning rate?)")
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()

    for d in (gan.d_a, gan.d_b):
        d.requires_grad_(True)
    pool_a, pool_b = pools
    fake_b_old = pool_b.query(fake_b.detach().float(), gen)
    fake_a_old = pool_a.query(fake_a.detach().float(), gen)
    with amp_ctx:
        d_b_real, d_b_fake = gan.d_b(real_b), gan.d_b(fake_b_old)
        d_a_real, d_a_fake = gan.d_a(real_a), gan.d_a(fake_a_old)
    loss_d_b = 0.5 * (_lsgan(d_b_real, 1.0) + _lsgan(d_b_fake, 0.0))
    loss_d_a = 0.5 * (_lsgan(d_a_real, 1.0) + _lsgan(d_a_fake, 0.0))
    opt_d.zero_grad(set_to_none=True)
    (loss_d_a + loss_d_b).backward()
    opt_d.step()
    return {
        "loss_g_adv": adv.item(),
        "loss_cycle": cycle.item(),
        "loss_identity": identity.item(),
        "loss_d_a": loss_d_a.item(),
        "loss_d_b": loss_d_b.item(),
    }


def _lsgan(pred: Tensor, target: float) -> Tensor:
    pred = pred.float()
    return F.mse_loss(pred, torch.full_like(pred, target))


# ----------------------------------------------------------------------------- fit
def train_cyclegan(
    cfg: GanConfig,
    *,
    resume: str | os.PathLike | None = None,
    epochs: int | None = None,
    dataset=None,
) -> GanResult:
    """Train (or continue) a CycleGAN; everything lands in the run folder.

    On ``resume`` the run's own config is used; ``epochs`` (when given) sets its new length.
    """

    ckpt = None
    if resume is not None:
        run_dir = Path(resume)
        ckpt = load_checkpoint(run_dir / "last.pt")
        if ckpt.get("kind") != GAN_KIND:
            raise FerkitError(f"{run_dir}: not a CycleGAN run (no CycleGAN checkpoint in it)")
        saved = GanConfig()
        _apply(saved, ckpt["config"])
        saved.epochs = saved.epochs if epochs is None else epochs
        saved.progress = cfg.progress
        cfg = saved
    else:
        run_dir = new_run_dir(cfg.out, f"cyclegan-{cfg.source}-{cfg.target}")
        if not cfg.data and dataset is None:
            raise FerkitError("no data: pass --data (a FER-2013 file or a labelled folder)")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    if precision == "fp16":  # LSGAN + fp16 without a scaler is fragile; bf16 or fp32 only
        precision = "fp32"
    if dataset is None:
        from ferkit.data import load_dataset

        dataset = load_dataset(cfg.data)
    images_a = torch.from_numpy(domain_images(dataset, cfg.source, cfg.split, cfg.limit)).unsqueeze(1)
    images_b = torch.from_numpy(domain_images(dataset, cfg.target, cfg.split, cfg.limit)).unsqueeze(1)
    images_a, images_b = images_a.to(device), images_b.to(device)

    torch.manual_seed(cfg.seed)
    gan = CycleGan.create(cfg).to(device)
    opt_g = torch.optim.Adam(
        list(gan.g_ab.parameters()) + list(gan.g_ba.parameters()), lr=cfg.lr, betas=(cfg.beta1, 0.999)
    )
    opt_d = torch.optim.Adam(
        list(gan.d_a.parameters()) + list(gan.d_b.parameters()), lr=cfg.lr, betas=(cfg.beta1, 0.999)
    )
    steps = _steps_per_epoch(cfg, len(images_a), len(images_b))
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, _lr_lambda(cfg, steps))
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, _lr_lambda(cfg, steps))
    pools = (ImagePool(cfg.pool_size), ImagePool(cfg.pool_size))
    epoch, history = 0, []
    if ckpt is not None:
        for name, net in gan.nets().items():
            net.load_state_dict(ckpt[name])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        sched_g.load_state_dict(ckpt["sched_g"])
        sched_d.load_state_dict(ckpt["sched_d"])
        pools[0].load(ckpt["pool_a"])
        pools[1].load(ckpt["pool_b"])
        epoch, history = int(ckpt["epoch"]), list(ckpt["history"])
        print(f"resuming {run_dir} after epoch {epoch}/{cfg.epochs}", file=sys.stderr, flush=True)
    print(
        f"CycleGAN {cfg.source} ({len(images_a)}) <-> {cfg.target} ({len(images_b)}) on {device} "
        f"({precision}), {steps} steps/epoch -> {run_dir}",
        file=sys.stderr,
        flush=True,
    )
    aug = AugmentConfig(
        flip=cfg.flip,
        scale=(1.0, 1.0 + 2 * cfg.jitter),
        shift=cfg.jitter,
        rotate=0.0,
        brightness=0.0,
        contrast=0.0,
        erasing=0.0,
    )
    fixed = images_a[torch.linspace(0, len(images_a) - 1, min(cfg.samples, len(images_a))).long()]
    start_all = time.perf_counter()
    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    try:
        while epoch < cfg.epochs:
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)
            idx_a = _epoch_indices(len(images_a), steps * cfg.batch_size, gen).view(steps, -1)
            idx_b = _epoch_indices(len(images_b), steps * cfg.batch_size, gen).view(steps, -1)
            sums: dict[str, float] = {}
            t0 = time.perf_counter()
            with contextlib.ExitStack() as stack:
                update = batch_progress(stack, show, f"epoch {epoch + 1}/{cfg.epochs}", cfg.batch_size, steps)
                for i in range(steps):
                    real_a = _augment(images_a[idx_a[i].to(device)], aug, gen)
                    real_b = _augment(images_b[idx_b[i].to(device)], aug, gen)
                    losses = train_step(
                        gan, real_a, real_b, opt_g, opt_d, pools, cfg, gen, autocast(device, precision)
                    )
                    sched_g.step()
                    sched_d.step()
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + v
                    update(i + 1, steps, f"cycle {losses['loss_cycle']:.3f} D {losses['loss_d_b']:.3f}")
            seconds = time.perf_counter() - t0
            epoch += 1
            row = {"epoch": epoch, **{k: v / steps for k, v in sums.items()}}
            rate = steps * cfg.batch_size / seconds
            row.update(lr=opt_g.param_groups[0]["lr"], seconds=seconds, img_per_s=rate)
            history.append(row)
            print(
                f"epoch {epoch}/{cfg.epochs}  "
                + "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("loss"))
                + f"  {row['img_per_s']:.0f} img/s  {seconds:.0f}s",
                file=sys.stderr,
                flush=True,
            )
            save_checkpoint(
                run_dir / "last.pt",
                {
                    "kind": GAN_KIND,
                    "config": dataclasses.asdict(cfg),
                    "epoch": epoch,
                    "history": history,
                    "source_label": cfg.source,
                    "target_label": cfg.target,
                    **{name: net.state_dict() for name, net in gan.nets().items()},
                    "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(),
                    "sched_g": sched_g.state_dict(),
                    "sched_d": sched_d.state_dict(),
                    "pool_a": pools[0].state(),
                    "pool_b": pools[1].state(),
                },
            )
            write_history_csv(run_dir / "metrics.csv", history)
            save_sample_grid(gan, fixed, run_dir / "samples" / f"epoch_{epoch:03d}.png")
    except KeyboardInterrupt:
        print(
            f"interrupted: epoch {epoch} is saved; continue with ferkit gan train --resume {run_dir}",
            file=sys.stderr,
            flush=True,
        )
        raise
    return GanResult(run_dir, epoch, history, time.perf_counter() - start_all)


def _augment(batch_u8: Tensor, aug: AugmentConfig, gen: torch.Generator) -> Tensor:
    from ferkit.train.augment import augment_batch

    return augment_batch(batch_u8, aug, gen).mul(2.0).sub(1.0)


@torch.no_grad()
def save_sample_grid(gan: CycleGan, source_u8: Tensor, path: Path) -> Path:
    """PNG grid, one column per face: source, translated (A->B), reconstructed (B->A)."""
    import cv2

    was_training = gan.g_ab.training
    gan.g_ab.eval()
    gan.g_ba.eval()
    real = to_unit(source_u8)
    fake = gan.g_ab(real)
    rec = gan.g_ba(fake)
    gan.g_ab.train(was_training)
    gan.g_ba.train(was_training)
    rows = [np.concatenate(list(to_uint8(t)), axis=1) for t in (real, fake, rec)]
    grid = np.concatenate(rows, axis=0)
    grid = cv2.resize(grid, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), grid):
            raise FerkitError(f"{path}: could not write the sample grid")
    return path
