"""``ferkit train``: train a model from a config file and ``--key value`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ferkit.errors import FerkitError


def train(
    ctx: typer.Context,
    data: Optional[str] = typer.Option(None, help="Dataset (FER-2013 CSV/tar.gz, FER+ CSV, folder, zip)."),
    model: Optional[str] = typer.Option(None, help="Registered model name (ferkit models list)."),
    config: Optional[Path] = typer.Option(None, help="YAML file of config values."),
    resume: Optional[Path] = typer.Option(None, help="Run folder to continue (its last.pt)."),
    out: Optional[str] = typer.Option(None, help="Run folder (default ~/.cache/ferkit/runs/<model>-<time>)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (with --resume: extend the run to this many)."),
    init: Optional[str] = typer.Option(
        None, help="Start from a shipped model name, an .onnx, a checkpoint or a state dict."
    ),
    extra_data: Optional[str] = typer.Option(
        None, help="Extra training faces: an .npz (images, labels) or a dataset (its training split)."
    ),
) -> None:
    """Train a model. Any config key can be set as --key value (e.g. --lr 0.05 --augment.rotate 15).

    Writes config.yaml, metrics.csv, curves.png, last.pt / best.pt and test_metrics.json to
    the run folder; Ctrl-C keeps the last completed epoch and --resume continues it.
    """
    try:
        from ferkit.train.config import load_config  # first: a missing PyYAML is named before torch
        from ferkit.train.loop import fit
    except ModuleNotFoundError as exc:  # a core install: no torch / PyYAML
        raise FerkitError(
            f'training needs its extra: pip install "ferkit[train]" torch==2.13.0 ({exc.name} is missing)'
        ) from exc

    overrides = _extra_overrides(ctx.args)
    cfg = load_config(
        config, overrides, data=data, model=model, out=out, epochs=epochs, init=init, extra_data=extra_data
    )
    if not cfg.data and resume is None:
        raise typer.BadParameter("--data is required (or --resume a run)")
    from ferkit.utils import stop_signals

    with stop_signals():  # SIGTERM / SIGHUP (timeout, a closed terminal) end it like Ctrl-C
        result = fit(cfg, resume=resume, epochs=epochs if resume is not None else None)
    print(f"run folder: {result.run_dir}")
    if result.test_accuracy is not None:
        print(
            f"test accuracy: {result.test_accuracy:.4f} "
            f"(best epoch {result.best_epoch}, {result.wall_seconds:.0f} s)"
        )


def _extra_overrides(args: list[str]) -> list[str]:
    """``--lr 0.05 --augment.flip=0`` -> ``["lr=0.05", "augment.flip=0"]``."""
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise typer.BadParameter(f"unexpected argument {arg!r}; options look like --key value")
        if "=" in arg:
            out.append(arg[2:])
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            out.append(f"{arg[2:]}={args[i + 1]}")
            i += 2
        else:
            out.append(f"{arg[2:]}=true")
            i += 1
    return out


def runs(
    root: Optional[Path] = typer.Argument(
        None, help="Folder of runs, or one run (default ~/.cache/ferkit/runs)."
    ),
) -> None:
    """Training runs: progress, best validation accuracy, test accuracy, and which are training now."""
    from rich.console import Console
    from rich.table import Table

    from ferkit.train.runs import list_runs

    found = list_runs(root)
    console = Console(soft_wrap=True)
    if not found:
        console.print(f"no training runs in {root or 'the cache'}")
        return
    table = Table(title="training runs")
    for col in ("run", "model", "epochs", "best val (epoch)", "test", "s/epoch", "status"):
        table.add_column(col)
    for r in found:
        best = f"{r.best_val_accuracy:.2%} ({r.best_epoch})" if r.best_val_accuracy is not None else "-"
        status = r.status if r.trainer is None else f"training (process {r.trainer})"
        if r.seconds_left is not None:
            status += f", {r.seconds_left / 3600:.1f} h left"
        table.add_row(
            str(r.path),
            r.model,
            f"{r.epochs_done}/{r.epochs}",
            best,
            f"{r.test_accuracy:.2%}" if r.test_accuracy is not None else "-",
            f"{r.seconds_per_epoch:.0f}" if r.seconds_per_epoch else "-",
            status,
        )
    console.print(table)
    for r in found:
        if r.status == "stopped":
            console.print(f"continue: ferkit train --resume {r.path}", markup=False, highlight=False)


def adapt(
    backbones: list[str] = typer.Argument(
        ..., help="Shipped model names or ferkit .onnx files to read features from."
    ),
    data: Path = typer.Option(
        ..., help="Labelled faces: a folder (<label>/<image>, with splits or not) or FER-2013."
    ),
    out: Path = typer.Option(..., help="The head to write (.onnx; its card goes beside it as .json)."),
    split: str = typer.Option("train", help="Split to fit on (a role: train, or a name)."),
    weight_decay: Optional[float] = typer.Option(
        None, help="L2 strength; default: the best of 0.01 ... 3 by 5-fold cross-validation on the split."
    ),
    labels: Optional[str] = typer.Option(None, help="Label set of the folder (custom: its folder names)."),
    groups: Optional[str] = typer.Option(
        None,
        help="Keep faces of one clip or person in one cross-validation fold: a regular expression "
        "on the file names, e.g. '^(.+?)_\\d' (SFEW's film); faces whose names give the same "
        "match (its first group, if any) share a fold.",
    ),
) -> None:
    """Fit a new classifier head on shipped models' features: your own faces or classes, in
    seconds on a CPU. The result loads like any model (ferkit predict --model OUT, ferkit eval OUT)."""
    try:
        from ferkit.train.head import fit_head
    except ModuleNotFoundError as exc:
        raise FerkitError(
            'fitting a head needs the train extra: pip install "ferkit[train]" torch==2.13.0 '
            f"({exc.name} is missing)"
        ) from exc
    from ferkit.outputs import check_outputs

    if out.suffix != ".onnx":
        raise typer.BadParameter(f"{out}: an ONNX file name ends in .onnx", param_hint="--out")
    check_outputs({"--out": (out, "onnx"), "--out's card": (out.with_suffix(".json"), "json")}, [data])
    report = fit_head(
        list(backbones), data, out, split=split, weight_decay=weight_decay, labels=labels, groups=groups
    )
    cv = ", ".join(f"{k:g}: {v:.2%}" for k, v in report.cv_accuracy.items())
    print(
        f"wrote {report.path}: {len(report.labels)} classes on {report.feature_dim} features of "
        f"{' + '.join(report.backbones)}, {report.n_train} faces (and their mirror images), "
        f"weight decay {report.weight_decay:g}{f' (5-fold CV, folds {report.folds}: {cv})' if cv else ''}; "
        f"training accuracy {report.train_accuracy:.2%}; {report.seconds:.0f} s"
    )


def register(root: typer.Typer) -> None:
    root.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(train)
    root.command()(runs)
    root.command()(adapt)
