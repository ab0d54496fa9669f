"""TF.js weights and face-api's expression network: the reader on manifests the test writes,
the PyTorch rebuild against TensorFlow.js itself (when tools/fetch_npm_weights.sh installed it),
and the import to an ONNX model ferkit runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ferkit.errors import DataError
from ferkit.importers.tfjs import read_tfjs_weights

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("FERKIT_NPM_CACHE", Path.home() / ".cache" / "ferkit"))
TFJS = CACHE / "tfjs" / "node_modules"
FACEAPI_TGZ = CACHE / "npm" / "vladmandic-face-api-1.7.15.tgz"
needs_tfjs = pytest.mark.skipif(
    shutil.which("node") is None or not (TFJS / "@tensorflow" / "tfjs").is_dir(),
    reason=f"needs node and TensorFlow.js in {TFJS} (bash tools/fetch_npm_weights.sh)",
)


def write_manifest(folder: Path, tensors: dict, quantise: tuple[str, ...] = (), shards: int = 1) -> Path:
    """A TF.js weights manifest over ``shards`` binary files: float32, int32, uint8-quantised."""
    specs, blob = [], b""
    for name, value in tensors.items():
        spec = {"name": name, "shape": list(value.shape), "dtype": str(value.dtype)}
        if name in quantise:
            low, high = float(value.min()), float(value.max())
            scale = (high - low) / 255 or 1.0
            q = np.round((value - low) / scale).astype(np.uint8)
            spec["quantization"] = {"dtype": "uint8", "scale": scale, "min": low}
            blob += q.tobytes()
        else:
            blob += value.astype(value.dtype.newbyteorder("<")).tobytes()
        specs.append(spec)
    cut = np.linspace(0, len(blob), shards + 1).astype(int)
    paths = []
    for k in range(shards):
        paths.append(f"w.bin-shard{k}")
        (folder / paths[-1]).write_bytes(blob[cut[k] : cut[k + 1]])
    manifest = folder / "face_expression_model-weights_manifest.json"
    manifest.write_text(json.dumps([{"paths": paths, "weights": specs}]))
    return manifest


def test_reader_dequantises_and_names_broken_files(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "a/kernel": rng.standard_normal((2, 3)).astype(np.float32),
        "b/quantised": rng.standard_normal((50,)).astype(np.float32),
        "c/ids": np.arange(5, dtype=np.int32),
    }
    manifest = write_manifest(tmp_path, tensors, quantise=("b/quantised",), shards=2)
    got = read_tfjs_weights(manifest)
    assert np.array_equal(got["a/kernel"], tensors["a/kernel"]) and np.array_equal(got["c/ids"], np.arange(5))
    step = (tensors["b/quantised"].max() - tensors["b/quantised"].min()) / 255
    assert np.abs(got["b/quantised"] - tensors["b/quantised"]).max() <= step / 2 + 1e-6
    shard = tmp_path / "w.bin-shard1"
    shard.write_bytes(shard.read_bytes()[:-4])
    with pytest.raises(DataError, match="runs past the end of its shards"):
        read_tfjs_weights(manifest)
    shard.unlink()
    with pytest.raises(DataError, match="weight shard\\(s\\) missing"):
        read_tfjs_weights(manifest)
    (tmp_path / "junk.json").write_text('{"modelTopology": {}}')
    with pytest.raises(DataError, match="no weights manifest"):
        read_tfjs_weights(tmp_path / "junk.json")


def random_faceapi(folder: Path, seed: int = 0) -> Path:
    """face-api's expression network with random weights, in its own names and layouts."""
    rng = np.random.default_rng(seed)
    tensors, cin = {}, 3
    for b, cout in enumerate((32, 64, 128, 256)):
        for c in range(4):
            key = f"dense{b}/conv{c}"
            if b == 0 and c == 0:
                tensors[f"{key}/filters"] = rng.normal(0, 0.3, (3, 3, cin, cout)).astype(np.float32)
            else:
                n = cin if c == 0 else cout
                tensors[f"{key}/depthwise_filter"] = rng.normal(0, 0.3, (3, 3, n, 1)).astype(np.float32)
                tensors[f"{key}/pointwise_filter"] = rng.normal(0, 1 / np.sqrt(n), (1, 1, n, cout)).astype(
                    np.float32
                )
            tensors[f"{key}/bias"] = rng.normal(0, 0.1, (cout,)).astype(np.float32)
        cin = cout
    tensors["fc/weights"] = rng.normal(0, 0.1, (256, 7)).astype(np.float32)
    tensors["fc/bias"] = rng.normal(0, 0.1, (7,)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    (folder.parent / "package.json").write_text(
        '{"name": "test-faceapi", "version": "0.0.1", "license": "MIT"}'
    )
    (folder.parent / "LICENSE").write_text("MIT License\n\nCopyright (c) the test\n")
    return write_manifest(folder, tensors, quantise=("fc/weights",))


def tfjs_reference(manifest: Path, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    (tmp_path / "in.json").write_text(json.dumps({"shape": list(x.shape), "data": x.ravel().tolist()}))
    done = subprocess.run(
        [
            "node",
            str(ROOT / "tools" / "faceapi_reference.mjs"),
            str(manifest),
            str(tmp_path / "in.json"),
            str(tmp_path / "out.json"),
        ],
        env={**os.environ, "NODE_PATH": str(TFJS)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads((tmp_path / "out.json").read_text())
    return np.asarray(out["data"], np.float32).reshape(out["shape"])


def torch_probs(manifest: Path, x_nhwc: np.ndarray) -> np.ndarray:
    import torch

    from ferkit.models import create_model
    from ferkit.models.faceapi import load_faceapi_weights

    net = create_model("faceapi_expression", in_chans=3).eval()
    load_faceapi_weights(net, read_tfjs_weights(manifest))
    with torch.no_grad():
        return torch.softmax(net(torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)), 1).numpy()


@needs_tfjs
def test_rebuild_matches_tensorflow_js_on_random_weights(tmp_path):
    manifest = random_faceapi(tmp_path / "model")
    x = np.random.default_rng(1).random((3, 112, 112, 3), dtype=np.float32) - 0.45
    assert np.abs(torch_probs(manifest, x) - tfjs_reference(manifest, x, tmp_path)).max() < 1e-4


@needs_tfjs
@pytest.mark.skipif(not FACEAPI_TGZ.is_file(), reason=f"needs {FACEAPI_TGZ} (tools/fetch_npm_weights.sh)")
def test_rebuild_matches_tensorflow_js_on_face_api_weights(tmp_path):
    import tarfile

    with tarfile.open(FACEAPI_TGZ) as tar:
        tar.extractall(
            tmp_path, members=[m for m in tar.getmembers() if "face_expression" in m.name], filter="data"
        )
    manifest = tmp_path / "package" / "model" / "face_expression_model-weights_manifest.json"
    x = np.random.default_rng(2).random((2, 112, 112, 3), dtype=np.float32) - 0.45
    assert np.abs(torch_probs(manifest, x) - tfjs_reference(manifest, x, tmp_path)).max() < 1e-4


def test_import_gives_a_model_ferkit_runs(tmp_path):
    from ferkit.importers.faceapi import import_faceapi_expression
    from ferkit.runtime.classifier import load_model

    random_faceapi(tmp_path / "pkg" / "model")
    report = import_faceapi_expression(tmp_path / "pkg", tmp_path / "fa.onnx", state_dict=tmp_path / "fa.pt")
    assert report.max_abs_diff < 1e-4 and report.source["package"] == "test-faceapi"
    card = json.loads((tmp_path / "fa.json").read_text())
    assert card["input_size"] == 112 and card["color"] == "rgb" and card["source"]["sha256"]
    assert card["labels"] == ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]
    model = load_model(tmp_path / "fa.onnx")
    probs = model.predict_proba(np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8))
    assert probs.shape == (4, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)
    import torch

    from ferkit.models import create_model
    from ferkit.train.finetune import load_init_weights

    saved = torch.load(tmp_path / "fa.pt", weights_only=True)
    bias = read_tfjs_weights(tmp_path / "pkg" / "model" / "face_expression_model-weights_manifest.json")[
        "fc/bias"
    ]
    faceapi_order = ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]
    fer2013_order = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    expected = bias[[faceapi_order.index(n) for n in fer2013_order]]
    assert np.allclose(saved["fc.bias"].numpy(), expected)  # the head in FER-2013's order
    grey = create_model("faceapi_expression")  # 1 channel: the RGB filters are summed
    init = load_init_weights(grey, str(tmp_path / "fa.pt"))
    assert "blocks.0.conv0.conv.weight" in init.adapted and not init.missing
    with pytest.raises(DataError, match="no face_expression_model-weights_manifest.json"):
        import_faceapi_expression(tmp_path, tmp_path / "x.onnx")
