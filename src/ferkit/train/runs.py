"""Training runs on disk: what each run folder holds, how far it got, and whether it is training now.

Usage::

    for run in list_runs():                     # ~/.cache/ferkit/runs (or a folder of runs)
        print(run.path.name, run.status, f"{run.epochs_done}/{run.epochs}", run.best_val_accuracy)

Read from ``config.yaml``, ``metrics.csv`` and ``test_metrics.json`` (never the checkpoints,
so listing is quick, and torch is not imported); "training" means a process holds the run's
lock, ``RUN/.lock``, which :func:`run_lock` takes for ``fit``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from ferkit.errors import FerkitError
from ferkit.utils import cache_dir


@dataclass(frozen=True)
class RunInfo:
    path: Path
    model: str
    epochs: int  # the run's schedule
    epochs_done: int
    best_val_accuracy: float | None
    best_epoch: int | None
    seconds_per_epoch: float | None  # median of the last five epochs (one slow epoch, e.g. while
    # tests ran beside the trainer, does not move the estimate)
    test_accuracy: float | None  # PrivateTest (or the run's test split) from the best checkpoint
    trainer: int | None  # process id of the live trainer, if any

    @property
    def status(self) -> str:
        if self.trainer is not None:
            return "training"
        return "finished" if self.epochs_done >= self.epochs else "stopped"

    @property
    def seconds_left(self) -> float | None:
        if self.seconds_per_epoch is None or self.epochs_done >= self.epochs:
            return None
        return (self.epochs - self.epochs_done) * self.seconds_per_epoch


try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None  # type: ignore[assignment]


def _take(f) -> bool:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _holder(f) -> int | None:
    f.seek(0)
    words = f.read().split()  # "process <pid>", as run_lock writes it
    return int(words[-1]) if words and words[-1].isdigit() else None


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold ``RUN/.lock`` while this process trains the run.

    A second ``--resume`` of a run that is still training (or a second run into the same
    ``--out``) then fails at once instead of interleaving two histories' checkpoints. The lock
    is the OS's (``flock``), so it goes with the process however that ends, SIGKILL included.
    Only rank 0 of a DDP job takes it; where ``fcntl`` is missing (Windows) nothing is locked.
    """
    if fcntl is None or int(os.environ.get("RANK", "0") or 0) != 0:
        yield
        return
    with open(Path(run_dir) / ".lock", "a+") as f:
        if not _take(f):
            pid = _holder(f)
            raise FerkitError(
                f"{run_dir} is being trained by {f'process {pid}' if pid else 'another process'}; "
                "wait for it to finish or stop it, then --resume it"
            )
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}\n")
        f.flush()
        yield


def remove_stale_temporaries(run_dir: str | os.PathLike) -> list[Path]:
    """Delete the half-written files a killed run leaves (``.best.*.tmp.pt``, ``.metrics.*.tmp.csv``:
    the temporaries of atomic writes). Call it holding the run's lock (rank 0)."""
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return []
    removed = []
    for path in Path(run_dir).glob(".*.tmp*"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def live_trainer(run_dir: str | os.PathLike) -> int | None:
    """The process id training ``run_dir`` now (it holds ``RUN/.lock``; -1 if it did not say), else None."""
    path = Path(run_dir) / ".lock"
    if fcntl is None or not path.is_file():
        return None  # never locked: a run from before locks, or not a run
    with open(path) as f:
        if _take(f):
            fcntl.flock(f, fcntl.LOCK_UN)
            return None
        return _holder(f) or -1


def read_run(run_dir: str | os.PathLike) -> RunInfo:
    """One run folder's state; a folder without ``config.yaml`` is not a run (ValueError)."""
    run_dir = Path(run_dir)
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{run_dir}: not a training run (no readable config.yaml)") from exc
    rows = []
    try:
        with open(run_dir / "metrics.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("epoch")]
    except OSError:
        pass
    best = max(rows, key=lambda r: float(r["val_acc"]), default=None)
    recent = [float(r["seconds"]) for r in rows[-5:] if r.get("seconds")]
    test = None
    try:
        test = float(json.loads((run_dir / "test_metrics.json").read_text())["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    model = str(cfg.get("model", "?"))
    widths = (cfg.get("model_args") or {}).get("widths")
    return RunInfo(
        path=run_dir,
        model=f"{model} {widths}" if widths else model,
        epochs=int(cfg.get("epochs") or 0),
        epochs_done=int(rows[-1]["epoch"]) if rows else 0,
        best_val_accuracy=float(best["val_acc"]) if best else None,
        best_epoch=int(best["epoch"]) if best else None,
        seconds_per_epoch=statistics.median(recent) if recent else None,
        test_accuracy=test,
        trainer=live_trainer(run_dir),
    )


def list_runs(root: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run in ``root`` (default ``~/.cache/ferkit/runs``), newest first; ``root`` may
    also be one run folder."""
    root = Path(root) if root is not None else cache_dir("runs")
    if not root.is_dir():
        raise FerkitError(f"{root}: no such folder")
    if (root / "config.yaml").is_file():
        return [read_run(root)]
    runs = []
    for folder in (p for p in root.iterdir() if (p / "config.yaml").is_file()):
        try:
            runs.append(read_run(folder))
        except ValueError:
            continue
    return sorted(runs, key=lambda r: (r.path / "config.yaml").stat().st_mtime, reverse=True)
