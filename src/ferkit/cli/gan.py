"""``ferkit gan train`` / ``ferkit gan generate``: synthetic faces of a rare class."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="CycleGAN between two expression classes (neutral -> disgust by default).")


@app.command("train")
def train(
    data: Optional[str] = typer.Option(None, help="Dataset (FER-2013 CSV/tar.gz, images zip, folder)."),
    source: str = typer.Option("neutral", help="Class translated from (domain A)."),
    target: str = typer.Option("disgust", help="Class translated to (domain B)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (with --resume: extend the run to this many)."),
    batch_size: Optional[int] = typer.Option(None, help="Faces per domain per step."),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate (2e-4)."),
    ngf: Optional[int] = typer.Option(None, help="Generator width."),
    n_blocks: Optional[int] = typer.Option(None, help="Generator residual blocks."),
    limit: Optional[int] = typer.Option(None, help="At most N faces per domain (quick runs)."),
    seed: Optional[int] = typer.Option(None),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda[:N]."),
    out: Optional[str] = typer.Option(None, help="Run folder (default ~/.cache/ferkit/runs/cyclegan-...)."),
    resume: Optional[Path] = typer.Option(None, help="Run folder to continue."),
) -> None:
    """Train a CycleGAN on Training-split faces; writes last.pt, metrics.csv and samples/*.png."""
    from ferkit.gan import gan_config, train_cyclegan

    cfg = gan_config(
        data=data,
        source=source,
        target=target,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        ngf=ngf,
        n_blocks=n_blocks,
        limit=limit,
        seed=seed,
        device=device,
        out=out,
    )
    from ferkit.utils import stop_signals

    with stop_signals():  # SIGTERM / SIGHUP end it like Ctrl-C: the last epoch is kept
        result = train_cyclegan(cfg, resume=resume, epochs=epochs if resume is not None else None)
    print(f"run folder: {result.run_dir} ({result.epochs} epochs, {result.wall_seconds:.0f} s)")


@app.command("generate")
def generate(
    checkpoint: Path = typer.Option(..., help="CycleGAN run folder or its last.pt."),
    out: Path = typer.Option(Path("synthetic.npz"), help=".npz archive, or a folder for PNG files."),
    n: int = typer.Option(3000, help="How many faces to make."),
    data: Optional[str] = typer.Option(None, help="Dataset (default: the one the GAN trained on)."),
    seed: int = typer.Option(0),
) -> None:
    """Translate Training-split source faces into labelled synthetic target faces."""
    from ferkit.gan import generate as run

    result = run(checkpoint, data=data, n=n, out=out, seed=seed)
    print(f"wrote {result.count} {result.target!r} faces (label {result.label}) to {result.out}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="gan")
