"""TF.js graph and layers models -> ONNX (``ferkit.importers.tfjs_onnx``, ``ferkit import tfjs``).

The models are written by the tests themselves (a GraphDef-style model.json with base64
attributes, a Keras topology, weight shards, one weight quantised) and checked three ways:
against a NumPy computation of what TensorFlow defines each op to do, against TensorFlow.js
itself when node and @tensorflow/tfjs are installed, and through ``ferkit predict``/``eval``
once imported with labels. The real @vladmandic/human emotion network is checked when its
tarball is in the cache (tools/fetch_npm_weights.sh).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from ferkit.errors import DataError
from ferkit.importers.tfjs_import import import_tfjs, tfjs_modules, tfjs_outputs
from ferkit.importers.tfjs_onnx import convert_tfjs

HUMAN_TGZ = Path.home() / ".cache" / "ferkit" / "npm" / "vladmandic-human-3.3.6.tgz"
needs_tfjs = pytest.mark.skipif(
    shutil.which("node") is None or tfjs_modules() is None,
    reason="needs node and TensorFlow.js (bash tools/fetch_npm_weights.sh)",
)


# --- NumPy reference of the TF ops (NHWC) ----------------------------------------------------


def _same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2  # TF: the odd pixel at the end


def _pad(x, kh, kw, stride, padding, value=0.0):
    if padding == "VALID":
        return x
    top, bottom = _same_pads(x.shape[1], kh, stride)
    left, right = _same_pads(x.shape[2], kw, stride)
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def np_conv(x, w, stride, padding):  # w: HWIO
    kh, kw = w.shape[:2]
    x = _pad(x, kh, kw, stride, padding)
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :]
            out += patch @ w[i, j]
    return out


def np_depthwise(x, w, stride, padding):  # w: H W C multiplier; output channel c * m + k
    kh, kw, c, m = w.shape
    x = _pad(x, kh, kw, stride, padding)
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, c, m), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :]
            out += patch[..., None] * w[i, j]
    return out.reshape(x.shape[0], oh, ow, c * m)


def np_maxpool(x, k, stride, padding):
    x = _pad(x, k, k, stride, padding, -np.inf)
    oh, ow = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.full((x.shape[0], oh, ow, x.shape[3]), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, x[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :])
    return out


def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --- writing TF.js files ---------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _write(folder: Path, name: str, topology: dict, fmt: str, weights: dict[str, np.ndarray], quantise=()):
    """model.json + one shard; the tensors named in ``quantise`` stored as uint8 with scale/min."""
    specs, blobs = [], []
    for key, value in weights.items():
        value = np.asarray(value)
        spec = {
            "name": key,
            "shape": list(value.shape),
            "dtype": "int32" if value.dtype.kind == "i" else "float32",
        }
        if key in quantise:
            lo, hi = float(value.min()), float(value.max())
            scale = (hi - lo) / 255 or 1.0
            q = np.round((value - lo) / scale).astype(np.uint8)
            spec["quantization"] = {"dtype": "uint8", "scale": scale, "min": lo}
            blobs.append(q.tobytes())
            weights[key] = q.astype(np.float32) * np.float32(scale) + np.float32(lo)  # what a reader sees
        else:
            blobs.append(value.astype("<i4" if value.dtype.kind == "i" else "<f4").tobytes())
        specs.append(spec)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.bin").write_bytes(b"".join(blobs))
    data = {
        "format": fmt,
        "generatedBy": "ferkit tests",
        "convertedBy": "hand",
        "modelTopology": topology,
        "weightsManifest": [{"paths": [f"{name}.bin"], "weights": specs}],
    }
    (folder / f"{name}.json").write_text(json.dumps(data))
    return folder / f"{name}.json"


def _node(name, op, inputs=(), **attr):
    return {"name": name, "op": op, "input": list(inputs), "attr": attr}


def _ints(*values):
    return {"list": {"i": [str(v) for v in values]}}


def _s(text):
    return {"s": _b64(text)}


def graph_model(folder: Path, rng) -> tuple[Path, dict]:
    """input (N, 9, 9, 3) -> fused conv 3x3 SAME + bias + relu -> depthwise 3x3 /2 SAME x2
    -> batch norm -> pad -> max pool 2 VALID -> concat with itself -> mean over H, W
    -> fused matmul + bias -> softmax; and a second output: a reshape of the pooled map."""
    w = {
        "conv/w": rng.normal(0, 0.3, (3, 3, 3, 4)).astype(np.float32),
        "conv/b": rng.normal(0, 0.1, 4).astype(np.float32),
        "dw/w": rng.normal(0, 0.3, (3, 3, 4, 2)).astype(np.float32),
        "bn/scale": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "bn/offset": rng.normal(0, 0.1, 8).astype(np.float32),
        "bn/mean": rng.normal(0, 0.1, 8).astype(np.float32),
        "bn/var": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "pad/p": np.array([[0, 0], [1, 0], [0, 1], [0, 0]], np.int32),
        "concat/axis": np.array(3, np.int32).reshape(()),
        "mean/axes": np.array([1, 2], np.int32),
        "fc/w": rng.normal(0, 0.3, (16, 5)).astype(np.float32),
        "fc/b": rng.normal(0, 0.1, 5).astype(np.float32),
        "flat/shape": np.array([-1, 3 * 3 * 8], np.int32),
    }
    nodes = [
        _node(
            "input",
            "Placeholder",
            shape={"shape": {"dim": [{"size": "-1"}, {"size": "9"}, {"size": "9"}, {"size": "3"}]}},
        ),
        *[_node(k, "Const") for k in w],
        _node(
            "conv",
            "_FusedConv2D",
            ["input", "conv/w", "conv/b"],
            strides=_ints(1, 1, 1, 1),
            padding=_s("SAME"),
            fused_ops={"list": {"s": [_b64("BiasAdd"), _b64("Relu")]}},
            num_args={"i": "1"},
            data_format=_s("NHWC"),
            dilations=_ints(1, 1, 1, 1),
        ),
        _node(
            "dw",
            "DepthwiseConv2dNative",
            ["conv", "dw/w"],
            strides=_ints(1, 2, 2, 1),
            padding=_s("SAME"),
            dilations=_ints(1, 1, 1, 1),
            data_format=_s("NHWC"),
        ),
        _node(
            "bn",
            "FusedBatchNormV3",
            ["dw", "bn/scale", "bn/offset", "bn/mean", "bn/var"],
            epsilon={"f": 0.001},
        ),
        _node("pad", "Pad", ["bn", "pad/p"]),
        _node(
            "pool",
            "MaxPool",
            ["pad"],
            ksize=_ints(1, 2, 2, 1),
            strides=_ints(1, 2, 2, 1),
            padding=_s("VALID"),
        ),
        _node("cat", "ConcatV2", ["pool", "pool", "concat/axis"], N={"i": "2"}),
        _node("gap", "Mean", ["cat", "mean/axes"], keep_dims={"b": False}),
        _node(
            "fc",
            "_FusedMatMul",
            ["gap", "fc/w", "fc/b"],
            fused_ops={"list": {"s": [_b64("BiasAdd")]}},
            num_args={"i": "1"},
            transpose_a={"b": False},
            transpose_b={"b": False},
        ),
        _node("probs", "Softmax", ["fc"]),
        _node("flat", "Reshape", ["pool", "flat/shape"]),
    ]
    path = _write(
        folder, "graph", {"node": nodes, "library": {}, "versions": {}}, "graph-model", w, quantise=("fc/w",)
    )
    return path, w


def graph_reference(x, w):
    y = np.maximum(np_conv(x, w["conv/w"], 1, "SAME") + w["conv/b"], 0)
    y = np_depthwise(y, w["dw/w"], 2, "SAME")
    s = w["bn/scale"] / np.sqrt(w["bn/var"] + 0.001)
    y = y * s + (w["bn/offset"] - w["bn/mean"] * s)
    y = np.pad(y, ((0, 0), (1, 0), (0, 1), (0, 0)))
    pool = np_maxpool(y, 2, 2, "VALID")
    gap = np.concatenate([pool, pool], axis=3).mean(axis=(1, 2))
    return np_softmax(gap @ w["fc/w"] + w["fc/b"]), pool.reshape(len(x), -1)


def layer(cls: str, name: str, inbound: list[str], **config) -> dict:
    """One Keras layer of a TF.js layers model's topology, fed by the layers named in ``inbound``."""
    return {
        "class_name": cls,
        "name": name,
        "config": {"name": name, **config},
        "inbound_nodes": [[[i, 0, 0, {}] for i in inbound]] if inbound else [],
    }


