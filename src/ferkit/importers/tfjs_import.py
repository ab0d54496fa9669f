"""``ferkit import tfjs``: a TF.js model from a file, a folder or an npm tarball, converted
(``ferkit.importers.tfjs_onnx``), checked against TensorFlow.js itself where node and
@tensorflow/tfjs are installed, and saved as a plain ONNX graph or a ferkit model with a card.

Usage::

    result = import_tfjs("vladmandic-human-3.3.6.tgz", "emotion.onnx", model="emotion",
                         labels=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"))
    result.max_abs_diff        # ONNX Runtime against TensorFlow.js on the check input
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferkit.errors import DataError
from ferkit.importers.tfjs_build import NCHW_TO_NHWC, Converted, GraphBuilder
from ferkit.importers.tfjs_onnx import convert_tfjs

TFJS_MODULES_ENV = "FERKIT_TFJS_MODULES"  # a node_modules folder holding @tensorflow/tfjs


@dataclass
class TfjsImport:
    path: Path
    format: str
    inputs: list[tuple[str, list[int | None]]]  # of the TF.js model (NHWC)
    outputs: list[str]
    ops: dict[str, int]
    source: dict[str, str]  # package, version, model, file, sha256, license
    reference: str  # what the conversion was checked against, or why it was not
    max_abs_diff: float | None  # ONNX Runtime vs TensorFlow.js on the check input
    expression_model: bool  # a ferkit model with a card (labels given), else a plain conversion


def _model_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.json")):
        if path.name == "package.json" or path.stat().st_size > 50_000_000:
            continue
        try:
            head = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if isinstance(head, dict) and isinstance(head.get("modelTopology"), dict):
            found.append(path)
    return found


def _pick(root: Path, model: str | None, source: Path) -> Path:
    candidates = _model_files(root)
    if model is not None:
        chosen = [p for p in candidates if p.stem == model or p.name == model]
        if not chosen:
            names = ", ".join(p.stem for p in candidates) or "none"
            raise DataError(str(source), f"no TF.js model {model!r} in it (models: {names})")
        return chosen[0]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        hint = ""
        if any(root.rglob("*weights_manifest.json")):
            hint = " (weights manifests only, networks defined in code; face-api's: ferkit import faceapi)"
        raise DataError(str(source), f"no TF.js model.json (with a modelTopology) in it{hint}")
    names = ", ".join(p.stem for p in candidates)
    raise DataError(str(source), f"{len(candidates)} TF.js models in it; choose one with --model ({names})")


def _shards(model_json: Path) -> list[Path]:
    data = json.loads(model_json.read_text())
    return [
        model_json.parent / p for group in data.get("weightsManifest", []) for p in group.get("paths", [])
    ]


def tfjs_modules() -> Path | None:
    """A node_modules folder with @tensorflow/tfjs: $FERKIT_TFJS_MODULES, else the one
    ``tools/fetch_npm_weights.sh`` installs (~/.cache/ferkit/tfjs/node_modules)."""
    env = os.environ.get(TFJS_MODULES_ENV)
    candidates = [Path(env)] if env else [Path.home() / ".cache" / "ferkit" / "tfjs" / "node_modules"]
    for folder in candidates:
        if (folder / "@tensorflow" / "tfjs" / "package.json").is_file():
            return folder
    return None


def tfjs_missing() -> str | None:
    """Why TensorFlow.js cannot be run here (None: node and @tensorflow/tfjs are both found)."""
    import shutil

    if tfjs_modules() is None:
        return f"no TensorFlow.js (set {TFJS_MODULES_ENV} or run tools/fetch_npm_weights.sh)"
    if shutil.which("node") is None:
        return "node is not installed"
    return None


def tfjs_outputs(
    model_json: Path, x: np.ndarray, outputs: list[str], timeout: float = 600
) -> list[np.ndarray]:
    """TensorFlow.js's own outputs for ``x`` (NHWC float32), run by node (tfjs_reference.mjs)."""
    import shutil
    import subprocess
    import tempfile

    missing = tfjs_missing()
    if missing:
        raise DataError(str(model_json), f"TensorFlow.js cannot run: {missing}")
    node, modules = shutil.which("node"), tfjs_modules()
    script = Path(__file__).with_name("tfjs_reference.mjs")
    with tempfile.TemporaryDirectory() as tmp:
        np.ascontiguousarray(x, "<f4").tofile(Path(tmp) / "input.bin")
        shape = ",".join(str(d) for d in x.shape)
        cmd = [node, str(script), str(model_json), str(Path(tmp) / "input.bin"), shape, tmp, *outputs]
        env = dict(os.environ, NODE_PATH=str(modules))
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            tail = [line for line in lines if "Error" in line][:1] or lines[-3:]
            raise DataError(str(model_json), f"TensorFlow.js failed on it: {' / '.join(tail)}")
        shapes = json.loads((Path(tmp) / "outputs.json").read_text())
        return [
            np.fromfile(Path(tmp) / f"out_{k}.bin", "<f4").reshape(s["shape"]) for k, s in enumerate(shapes)
        ]


