"""The ``ferkit`` command line: a thin layer that parses input and calls the library.

Usage::

    ferkit data info ../shared/datasets/fer2013/fer2013.tar.gz
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from ferkit import __version__
from ferkit.cli.data import app as data_app
from ferkit.errors import FerkitError

app = typer.Typer(
    name="ferkit",
    help="Facial expression recognition: data, training, evaluation and fast recognition.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")

_CLI_MODULES = (
    "ferkit.cli.models",
    "ferkit.cli.train",
    "ferkit.cli.evaluate",
    "ferkit.cli.predict",
    "ferkit.cli.video",
    "ferkit.cli.serve",
    "ferkit.cli.mirror",
)


def _add_optional_commands() -> None:
    """Register command groups whose modules exist (each adds itself to ``app``)."""
    import importlib

    for name in _CLI_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)


@app.command()
def version() -> None:
    """Print ferkit's version."""
    print(__version__)


def main() -> None:
    _add_optional_commands()
    err = Console(stderr=True)
    try:
        app()
    except FerkitError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
