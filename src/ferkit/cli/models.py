"""``ferkit models list``: registered architectures with parameters and MACs."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Model architectures.", no_args_is_help=True)


@app.command("list")
def list_cmd(input_size: int = typer.Option(48, help="Input side for the MAC count.")) -> None:
    """Registered models with parameter count, fp32 size and MACs per face."""
    from ferkit.models import list_models, model_stats

    table = Table(title=f"Registered models (MACs at {input_size}x{input_size}, 7 classes, grey input)")
    for col in ("model", "parameters", "size (MB, fp32)", "MMACs"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name in list_models():
        s = model_stats(name, input_size=input_size)
        table.add_row(name, f"{s.params:,}", f"{s.size_mb:.2f}", f"{s.macs / 1e6:,.1f}")
    Console().print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="models")
