"""``ferkit import``: models from other toolkits' files, as ferkit ONNX models with a card."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Import models from other toolkits (no TensorFlow needed).", no_args_is_help=True)


@app.command("faceapi")
def faceapi(
    source: Path = typer.Argument(
        ..., help="face-api's npm tarball (npm pack), package folder or model folder."
    ),
    out: Path = typer.Option(Path("faceapi_expression.onnx"), help="ONNX file to write (card beside it)."),
) -> None:
    """face-api's expression network (@vladmandic/face-api, MIT) as an ONNX model ferkit runs:
    ferkit predict --model OUT, ferkit eval OUT. Needs the train extra (torch) to convert."""
    from ferkit.importers.faceapi import import_faceapi_expression
    from ferkit.outputs import check_outputs

    check_outputs({"--out": (out, "onnx"), "--out's card": (out.with_suffix(".json"), "json")}, [source])
    report = import_faceapi_expression(source, out)
    src = report.source
    typer.echo(
        f"wrote {report.path} from {src['package']} {src['version']} ({src['file']}, "
        f"sha256 {src['sha256'][:16]}..., {src['license']}); "
        f"max |ONNX - PyTorch| = {report.max_abs_diff:.1e}"
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="import")