def layers_model(folder: Path, rng) -> tuple[Path, dict]:
    """A functional Keras model: conv (relu6, SAME /2) -> batch norm -> two branches (separable
    conv VALID-padded by a zero padding; depthwise conv) added -> concatenate with the trunk
    -> global average pool -> dropout -> dense softmax."""
    w = {
        "conv/kernel": rng.normal(0, 0.3, (3, 3, 1, 4)).astype(np.float32),
        "conv/bias": rng.normal(0, 0.1, 4).astype(np.float32),
        "bn/gamma": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "bn/beta": rng.normal(0, 0.1, 4).astype(np.float32),
        "bn/moving_mean": rng.normal(0, 0.1, 4).astype(np.float32),
        "bn/moving_variance": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "sep/depthwise_kernel": rng.normal(0, 0.3, (3, 3, 4, 1)).astype(np.float32),
        "sep/pointwise_kernel": rng.normal(0, 0.3, (1, 1, 4, 4)).astype(np.float32),
        "sep/bias": rng.normal(0, 0.1, 4).astype(np.float32),
        "dw/depthwise_kernel": rng.normal(0, 0.3, (3, 3, 4, 1)).astype(np.float32),
        "fc/kernel": rng.normal(0, 0.3, (8, 7)).astype(np.float32),
        "fc/bias": rng.normal(0, 0.1, 7).astype(np.float32),
    }

    layers = [
        layer("InputLayer", "x", [], batch_input_shape=[None, 10, 10, 1], dtype="float32"),
        layer(
            "Conv2D",
            "conv",
            ["x"],
            filters=4,
            kernel_size=[3, 3],
            strides=[2, 2],
            padding="same",
            activation="relu6",
            use_bias=True,
            data_format="channels_last",
            dilation_rate=[1, 1],
        ),
        layer("BatchNormalization", "bn", ["conv"], axis=-1, epsilon=0.001, center=True, scale=True),
        layer("ZeroPadding2D", "zp", ["bn"], padding=[[1, 1], [1, 1]]),
        layer(
            "SeparableConv2D",
            "sep",
            ["zp"],
            filters=4,
            kernel_size=[3, 3],
            strides=[1, 1],
            padding="valid",
            activation="linear",
            use_bias=True,
            depth_multiplier=1,
        ),
        layer(
            "DepthwiseConv2D",
            "dw",
            ["bn"],
            kernel_size=[3, 3],
            strides=[1, 1],
            padding="same",
            activation="relu",
            use_bias=False,
            depth_multiplier=1,
        ),
        layer("Add", "add", ["sep", "dw"]),
        layer("Concatenate", "cat", ["add", "bn"], axis=-1),
        layer("GlobalAveragePooling2D", "gap", ["cat"]),
        layer("Dropout", "drop", ["gap"], rate=0.5),
        layer("Dense", "fc", ["drop"], units=7, activation="softmax", use_bias=True),
    ]
    topology = {
        "class_name": "Model",
        "config": {
            "name": "m",
            "layers": layers,
            "input_layers": [["x", 0, 0]],
            "output_layers": [["fc", 0, 0]],
        },
        "keras_version": "tfjs-layers 4.22.0",
        "backend": "tensor_flow.js",
    }
    return _write(folder, "layers", topology, "layers-model", w), w


