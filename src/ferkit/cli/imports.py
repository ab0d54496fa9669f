"""``ferkit import``: models from other toolkits' files, as ferkit ONNX models with a card."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Import models from other toolkits (no TensorFlow needed).", no_args_is_help=True)


@app.command("faceapi")
def faceapi(
    source: Path = typer.Argument(
        ..., help="face-api's npm tarball (npm pack), package folder or model folder."
    ),
    out: Path = typer.Option(Path("faceapi_expression.onnx"), help="ONNX file to write (card beside it)."),
    state_dict: Optional[Path] = typer.Option(
        None,
        help="Also save the PyTorch weights here (.pt), a starting point for training: "
        "ferkit train --model faceapi_expression --init FILE.pt.",
    ),
) -> None:
    """face-api's expression network (@vladmandic/face-api, MIT) as an ONNX model ferkit runs:
    ferkit predict --model OUT, ferkit eval OUT. Needs the train extra (torch) to convert."""
    from ferkit.importers.faceapi import import_faceapi_expression
    from ferkit.outputs import check_outputs

    outputs = {"--out": (out, "onnx"), "--out's card": (out.with_suffix(".json"), "json")}
    check_outputs(outputs | {"--state-dict": (state_dict, "torch")} if state_dict else outputs, [source])
    report = import_faceapi_expression(source, out, state_dict=state_dict)
    src = report.source
    typer.echo(
        f"wrote {report.path} from {src['package']} {src['version']} ({src['file']}, "
        f"sha256 {src['sha256'][:16]}..., {src['license']}); "
        f"max |ONNX - PyTorch| = {report.max_abs_diff:.1e}"
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="import")
