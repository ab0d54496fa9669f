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
)
app.add_typer(data_app, name="data")
_QUIETED: list[str] = []  # environment settings main() made to quiet other libraries


@app.callback()
def _global_options(
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        help="Show other libraries' log lines (OpenCV, Ray, LiteRT); or FERKIT_VERBOSE=1.",
    ),
) -> None:
    import os

    if verbose:
        os.environ["FERKIT_VERBOSE"] = "1"
        for name in _QUIETED:  # read by OpenCV when it loads, after this
            os.environ.pop(name, None)


# Each command module imports only typer/rich at the top (heavy libraries inside the
# commands), so registering them all here keeps `ferkit --help` fast.
for _module in (cli_models, cli_train, cli_gan, cli_evaluate, cli_predict, cli_video, cli_serve, cli_mirror):
    _module.register(app)


@app.command()
def version() -> None:
    """Print ferkit's version."""
    print(__version__)


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
        app()
    except FerkitError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)  # [..] is text
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