def layers_reference(x, w):
    y = np.clip(np_conv(x, w["conv/kernel"], 2, "SAME") + w["conv/bias"], 0, 6)
    s = w["bn/gamma"] / np.sqrt(w["bn/moving_variance"] + 0.001)
    bn = y * s + (w["bn/beta"] - w["bn/moving_mean"] * s)
    zp = np.pad(bn, ((0, 0), (1, 1), (1, 1), (0, 0)))
    sep = np_conv(
        np_depthwise(zp, w["sep/depthwise_kernel"], 1, "VALID"), w["sep/pointwise_kernel"], 1, "VALID"
    )
    sep = sep + w["sep/bias"]
    dw = np.maximum(np_depthwise(bn, w["dw/depthwise_kernel"], 1, "SAME"), 0)
    gap = np.concatenate([sep + dw, bn], axis=-1).mean(axis=(1, 2))
    return np_softmax(gap @ w["fc/kernel"] + w["fc/bias"])


def _run(converted, x):
    session = ort.InferenceSession(converted.model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {converted.inputs[0][0]: x})


# --- tests -----------------------------------------------------------------------------------


def test_graph_model_matches_tensorflow_semantics(tmp_path):
    path, w = graph_model(tmp_path, np.random.default_rng(0))
    converted = convert_tfjs(path)
    assert converted.format == "graph-model"
    assert converted.inputs[0][1] == [None, 9, 9, 3]
    assert converted.ops["_FusedConv2D"] == 1 and converted.ops["DepthwiseConv2dNative"] == 1
    x = np.random.default_rng(1).uniform(-1, 1, (3, 9, 9, 3)).astype(np.float32)
    probs, flat = _run(converted, x)
    ref_probs, ref_flat = graph_reference(x.astype(np.float64), w)
    assert probs.shape == (3, 5) and flat.shape == (3, 72)
    np.testing.assert_allclose(probs, ref_probs, atol=2e-6)
    np.testing.assert_allclose(flat, ref_flat, atol=2e-5)


