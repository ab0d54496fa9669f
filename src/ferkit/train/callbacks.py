"""What happens after each epoch: metrics CSV, checkpoints, training curves, early stopping.

Usage::

    fit(cfg, callbacks=[my_hook])      # my_hook(state) runs after the default ones

Each callback takes the :class:`~ferkit.train.loop.TrainState`; one may set
``state.stop = True`` to end training after the current epoch.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from ferkit.evaluate.metrics import classification_report
from ferkit.train.checkpoint import load_checkpoint, save_checkpoint
from ferkit.train.epoch import TrainResult, evaluate_split
from ferkit.utils import atomic_path, write_history_csv

METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "img_per_s"]


def write_metrics_csv(state) -> None:
    write_history_csv(state.run_dir / "metrics.csv", state.history, METRIC_COLUMNS)


def save_checkpoints(state) -> None:
    """``last.pt`` every epoch (for resume); ``best.pt`` when validation accuracy improves.

    ``best.pt`` is written first: a run killed between the two writes has a ``last.pt`` that
    never names a best epoch ``best.pt`` does not hold (``resume`` reconciles the other case,
    a ``best.pt`` one epoch ahead of ``last.pt``). Each write is atomic.
    """
    payload = state.checkpoint()
    val_acc = state.history[-1]["val_acc"]
    improved = val_acc > state.best_val_accuracy
    if improved:
        state.best_val_accuracy, state.best_epoch = val_acc, state.epoch
        payload["best_val_accuracy"], payload["best_epoch"] = val_acc, state.epoch
        save_checkpoint(state.run_dir / "best.pt", payload)
    save_checkpoint(state.run_dir / "last.pt", payload)


def plot_curves(state) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are a convenience; training goes on without matplotlib
        return
    h = state.history
    epochs = [r["epoch"] for r in h]
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6))
    ax_loss.plot(epochs, [r["train_loss"] for r in h], label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in h], label="val")
    ax_loss.set_title("loss")
    ax_acc.plot(epochs, [r["train_acc"] for r in h], label="train")
    ax_acc.plot(epochs, [r["val_acc"] for r in h], label="val")
    ax_acc.set_title(f"accuracy (best val {state.best_val_accuracy:.4f} @ {state.best_epoch})")
    ax_lr.plot(epochs, [r["lr"] for r in h])
    ax_lr.set_title("learning rate (end of epoch)")
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax_loss.legend()
    ax_acc.legend()
    fig.suptitle(f"{state.cfg.model} — {state.run_dir.name}")
    fig.tight_layout()
    with atomic_path(state.run_dir / "curves.png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def early_stopping(state) -> None:
    patience = state.cfg.early_stop
    if patience and state.epoch - state.best_epoch >= patience:
        print(f"early stop: no better val accuracy for {patience} epochs", file=sys.stderr)
        state.stop = True


def default_callbacks() -> list:
    return [save_checkpoints, write_metrics_csv, plot_curves, early_stopping]


def final_evaluation(state):
    """Evaluate the best checkpoint (fp32) on the test split; write ``test_metrics.json``."""
    from ferkit.train.checkpoint import model_from_checkpoint

    best_path = state.run_dir / "best.pt"
    metrics: dict = {}
    test_acc = None
    if state.data.test is not None and best_path.exists():
        model = model_from_checkpoint(load_checkpoint(best_path)).to(state.device)
        if state.cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        # fp32, as exported models run: the reported number is the one users reproduce.
        _, test_acc, probs = evaluate_split(
            model, state.data.test, state.data, state.device, "fp32", state.cfg
        )
        report = classification_report(
            state.data.test.labels.cpu().numpy(), probs.numpy(), state.data.label_set.names
        )
        metrics = {"split": state.cfg.test_split, "best_epoch": state.best_epoch, **report.to_dict()}
        with atomic_path(state.run_dir / "test_metrics.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=2))
        print(
            f"test ({state.cfg.test_split}) accuracy {report.accuracy:.4f}  macro-F1 {report.macro_f1:.4f}  "
            f"(best epoch {state.best_epoch})",
            file=sys.stderr,
        )
    wall = float(np.sum([r["seconds"] for r in state.history]))
    return TrainResult(
        state.run_dir, state.epoch, state.best_epoch, state.best_val_accuracy, test_acc, metrics, wall
    )
