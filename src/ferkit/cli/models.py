"""``ferkit models``: the models that ship (from their cards); ``--architectures`` adds the ones to train."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Shipped models and trainable architectures.", invoke_without_command=True)


@app.callback()
def _models(
    ctx: typer.Context,
    architectures: bool = typer.Option(
        False, "--architectures", help="Also list the architectures to train (needs torch; slower)."
    ),
    input_size: int = typer.Option(48, help="Input side for the architectures' MAC count."),
) -> None:
    """Shipped models (use them by name) with their accuracy; `ferkit models list` is the same."""
    if ctx.invoked_subcommand is None:
        list_cmd(architectures=architectures, input_size=input_size)


def _accuracy(metrics: dict, key: str) -> str:
    value = metrics.get(key, {}).get("accuracy")
    return f"{value:.2%}" if value is not None else ""


@app.command("list")
def list_cmd(
    architectures: bool = typer.Option(
        False, "--architectures", help="Also list the architectures to train (needs torch; slower)."
    ),
    input_size: int = typer.Option(48, help="Input side for the architectures' MAC count."),
) -> None:
    """Shipped models (use them by name) with their accuracy; with --architectures, the
    registered architectures too."""
    from ferkit.card import ModelCard
    from ferkit.runtime.catalog import default_model_name, model_bytes, resolve_model, shipped_models

    console = Console()
    shipped = Table(title="Shipped models (ferkit predict --model NAME; accuracy from each card)")
    for col in ("name", "architecture", "classes", "input", "PrivateTest", "with flip TTA", "file MB"):
        shipped.add_column(col, justify="left" if col in ("name", "architecture") else "right")
    default = default_model_name() if shipped_models() else None
    for name in shipped_models():
        path = resolve_model(name)
        card = ModelCard.read(path)
        label_set = card.get("label_set") or "fer2013"
        suffix = "" if label_set == "fer2013" else f" ({label_set} labels)"
        size = model_bytes(path, card.members)
        shipped.add_row(
            name + (" (default)" if name == default else ""),
            f"{card.architecture} {_quantization(card.get('quantization') or '')}".strip(),
            str(len(card.labels)),
            f"{card.input_size} {card.color}",
            _accuracy(card.metrics, "PrivateTest") + suffix,
            _accuracy(card.metrics, "PrivateTest_tta_flip"),
            f"{size / 1e6:.1f}",
        )
    console.print(shipped)
    if not architectures:
        return
    try:
        from ferkit.models import list_models, model_stats
    except ModuleNotFoundError as exc:  # torch: the [train] extra
        console.print(  # markup off: [train] is text
            f'Architectures: pip install "ferkit[train]" torch==2.13.0 to list and train them ({exc})',
            markup=False,
        )
        return
    table = Table(title=f"Architectures (ferkit train --model NAME; MACs at {input_size}x{input_size}, grey)")
    for col in ("architecture", "parameters", "size (MB, fp32)", "MMACs"):
        table.add_column(col, justify="left" if col == "architecture" else "right")
    for name in list_models():
        s = model_stats(name, input_size=input_size)
        table.add_row(name, f"{s.params:,}", f"{s.size_mb:.2f}", f"{s.macs / 1e6:,.1f}")
    console.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="models")


def _quantization(how: str) -> str:
    """A card's quantization line, short: 'int8', 'int8, int4 weights' or ''."""
    from ferkit.card import INT4_WEIGHTS

    return f"int8, {INT4_WEIGHTS}" if INT4_WEIGHTS in how else how.split(" ")[0]