def test_layers_model_matches_keras_semantics(tmp_path):
    path, w = layers_model(tmp_path, np.random.default_rng(2))
    converted = convert_tfjs(path)
    assert converted.format == "layers-model"
    assert converted.ops["SeparableConv2D"] == 1 and converted.ops["Add"] == 1
    x = np.random.default_rng(3).uniform(-1, 1, (2, 10, 10, 1)).astype(np.float32)
    (probs,) = _run(converted, x)
    np.testing.assert_allclose(probs, layers_reference(x.astype(np.float64), w), atol=2e-6)


@needs_tfjs
def test_conversions_match_tensorflow_js_itself(tmp_path):
    """The NumPy references above agree with TF.js, and so do the conversions."""
    for build, shape in ((graph_model, (2, 9, 9, 3)), (layers_model, (2, 10, 10, 1))):
        path, w = build(tmp_path / build.__name__, np.random.default_rng(4))
        converted = convert_tfjs(path)
        x = np.random.default_rng(5).uniform(-1, 1, shape).astype(np.float32)
        expected = tfjs_outputs(path, x, converted.tf_outputs if converted.format == "graph-model" else [])
        got = _run(converted, x)
        assert len(got) == len(expected)
        for a, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(a.reshape(e.shape), e, atol=3e-5)


