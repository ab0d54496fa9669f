"""The training loop: ``train_one_epoch``, ``evaluate`` and ``fit``, plain functions.

Usage::

    from ferkit.train import fit, load_config
    result = fit(load_config(data="fer2013.tar.gz", model="vgg_fer", epochs=30))
    result.run_dir, result.test_accuracy

Data lives in memory as uint8 tensors on the training device (the whole FER-2013 set is
83 MB); batches are augmented there, vectorised. Every epoch is seeded from (seed, epoch),
so resuming after an interruption reproduces an uninterrupted run exactly. Side effects
(metrics CSV, checkpoints, curves, early stopping) are callbacks run after each epoch.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ferkit.data import FaceDataset
from ferkit.errors import FerkitError, UnknownNameError
from ferkit.models import create_model, list_models
from ferkit.train.augment import augment_batch, mix_batch
from ferkit.train.checkpoint import load_checkpoint
from ferkit.train.config import TrainConfig, config_from_dict, config_to_dict, save_config
from ferkit.train.data import Split, TrainData, batch_order, class_weights, epoch_generator, prepare_data
from ferkit.train.distill import kd_loss
from ferkit.train.finetune import freeze, load_init_weights
from ferkit.train.optim import EMA, make_optimizer, make_scheduler
from ferkit.utils import cache_dir


# ----------------------------------------------------------------------------- devices
@dataclass(frozen=True)
class Dist:
    """Where this process stands in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the torchrun process group (gloo on CPU, NCCL on CUDA) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size()), device


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FerkitError(f"device {name!r} asked for, but CUDA is not available on this machine")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    # bf16 autocast is ~5x faster only where the CPU has bf16 instructions; slower elsewhere.
    return "bf16" if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported() else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


# ----------------------------------------------------------------------------- one epoch
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
    scheduler: Any,
    cfg: TrainConfig,
    epoch: int,
    device: torch.device,
    precision: str,
    ema: EMA | None = None,
    on_batch: Callable[[int, int, float, float], None] | None = None,
    shard: Dist = Dist(),
) -> EpochStats:
    """One pass over the training split; returns mean loss, accuracy and throughput.

    Under DDP every rank draws the same global batch (same seed) and trains on its slice
    of it, so N processes see exactly the batches one process would.
    """
    model.train()
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
    even_only = cfg.channels_last and device.type == "cpu" and _has_grouped_conv(model)
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


