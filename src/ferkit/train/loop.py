"""The training loop: ``fit``, a plain function over epochs (``ferkit.train.epoch``) and callbacks.

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
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ferkit.data import FaceDataset
from ferkit.errors import FerkitError, UnknownNameError
from ferkit.models import create_model, list_models
from ferkit.progress import batch_progress
from ferkit.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ferkit.train.config import TrainConfig, config_from_dict, config_to_dict, save_config
from ferkit.train.data import TrainData, batch_order, prepare_data
from ferkit.train.device import (
    Dist,
    hardware_description,
    resolve_device,
    resolve_precision,
    setup_distributed,
)
from ferkit.train.epoch import (
    EpochStats,
    TrainResult,
    evaluate_split,
    has_grouped_conv,
    train_one_epoch,
)
from ferkit.train.finetune import freeze, head_prefix, load_init_weights
from ferkit.train.onnx_init import load_onnx_init, onnx_init_source
from ferkit.train.optim import EMA, make_optimizer, make_scheduler
from ferkit.train.runs import remove_stale_temporaries, run_lock
from ferkit.utils import new_run_dir


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
    with contextlib.ExitStack() as held:
        return _fit(cfg, held, resume=resume, callbacks=callbacks, dataset=dataset, epochs=epochs)


def _fit(
    cfg: TrainConfig,
    held: contextlib.ExitStack,
    *,
    resume: str | os.PathLike | None,
    callbacks: list[Callback] | None,
    dataset: FaceDataset | None,
    epochs: int | None,
) -> TrainResult:
    from ferkit.train.callbacks import default_callbacks, final_evaluation

    cfg, run_dir, ckpt = _open_run(cfg, resume, epochs, held)
    if cfg.init == "imagenet" and ckpt is None:  # torchvision's published weights for this model
        from ferkit.models.imagenet import IMAGENET_WEIGHTS

        if cfg.model not in IMAGENET_WEIGHTS:
            raise FerkitError(
                f"--init imagenet: no ImageNet weights for {cfg.model}; for: {', '.join(IMAGENET_WEIGHTS)}"
            )
        cfg.init, cfg.init_backbone_only = IMAGENET_WEIGHTS[cfg.model], True
    init_onnx = onnx_init_source(cfg.init) if cfg.init and ckpt is None else None
    if init_onnx is not None:  # a shipped model or .onnx: its card names the architecture
        card = init_onnx[1]
        cfg.model = card.architecture
        cfg.model_args = {k: v for k, v in card.model_args.items() if k not in ("num_classes", "in_chans")}
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
    data = prepare_data(cfg, device, dataset, run_dir)
    if init_onnx is not None and init_onnx[1].normalization.get("mean") is not None:
        # Fine-tuning keeps the pixel normalisation the weights were trained with.
        norm = init_onnx[1].normalization
        data = dataclasses.replace(data, mean=float(norm["mean"]), std=float(norm["std"]))
    num_classes = len(data.label_set)
    torch.manual_seed(cfg.seed)
    model = create_model(
        cfg.model, num_classes=num_classes, in_chans=data.train.images.shape[1], **cfg.model_args
    )
    if init_onnx is not None:
        path, card = init_onnx
        summary = load_onnx_init(
            model,
            path,
            card,
            tuple(data.label_set.names),
            cfg.init_backbone_only,
            in_chans=data.train.images.shape[1],
        )
        _log(f"init from {cfg.init}: {summary}", rank)
    elif cfg.init and ckpt is None:
        report = load_init_weights(model, cfg.init, backbone_only=cfg.init_backbone_only)
        _log(f"init from {cfg.init}: {report.summary()}", rank)
    if cfg.freeze:
        freeze(model, cfg.freeze)
    run_dir.mkdir(parents=True, exist_ok=True)  # only now: a run that cannot start leaves no folder
    if ckpt is None:
        held.enter_context(run_lock(run_dir))
    model.to(device)
    if cfg.channels_last and device.type == "cpu" and precision != "bf16" and has_grouped_conv(model):
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
        _restore(state, ckpt)
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
            if cfg.unfreeze_at:
                _head_only(model, state.epoch < cfg.unfreeze_at, cfg.freeze)
            stats = _run_epoch(state, train_model)
            state.epoch += 1
            _validate(state, model, stats, epoch_start)
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


def _ema_model(state: TrainState) -> nn.Module:
    import copy

    model = copy.deepcopy(state.model)
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in state.ema.shadow.items()})  # type: ignore[union-attr]
    return model


def _validate(state: TrainState, model: nn.Module, stats: EpochStats, epoch_start: float) -> None:
    """After an epoch: validation (on the EMA weights when kept), the metrics row, the log line."""
    cfg = state.cfg
    eval_model = _ema_model(state) if state.ema is not None else model
    val_loss, val_acc, _ = evaluate_split(
        eval_model, state.data.val, state.data, state.device, state.precision, cfg
    )
    if cfg.schedule == "plateau":
        state.scheduler.step(val_acc)
    row = {
        "epoch": state.epoch,
        "train_loss": stats.loss,
        "train_acc": stats.accuracy,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "lr": state.optimizer.param_groups[0]["lr"],
        "seconds": time.perf_counter() - epoch_start,  # training + validation
        "img_per_s": stats.images_per_s,
    }
    state.history.append(row)
    _log(
        f"epoch {state.epoch}/{cfg.epochs}  loss {stats.loss:.4f}  acc {stats.accuracy:.4f}  "
        f"val_loss {val_loss:.4f}  val_acc {val_acc:.4f}  "
        f"{stats.images_per_s:.0f} img/s  {stats.seconds:.0f}s",
        state.dist,
    )


def _open_run(
    cfg: TrainConfig, resume, epochs: int | None, held: contextlib.ExitStack
) -> tuple[TrainConfig, Path, dict | None]:
    """A new run folder, or the run to continue with its own config (``epochs`` extends it).

    A resumed run is locked before its checkpoint is read (``held`` keeps the lock)."""
    ckpt = None
    if resume is not None:
        run_dir = Path(resume)
        if run_dir.is_dir():
            held.enter_context(run_lock(run_dir))
            remove_stale_temporaries(run_dir)  # a killed run's half-written files
        ckpt = load_checkpoint(run_dir / "last.pt")
        saved = config_from_dict(ckpt["config"])
        if epochs is not None:  # asked for explicitly, even when it equals the class default
            saved.epochs = max(epochs, int(ckpt["epoch"]))
        elif cfg.epochs != TrainConfig.epochs:
            saved.epochs = max(saved.epochs, cfg.epochs)
        saved.progress = cfg.progress
        cfg = saved
    else:
        run_dir = new_run_dir(cfg.out, cfg.name or cfg.model)
    return cfg, run_dir, ckpt


def _restore(state: TrainState, ckpt: dict) -> None:
    """Weights, optimizer, schedule, EMA and history of the run being resumed."""
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    if state.scheduler is not None and ckpt.get("scheduler") is not None:
        state.scheduler.load_state_dict(ckpt["scheduler"])
    if state.ema is not None and ckpt.get("ema") is not None:
        state.ema.load_state_dict(ckpt["ema"])
    state.epoch = int(ckpt["epoch"])
    state.history = list(ckpt.get("history", []))
    state.best_val_accuracy = float(ckpt.get("best_val_accuracy", -1))
    state.best_epoch = int(ckpt.get("best_epoch", 0))
    _reconcile_best(state, ckpt)
    _log(f"resuming {state.run_dir} after epoch {state.epoch}/{state.cfg.epochs}", state.dist)


def _reconcile_best(state: TrainState, last: dict) -> None:
    """Make the best model on disk and the run's record of it agree after a kill.

    ``best.pt``'s own epoch and accuracy are the truth when it loads: it may be one epoch
    ahead of ``last.pt`` (killed between the two writes), and then the resumed run replaces
    it only with a better model. Without a loadable ``best.pt`` (a run killed before any
    was written, or by a ferkit that wrote ``last.pt`` first), ``last.pt`` becomes it when it
    is the best epoch; otherwise the record is cleared, so the next epoch writes one.
    """
    best_path = state.run_dir / "best.pt"
    try:
        best = load_checkpoint(best_path) if best_path.exists() else None
    except CheckpointError:
        best = None
    if best is not None and "best_val_accuracy" in best:
        state.best_epoch, state.best_val_accuracy = int(best["epoch"]), float(best["best_val_accuracy"])
    elif state.best_epoch and state.best_epoch == int(last["epoch"]):
        if state.dist.main:
            save_checkpoint(best_path, {k: v for k, v in last.items() if k != "source"})
    else:
        state.best_epoch, state.best_val_accuracy = 0, -1.0


def _head_only(model: nn.Module, head_only: bool, frozen: list[str]) -> None:
    """--unfreeze_at: before that epoch only the head learns; from it, everything not --freeze'd."""
    head = head_prefix(model) + "."
    for name, p in model.named_parameters():
        p.requires_grad_(
            name.startswith(head) or (not head_only and not any(name.startswith(f) for f in frozen))
        )


def _run_epoch(state: TrainState, model: nn.Module) -> EpochStats:
    """One epoch, under a progress bar (loss, accuracy, img/s, ETA) when one is wanted."""
    cfg = state.cfg
    show = (cfg.progress if cfg.progress is not None else sys.stderr.isatty()) and state.dist.main
    with contextlib.ExitStack() as stack:
        update = batch_progress(stack, show, f"epoch {state.epoch + 1}/{cfg.epochs}", cfg.batch_size)

        def on_batch(i: int, n: int, loss: float, acc: float) -> None:
            update(i, n, f"loss {loss:.3f} acc {acc:.3f}")

        return train_one_epoch(
            model,
            state.data,
            state.optimizer,
            cfg,
            epoch=state.epoch,
            device=state.device,
            precision=state.precision,
            scheduler=state.scheduler,
            ema=state.ema,
            on_batch=on_batch,
            shard=state.dist,
        )


def _log(message: str, rank: Dist = Dist()) -> None:
    if rank.main:
        print(message, file=sys.stderr, flush=True)