def test_errors_name_the_file_and_the_problem(tmp_path):
    path, _ = graph_model(tmp_path / "g", np.random.default_rng(0))
    data = json.loads(path.read_text())
    data["modelTopology"]["node"].append(_node("odd", "Cumsum", ["probs"]))
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"graph\.json.*odd: TF op Cumsum is not supported"):
        convert_tfjs(path)

    (tmp_path / "g" / "graph.bin").write_bytes(b"\0" * 10)  # truncated shard
    with pytest.raises(DataError, match="runs past the end of its shards"):
        convert_tfjs(path)

    manifest = tmp_path / "m" / "x-weights_manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps([{"paths": ["x.bin"], "weights": []}]))
    with pytest.raises(DataError, match="no modelTopology.*ferkit import faceapi"):
        convert_tfjs(manifest)
    with pytest.raises(DataError, match="weights manifests only"):
        import_tfjs(manifest.parent, tmp_path / "x.onnx", check=False)

    lpath, _ = layers_model(tmp_path / "l", np.random.default_rng(0))
    data = json.loads(lpath.read_text())
    data["modelTopology"]["config"]["layers"][4]["class_name"] = "LocallyConnected2D"
    lpath.write_text(json.dumps(data))
    with pytest.raises(DataError, match="layer 'sep': Keras layer LocallyConnected2D is not supported"):
        convert_tfjs(lpath)


def _npm_tarball(tmp_path: Path) -> Path:
    """An npm-pack-like tarball: package/package.json, LICENSE and two models."""
    rng = np.random.default_rng(6)
    models = tmp_path / "src" / "package" / "models"
    graph_model(models, rng)
    layers_model(models, rng)
    (models.parent / "package.json").write_text(
        json.dumps({"name": "@test/faces", "version": "1.2.3", "license": "MIT"})
    )
    (models.parent / "LICENSE").write_text("MIT License\n\nCopyright (c) test\n")
    tgz = tmp_path / "test-faces-1.2.3.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(models.parent, arcname="package")
    return tgz