def evaluate(
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


# ----------------------------------------------------------------------------- fit
@dataclass
class TrainState:
    cfg: TrainConfig
    run_dir: Path
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: EMA | None
    data: TrainData
    device: torch.device
    precision: str
    epoch: int = 0  # epochs completed
    history: list[dict[str, float]] = field(default_factory=list)
    best_val_accuracy: float = -1.0
    best_epoch: int = 0
    stop: bool = False
    dist: Dist = field(default_factory=Dist)

    def meta(self) -> dict[str, Any]:
        """What travels with the weights: how to rebuild the model and feed it."""
        return {
            "model_name": self.cfg.model,
            "model_args": dict(self.model.ferkit_args),  # type: ignore[attr-defined]
            "label_set": self.data.label_set.name,
            "label_names": list(self.data.label_set.names),
            "preprocessing": {
                "input_size": self.cfg.image_size,
                "color": "gray" if self.model.ferkit_args["in_chans"] == 1 else "rgb",  # type: ignore[attr-defined]
                "mean": self.data.mean,
                "std": self.data.std,
            },
            "config": config_to_dict(self.cfg),
            "hardware": hardware_description(self.device),
        }

    def checkpoint(self) -> dict[str, Any]:
        return {
            **self.meta(),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "history": self.history,
            "best_val_accuracy": self.best_val_accuracy,
            "best_epoch": self.best_epoch,
        }


Callback = Callable[[TrainState], None]


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = "CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {torch.get_num_threads()} threads"


def default_run_dir(cfg: TrainConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return cache_dir("runs") / f"{cfg.name or cfg.model}-{stamp}"


def fit(
    cfg: TrainConfig,
    *,
    resume: str | os.PathLike | None = None,
    callbacks: list[Callback] | None = None,
    dataset: FaceDataset | None = None,
    epochs: int | None = None,
) -> TrainResult:
    """Train per ``cfg`` (or continue ``resume``, a run folder), then evaluate on the test split.

    ``epochs`` with ``resume`` extends the run to that many epochs (never fewer than it has
    done); without it a resumed run keeps its own, unless ``cfg.epochs`` differs from the
    default.
    """
    from ferkit.train.callbacks import default_callbacks, final_evaluation

    ckpt = None
    if resume is not None:
        run_dir = Path(resume)
        ckpt = load_checkpoint(run_dir / "last.pt")
        saved = config_from_dict(ckpt["config"])
        if epochs is not None:  # asked for explicitly, even when it equals the class default
            saved.epochs = max(epochs, int(ckpt["epoch"]))
        elif cfg.epochs != TrainConfig.epochs:
            saved.epochs = max(saved.epochs, cfg.epochs)
        saved.progress = cfg.progress
        cfg = saved
    else:
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
        if (run_dir / "last.pt").exists():
            raise FerkitError(
                f"{run_dir} already holds a run; continue it with --resume {run_dir} or pick --out"
            )
    if cfg.model not in list_models():  # before the data is loaded: a typo fails at once
        raise UnknownNameError("model architecture", cfg.model, list_models())
    device, rank = setup_distributed(resolve_device(cfg.device))[::-1]
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif rank.world > 1 and device.type == "cpu":  # share the cores, do not oversubscribe
        torch.set_num_threads(
            max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", rank.world)))
        )
    precision = resolve_precision(cfg.precision, device)
    data = prepare_data(cfg, device, dataset)
    num_classes = len(data.label_set)
    torch.manual_seed(cfg.seed)
    model = create_model(
        cfg.model, num_classes=num_classes, in_chans=data.train.images.shape[1], **cfg.model_args
    )
    if cfg.init and ckpt is None:
        report = load_init_weights(model, cfg.init, backbone_only=cfg.init_backbone_only)
        _log(f"init from {cfg.init}: {report.summary()}", rank)
    if cfg.freeze:
        freeze(model, cfg.freeze)
    run_dir.mkdir(parents=True, exist_ok=True)  # only now: a run that cannot start leaves no folder
    model.to(device)
    if cfg.channels_last and device.type == "cpu" and precision != "bf16" and _has_grouped_conv(model):
        # torch 2.13's CPU backward of depthwise convolutions in channels_last crashes in
        # fp32 (any batch); in bf16 only for odd batch sizes, which train_one_epoch avoids.
        _log("channels_last turned off: depthwise convolutions crash its fp32 CPU backward", rank)
        cfg.channels_last = False
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model)
    steps = len(batch_order(len(data.train), cfg.batch_size, torch.Generator().manual_seed(0)))
    scheduler = make_scheduler(cfg, optimizer, steps)
    ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
    state = TrainState(cfg, run_dir, model, optimizer, scheduler, ema, data, device, precision, dist=rank)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if ema is not None and ckpt.get("ema") is not None:
            ema.load_state_dict(ckpt["ema"])
        state.epoch = int(ckpt["epoch"])
        state.history = list(ckpt.get("history", []))
        state.best_val_accuracy = float(ckpt.get("best_val_accuracy", -1))
        state.best_epoch = int(ckpt.get("best_epoch", 0))
        _log(f"resuming {run_dir} after epoch {state.epoch}/{cfg.epochs}", rank)
    if rank.main:
        save_config(cfg, run_dir / "config.yaml")
    train_model = torch.compile(model) if cfg.compile else model
    if rank.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(
            train_model, device_ids=[device] if device.type == "cuda" else None
        )
    # Rank 0 alone logs and writes (metrics, checkpoints, plots); the others only train.
    hooks = (default_callbacks() + list(callbacks or [])) if rank.main else []
    _log(
        f"training {cfg.model} on {device} ({precision}"
        + (f", DDP rank {rank.rank} of {rank.world}" if rank.world > 1 else "")
        + f"), {len(data.train)} train / {len(data.val)} val images -> {run_dir}",
        rank,
    )
    try:
        while state.epoch < cfg.epochs and not state.stop:
            epoch_start = time.perf_counter()
            stats = _run_epoch(state, train_model)
            state.epoch += 1
            eval_model = _ema_model(state) if ema is not None else model
            val_loss, val_acc, _ = evaluate(eval_model, data.val, data, device, precision, cfg)
            if cfg.schedule == "plateau":
                scheduler.step(val_acc)
            row = {
                "epoch": state.epoch,
                "train_loss": stats.loss,
                "train_acc": stats.accuracy,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - epoch_start,  # training + validation
                "img_per_s": stats.images_per_s,
            }
            state.history.append(row)
            _log(
                f"epoch {state.epoch}/{cfg.epochs}  loss {stats.loss:.4f}  acc {stats.accuracy:.4f}  "
                f"val_loss {val_loss:.4f}  val_acc {val_acc:.4f}  "
                f"{stats.images_per_s:.0f} img/s  {stats.seconds:.0f}s",
                rank,
            )
            for hook in hooks:
                hook(state)
            if rank.world > 1:  # early stopping is decided on rank 0
                import torch.distributed as dist

                flag = torch.tensor([int(state.stop)])
                dist.broadcast(flag, 0)
                state.stop = bool(flag.item())
    except KeyboardInterrupt:
        _log(
            f"interrupted: the last completed epoch ({state.epoch}) is saved; "
            f"continue with --resume {run_dir}",
            rank,
        )
        raise
    if rank.world == 1:
        return final_evaluation(state)
    import torch.distributed as dist

    result = final_evaluation(state) if rank.main else None
    dist.barrier()
    dist.destroy_process_group()
    if result is None:
        wall = float(sum(r["seconds"] for r in state.history))
        result = TrainResult(run_dir, state.epoch, state.best_epoch, state.best_val_accuracy, None, {}, wall)
    return result


def _has_grouped_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in model.modules())


