"""What a newcomer meets on the command line: --version, readable help, a fast model list."""

from __future__ import annotations

import re
import subprocess
import sys

from ferkit import __version__
from ferkit.cli import cli_command

FERKIT = [sys.executable, "-m", "ferkit"]


def _helps(command, ctx=None, path=("ferkit",)):
    """(command path, help text) for the root and every subcommand."""
    ctx = type(ctx)(command, info_name=path[-1], parent=ctx) if ctx else _context(command)
    yield " ".join(path), command.get_help(ctx)
    for name, sub in getattr(command, "commands", {}).items():
        yield from _helps(sub, ctx, (*path, name))


def _context(command):
    from typer import _click  # Typer's own click (the one its commands are built on)

    return _click.Context(command, info_name="ferkit")


def test_version_flag():
    r = subprocess.run([*FERKIT, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"ferkit {__version__}"


def test_every_help_page_is_plain_text():
    pages = dict(_helps(cli_command()))
    assert {
        "ferkit predict",
        "ferkit video",
        "ferkit serve",
        "ferkit models list",
        "ferkit data info",
    } <= set(pages)
    for name, text in pages.items():
        assert not re.search(r"<(str|int|float|bool|path|list\[)", text), (name, text)
    assert 'pip install "ferkit[app]"' in " ".join(pages["ferkit mirror"].split())  # markup not eaten
    assert "--json" in pages["ferkit video"] and "--json" in pages["ferkit predict"]


def test_models_lists_quickly_without_torch():
    code = (
        "import sys; from ferkit.cli import main; sys.argv = ['ferkit', 'models']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "fast (default)" in r.stdout and r.stdout.strip().endswith("NO-TORCH")