def test_import_from_an_npm_tarball_as_a_ferkit_model(tmp_path):
    tgz = _npm_tarball(tmp_path)
    with pytest.raises(DataError, match=r"2 TF.js models in it; choose one with --model \(graph, layers\)"):
        import_tfjs(tgz, tmp_path / "x.onnx", check=False)
    with pytest.raises(DataError, match="no TF.js model 'nope'"):
        import_tfjs(tgz, tmp_path / "x.onnx", model="nope", check=False)
    with pytest.raises(DataError, match="5 labels for a network with 7 outputs"):
        import_tfjs(
            tgz,
            tmp_path / "x.onnx",
            model="layers",
            labels=("angry", "happy", "sad", "fear", "neutral"),
            check=False,
        )
    with pytest.raises(DataError, match="not an expression ferkit knows: grumpy"):
        import_tfjs(tgz, tmp_path / "x.onnx", model="layers", labels=("grumpy",) * 7, check=False)

    out = tmp_path / "faces.onnx"
    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    report = import_tfjs(tgz, out, model="layers", labels=labels, mean=[0.5], std=[0.5], check=False)
    assert report.expression_model and report.source["package"] == "@test/faces"
    assert report.source["version"] == "1.2.3" and report.source["license"] == "MIT"
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["labels"] == list(labels) and card["input_size"] == 10 and card["color"] == "gray"
    assert card["source"]["sha256"] and card["source"]["model"] == "layers"

    # the ferkit model: [0, 1] pixels NCHW in, (x - 0.5) / 0.5 and NHWC inside
    pixels = np.random.default_rng(7).random((2, 1, 10, 10), dtype=np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixels": pixels})[0]
    plain = convert_tfjs(tmp_path / "src" / "package" / "models" / "layers.json")
    (expected,) = _run(plain, ((pixels - 0.5) / 0.5).transpose(0, 2, 3, 1).astype(np.float32))
    np.testing.assert_allclose(got, expected, atol=1e-6)

    # ferkit's one loader runs it on face crops of any size (resized to the card's 10 px, gray)
    from ferkit.runtime.classifier import load_model

    classifier = load_model(str(out))
    assert classifier.labels == labels and classifier.input_size == 10
    faces = (np.random.default_rng(8).random((3, 40, 40, 3)) * 255).astype(np.uint8)
    probs = classifier.predict_proba(faces)
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_cli_imports_and_predicts(tmp_path):
    tgz = _npm_tarball(tmp_path)
    out = tmp_path / "faces.onnx"
    cmd = [
        sys.executable,
        "-m",
        "ferkit",
        "import",
        "tfjs",
        str(tgz),
        "--model",
        "graph",
        "--out",
        str(out),
        "--no-check",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "graph-model graph from @test/faces 1.2.3" in done.stdout and "_FusedConv2D 1" in done.stdout
    assert out.is_file() and not out.with_suffix(".json").exists()  # a plain conversion: no card

    bad = subprocess.run([*cmd[:-1], "--mean", "0.5"], capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "need --labels" in bad.stderr

    cmd = [
        *cmd[:7],
        "layers",
        "--out",
        str(tmp_path / "expr.onnx"),
        "--labels",
        "fer2013",
        "--mean",
        "0.5",
        "--std",
        "0.5",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    if tfjs_modules() is not None and shutil.which("node"):
        assert "max |ONNX - TF.js|" in done.stdout
    else:
        assert "not checked" in done.stdout

    photos = Path(__file__).resolve().parents[1] / "examples" / "photos"
    jsonl = tmp_path / "faces.jsonl"
    pred = subprocess.run(
        [
            sys.executable,
            "-m",
            "ferkit",
            "predict",
            str(photos),
            "--model",
            str(tmp_path / "expr.onnx"),
            "--json",
            str(jsonl),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pred.returncode == 0, pred.stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) >= 4  # the sample photos' faces, each with this model's 7 classes
    assert all(
        set(r["probs"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
        for r in records
    )


@pytest.mark.skipif(not HUMAN_TGZ.is_file(), reason=f"needs {HUMAN_TGZ} (tools/fetch_npm_weights.sh)")
@needs_tfjs
def test_human_emotion_network_matches_tensorflow_js(tmp_path):
    out = tmp_path / "emotion.onnx"
    report = import_tfjs(
        HUMAN_TGZ,
        out,
        model="emotion",
        labels=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
        mean=[0.5],
        std=[0.5],
    )
    assert report.format == "graph-model" and report.inputs[0][1] == [None, 64, 64, 1]
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-5
    assert report.source["sha256"].startswith("425e9c51") and report.source["license"] == "MIT"
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["source"]["generatedBy"] == "https://github.com/oarriaga/face_classification"


def test_quantised_weights_stay_small_in_the_onnx_file(tmp_path):
    """A TF.js tensor stored as uint8 codes stays one byte a weight in the ONNX file (indices
    into a table of its values, folded back at load): same outputs, a quarter of the bytes."""
    import onnx

    rng = np.random.default_rng(5)
    w = {"fc/kernel": rng.normal(0, 0.1, (100, 40)).astype(np.float32), "fc/bias": np.zeros(40, np.float32)}

    topology = {
        "class_name": "Model",
        "config": {
            "name": "m",
            "layers": [
                layer("InputLayer", "x", [], batch_input_shape=[None, 10, 10, 1], dtype="float32"),
                layer("Flatten", "flat", ["x"]),
                layer("Dense", "fc", ["flat"], units=40, activation="linear", use_bias=True),
            ],
            "input_layers": [["x", 0, 0]],
            "output_layers": [["fc", 0, 0]],
        },
    }
    path = _write(tmp_path / "q", "layers", topology, "layers-model", w, quantise=("fc/kernel",))
    out = tmp_path / "q.onnx"
    import_tfjs(path, out, check=False)
    model = onnx.load(str(out))
    assert any(n.op_type == "Gather" for n in model.graph.node)
    stored = {t.name: t for t in model.graph.initializer}
    assert sum(onnx.numpy_helper.to_array(t).nbytes for t in stored.values()) < 4000 * 2  # not 16,000 B
    x = rng.random((3, 10, 10, 1), dtype=np.float32)
    (got,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(got, x.reshape(3, -1) @ w["fc/kernel"] + w["fc/bias"], atol=1e-5)