def check_input(converted: Converted, batch: int = 2, seed: int = 0) -> np.ndarray:
    """The input the conversion is checked on: uniform in [-1, 1] (what normalised images span),
    ``batch`` images unless the model fixes its batch."""
    (_, shape), *rest = converted.inputs
    if rest:
        raise DataError("model", "models with several inputs are not supported")
    dims = [batch if k == 0 and d is None else d for k, d in enumerate(shape)]
    if any(d is None for d in dims):
        raise DataError("model", f"its input shape {shape} leaves sizes other than the batch open")
    return np.random.default_rng(seed).uniform(-1, 1, dims).astype(np.float32)


def compare_with_tfjs(converted: Converted, model_json: Path) -> tuple[str, float | None]:
    """``(what it was checked against, max |ONNX - TF.js|)``; ``(why not, None)`` without TF.js."""
    import onnxruntime as ort

    missing = tfjs_missing()
    if missing:
        return f"not checked: {missing}", None
    x = check_input(converted)
    names = converted.tf_outputs if converted.format == "graph-model" else []
    expected = tfjs_outputs(model_json, x, names)
    session = ort.InferenceSession(converted.model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {converted.inputs[0][0]: x})
    if len(got) != len(expected):
        raise DataError(str(model_json), f"{len(got)} outputs converted, TensorFlow.js gives {len(expected)}")
    diff = 0.0
    for k, (a, e) in enumerate(zip(got, expected, strict=True)):
        if a.size != e.size:
            raise DataError(
                str(model_json), f"output {k}: shape {a.shape} converted, {e.shape} in TensorFlow.js"
            )
        diff = max(diff, float(np.abs(a.reshape(e.shape) - e).max()))
    version = json.loads((tfjs_modules() / "@tensorflow" / "tfjs" / "package.json").read_text())["version"]
    return f"TensorFlow.js {version} (CPU backend), {x.shape[0]} inputs uniform in [-1, 1]", diff


def as_expression_model(
    converted: Converted, labels: tuple[str, ...], mean: list[float], std: list[float], softmax: bool
):
    """The converted graph as a ferkit model: input ``pixels`` (batch, C, S, S) in [0, 1],
    ``(pixels - mean) / std`` and the move to NHWC inside, output ``probabilities``."""
    import onnx
    from onnx import TensorProto, helper

    (name, shape), *rest = converted.inputs
    if rest or len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] not in (1, 3):
        raise DataError(
            "model", f"input {shape}: a ferkit model takes one square image input (N, S, S, 1 or 3)"
        )
    size, channels = int(shape[1]), int(shape[3])
    model = onnx.ModelProto()
    model.CopyFrom(converted.model)
    g = model.graph
    b = GraphBuilder("model")
    b.reserve([*(n.name for n in g.initializer), *(o for n in g.node for o in n.output), name])
    m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, np.float32).reshape(-1, 1, 1)
    if m.shape[0] not in (1, channels) or s.shape[0] not in (1, channels):
        raise DataError("model", f"mean/std: one value or {channels} (the input's channels)")
    centred = b.op("Sub", ["pixels", b.const(m, "pixels/mean")], "pixels/centred")
    scaled = b.op("Div", [centred, b.const(s, "pixels/std")], "pixels/scaled")
    first = helper.make_node("Transpose", [scaled], [name], perm=NCHW_TO_NHWC, name=b.name("node/to_nhwc"))
    logits = converted.outputs[0]
    probs = helper.make_node(
        "Softmax" if softmax else "Identity",
        [logits],
        ["probabilities"],
        name=b.name("node/probabilities"),
        **({"axis": -1} if softmax else {}),
    )
    nodes = [*b.nodes, first, *g.node, probs]
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(b.initializers)
    del g.input[:]
    g.input.append(
        helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", channels, size, size])
    )
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(labels)]))
    onnx.checker.check_model(model)
    return model, size, channels