def _ema_model(state: TrainState) -> nn.Module:
    import copy

    model = copy.deepcopy(state.model)
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in state.ema.shadow.items()})  # type: ignore[union-attr]
    return model


def _run_epoch(state: TrainState, model: nn.Module) -> EpochStats:
    """One epoch, under a progress bar (loss, accuracy, img/s, ETA) when one is wanted."""
    cfg = state.cfg
    show = (cfg.progress if cfg.progress is not None else sys.stderr.isatty()) and state.dist.main
    on_batch = None
    with contextlib.ExitStack() as stack:
        if show:
            from ferkit.progress import make_progress

            progress = stack.enter_context(make_progress(transient=True))
            task = progress.add_task(f"epoch {state.epoch + 1}/{cfg.epochs}", total=None, rate="-", info="")
            start = time.perf_counter()

            def on_batch(i: int, n: int, loss: float, acc: float) -> None:
                rate = i * cfg.batch_size / max(time.perf_counter() - start, 1e-9)
                progress.update(
                    task,
                    completed=i,
                    total=n,
                    rate=f"{rate:,.0f} img/s",
                    info=f"loss {loss:.3f} acc {acc:.3f}",
                )

        return train_one_epoch(
            model,
            state.data,
            state.optimizer,
            state.scheduler,
            cfg,
            state.epoch,
            state.device,
            state.precision,
            state.ema,
            on_batch,
            state.dist,
        )


def _log(message: str, rank: Dist = Dist()) -> None:
    if rank.main:
        print(message, file=sys.stderr, flush=True)


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    best_epoch: int
    best_val_accuracy: float
    test_accuracy: float | None
    test_metrics: dict[str, Any]
    wall_seconds: float
