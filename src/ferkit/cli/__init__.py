"""The ``ferkit`` command line: a thin layer that parses input and calls the library.

Usage::

    ferkit data info ../shared/datasets/fer2013/fer2013.tar.gz
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from ferkit import __version__
from ferkit.cli import evaluate as cli_evaluate
from ferkit.cli import gan as cli_gan
from ferkit.cli import imports as cli_imports
from ferkit.cli import mirror as cli_mirror
from ferkit.cli import models as cli_models
from ferkit.cli import predict as cli_predict
from ferkit.cli import serve as cli_serve
from ferkit.cli import train as cli_train
from ferkit.cli import video as cli_video
from ferkit.cli.data import app as data_app
from ferkit.errors import FerkitError

app = typer.Typer(
    name="ferkit",
    help="Facial expression recognition: data, training, evaluation and fast recognition.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(data_app, name="data")
_QUIETED: list[str] = []  # environment settings main() made to quiet other libraries


def _print_version(value: bool) -> None:
    if value:
        print(f"ferkit {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        help="Show other libraries' log lines (OpenCV, Ray, LiteRT); or FERKIT_VERBOSE=1.",
    ),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print ferkit's version and exit."
    ),
) -> None:
    import os

    if verbose:
        os.environ["FERKIT_VERBOSE"] = "1"
        for name in _QUIETED:  # read by OpenCV when it loads, after this
            os.environ.pop(name, None)


# Each command module imports only typer/rich at the top (heavy libraries inside the
# commands), so registering them all here keeps `ferkit --help` fast.
for _module in (
    cli_models,
    cli_train,
    cli_gan,
    cli_evaluate,
    cli_predict,
    cli_video,
    cli_serve,
    cli_mirror,
    cli_imports,
):
    _module.register(app)


@app.command()
def version() -> None:
    """Print ferkit's version."""
    print(__version__)


_METAVARS = {str: "TEXT", int: "INTEGER", float: "NUMBER"}


def _plain_metavars(command) -> None:
    """Click's own placeholders (TEXT, INTEGER, PATH) in option help instead of Typer's
    ``<str>`` / ``<list[str]>``, for every command and subcommand."""
    import os
    from typing import get_args, get_origin

    for param in command.params:
        if getattr(param, "param_type_name", "") == "argument":  # INPUTS... rather than TEXT <list[str]>
            param.metavar = param.name.upper()
            param.display_type_rich = lambda ctx: None
            continue
        desc = getattr(param, "type_descriptor", None)
        if param.metavar is not None or getattr(param, "is_flag", False) or desc is None or desc.is_choice:
            continue
        annotation = desc.annotation
        if get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        is_path = desc.is_path or (isinstance(annotation, type) and issubclass(annotation, os.PathLike))
        name = "PATH" if is_path else _METAVARS.get(annotation)
        if name is not None:
            param.metavar = name
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)


def cli_command():
    """The click command behind ``ferkit`` (what ``main`` runs), with readable help."""
    command = typer.main.get_command(app)
    _plain_metavars(command)
    return command


def main() -> None:
    import os

    # Third-party chatter (OpenCV's "[ WARN ] PNG input buffer is incomplete" beside ferkit's
    # own clear message) stays out of ordinary runs; FERKIT_VERBOSE=1 shows it. Read by
    # OpenCV when it loads, which the commands do after this.
    if not os.environ.get("FERKIT_VERBOSE") and "OPENCV_LOG_LEVEL" not in os.environ:
        os.environ["OPENCV_LOG_LEVEL"] = "ERROR"
        _QUIETED.append("OPENCV_LOG_LEVEL")
    err = Console(stderr=True, soft_wrap=True)  # one line per error, greppable
    try:
        cli_command()(prog_name="ferkit")
    except FerkitError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)  # [..] is text
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