def import_tfjs(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str | None = None,
    labels: tuple[str, ...] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    softmax: bool = False,
    check: bool = True,
) -> TfjsImport:
    """A TF.js model from ``source`` (a model.json, a folder, or an npm tarball; ``model``
    picks one by name where there are several) to ONNX at ``out``, checked against
    TensorFlow.js when it is installed (``check``).

    With ``labels`` it becomes a ferkit expression model (``ferkit predict --model OUT``): the
    graph takes [0, 1] pixels and computes ``(pixels - mean) / std`` itself (the range the
    network was trained on; e.g. mean 0.5, std 0.5 for [-1, 1]); ``softmax`` adds one where
    the network ends in logits. Without labels the graph is the network as it is (NHWC)."""
    from ferkit.importers.npm import package_info, sha256_file, sha256_files, unpacked
    from ferkit.labels import canonical_emotion

    source, out = Path(source), Path(out)
    if not source.exists():
        raise DataError(str(source), "no such file or folder")
    if labels is not None:
        unknown = [name for name in labels if canonical_emotion(name) is None]
        if unknown:
            raise DataError("--labels", f"not an expression ferkit knows: {', '.join(unknown)}")

    def convert(model_json: Path, info: dict) -> TfjsImport:
        converted = convert_tfjs(model_json)
        reference, diff = (
            compare_with_tfjs(converted, model_json) if check else ("not checked (--no-check)", None)
        )
        info |= {"model": model_json.stem, **{k: str(v) for k, v in converted.metadata.items()}}
        if labels is None:
            _save_plain(converted, info, reference, out)
        else:
            spec = _ExpressionSpec(tuple(labels), list(mean or [0.0]), list(std or [1.0]), softmax)
            _save_expression(converted, model_json.stem, spec, info, reference, out)
        fields = (converted.format, converted.inputs, converted.outputs, converted.ops)
        return TfjsImport(out, *fields, info, reference, diff, labels is not None)

    if source.is_file() and source.name.endswith((".tgz", ".tar.gz")):
        with unpacked(source, lambda name: name.endswith((".json", ".bin"))) as tmp:
            chosen = _pick(tmp, model, source)
            info = package_info(chosen.parent)
            info["sha256"], info["file"] = sha256_file(source), source.name
            return convert(chosen, info)
    chosen = source if source.is_file() else _pick(source, model, source)
    info = package_info(chosen.parent)
    shards = _shards(chosen)
    info["sha256"], info["file"] = sha256_files([chosen, *shards]), f"{chosen.name} + {len(shards)} shard(s)"
    return convert(chosen, info)


def _save_plain(converted: Converted, info: dict, reference: str, out: Path) -> None:
    """The network as it is (NHWC), its source and reference check in the metadata."""
    import onnx

    from ferkit.card import compact_weights
    from ferkit.utils import atomic_path

    proto = converted.model
    for key, value in (("source", json.dumps(info)), ("tfjs_reference", reference)):
        proto.metadata_props.add(key=key, value=value)
    compact_weights(proto)  # TF.js's uint8 or float16 weights stay that small
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))


@dataclass
class _ExpressionSpec:
    labels: tuple[str, ...]
    mean: list[float]
    std: list[float]
    softmax: bool


def _save_expression(
    converted: Converted, stem: str, spec: _ExpressionSpec, info: dict, reference: str, out: Path
) -> None:
    """The network as a ferkit expression model: [0, 1] pixels in, probabilities out, a card."""
    from ferkit.card import ModelCard, compact_weights, save_onnx

    classes = _last_dim(converted)
    if classes is not None and len(spec.labels) != classes:
        raise DataError("--labels", f"{len(spec.labels)} labels for a network with {classes} outputs")
    proto, size, channels = as_expression_model(converted, spec.labels, spec.mean, spec.std, spec.softmax)
    card = ModelCard(
        labels=spec.labels,
        input_size=size,
        color="gray" if channels == 1 else "rgb",
        architecture=f"tfjs:{stem}",
        normalization={"mean": spec.mean, "std": spec.std, "applied_in_graph": True},
        license=f"{info['license']} ({info['package']} {info['version']}: {info['license_text']})",
        extra={
            "source": {k: info[k] for k in ("package", "version", "model", "file", "sha256", "license")}
            | {k: info[k] for k in ("generatedBy", "convertedBy") if k in info},
            "input_range": f"float32 pixels in [0, 1], shape (batch, {channels}, {size}, {size})",
            "output": "probabilities" + (" (softmax added)" if spec.softmax else ""),
            "tfjs_reference": reference,
            "parameters": int(sum(np.prod(t.dims) for t in proto.graph.initializer)),
        },
    )
    compact_weights(proto)  # after the parameters are counted
    save_onnx(proto, card, out)


def _last_dim(converted: Converted) -> int | None:
    dims = converted.model.graph.output[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value) if dims and dims[-1].HasField("dim_value") else None
