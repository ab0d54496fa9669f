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
        from ferkit.train import fit, load_config
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


def register(root: typer.Typer) -> None:
    root.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(train)
