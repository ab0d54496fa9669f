"""The shipped int8 models give the same answers on every CPU.

ONNX Runtime fuses a QDQ graph into u8s8 integer kernels; without VNNI (AVX2, AVX-512
without VNNI) those sum pairs of products in int16 and saturate on large weights, so one
file answered differently on different CPUs. These tests hold on any CPU: no shipped weight
can saturate (a property of the file), and the optimised session agrees with the reference
numerics (no graph fusion: dequantise, float operator, quantise) on the machine running them.
"""

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ferkit.card import ModelCard
from ferkit.data import load_dataset
from ferkit.export import SAFE_WEIGHT_MAX, saturating_weights, saturation_safe_weights
from ferkit.runtime.catalog import WEIGHTS_DIR
from ferkit.runtime.classifier import OnnxClassifier, _widen_int4

ONNX_FILES = sorted(
    p.relative_to(WEIGHTS_DIR).as_posix() for p in WEIGHTS_DIR.rglob("*.onnx") if "detectors" not in p.parts
)
# files that take pixels (a head model takes its backbones' features; its backbones are here)
PIXEL_MODELS = [name for name in ONNX_FILES if ModelCard.read(WEIGHTS_DIR / name).kind != "head"]


@pytest.fixture(scope="module")
def faces(shared):
    """PrivateTest faces and labels from ../shared when present, else generated smooth faces."""
    data = shared / "fer2013.tar.gz"
    if data.exists():
        test = load_dataset(data).pick("test")
        return test.images, test.labels
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (600, 48, 48)).astype(np.float32)
    images = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in noise])
    images = (images - images.min()) / (np.ptp(images) + 1e-6) * 255
    return images.astype(np.uint8), None


def _reference(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    model = _widen_int4(onnx.load(str(path))).SerializeToString()
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ONNX_FILES)
def test_no_shipped_weight_can_saturate(name):
    assert saturating_weights(onnx.load(str(WEIGHTS_DIR / name))) == []


@pytest.mark.parametrize("name", PIXEL_MODELS)
def test_optimised_session_agrees_with_reference_numerics(name, faces):
    images, labels = faces
    clf = OnnxClassifier(WEIGHTS_DIR / name, threads=2)
    if clf.card.get("label_set") == "ferplus":
        labels = None  # scored on FER+ labels elsewhere; agreement is what this test is about
    optimised = clf.predict_proba(images, batch_size=64).argmax(1)
    x = clf.prepare(images)
    reference = _reference(clf.path)
    ref_probs = np.concatenate(
        [reference.run(None, {clf.input_name: x[i : i + 256]})[0] for i in range(0, len(x), 256)]
    )
    ref = ref_probs.argmax(1)
    if faces[1] is None:
        # generated faces are ambiguous: near-ties flip on any rounding, so only answers the
        # reference gives with a margin count (saturation flipped 11% of real faces' answers)
        top2 = np.sort(ref_probs, axis=1)[:, -2:]
        decided = top2[:, 1] - top2[:, 0] > 0.05
        optimised, ref = optimised[decided], ref[decided]
        assert decided.sum() >= 100
    agreement = float(np.mean(optimised == ref))
    # 0.99, not 0.995: the fused kernels round requantisation slightly differently from the
    # float reference; on an AVX-512 VNNI CPU (no saturation there) that alone left accurate
    # at 0.9925 and half_kd_s1 at 0.9950 of PrivateTest; saturation on AVX2 left fast at 0.88-0.89
    assert agreement >= 0.99, f"{name}: {agreement:.4f} of answers agree with the reference numerics"
    if labels is not None:
        gap = abs(np.mean(optimised == labels) - np.mean(ref == labels)) * 100
        assert gap <= 0.2, f"{name}: accuracy differs by {gap:.2f} pt from the reference numerics"


def test_saturation_safe_weights_keeps_the_function(tmp_path):
    """A weight pushed to the full int8 range (same float values) is flagged, then re-rounded
    to [-64, 63] with its bias, and the model's output stays where it was."""
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(WEIGHTS_DIR / "tiny.onnx"))
    assert saturating_weights(model) == []
    inits = {t.name: t for t in model.graph.initializer}
    widened = 0
    for node in model.graph.node:
        source = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if source is None or source.data_type != TensorProto.INT8:
            continue
        q = numpy_helper.to_array(source).astype(np.int16)
        scale = numpy_helper.to_array(inits[node.input[1]])
        source.CopyFrom(numpy_helper.from_array(np.clip(q * 2, -127, 127).astype(np.int8), source.name))
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(scale / 2, node.input[1]))
        widened += 1
    assert len(saturating_weights(model)) == widened > 0
    onnx.save(model, str(tmp_path / "wide.onnx"))
    assert saturation_safe_weights(model) == widened
    assert saturating_weights(model) == []
    for t in model.graph.initializer:
        if t.data_type == TensorProto.INT8:
            assert np.abs(numpy_helper.to_array(t).astype(np.int16)).max() <= SAFE_WEIGHT_MAX
    onnx.save(model, str(tmp_path / "safe.onnx"))
    x = np.random.default_rng(1).random((32, 1, 48, 48), dtype=np.float32)
    wide = _reference(tmp_path / "wide.onnx").run(None, {"pixels": x})[0]
    safe = _reference(tmp_path / "safe.onnx").run(None, {"pixels": x})[0]
    assert np.abs(wide - safe).max() < 0.1
    assert np.mean(wide.argmax(1) == safe.argmax(1)) >= 0.9


@pytest.mark.parametrize("name", ONNX_FILES)
def test_card_names_the_cpu_its_figures_come_from(name):
    card = OnnxClassifier(WEIGHTS_DIR / name).card
    assert card.get("metrics_cpu"), f"{name}: no metrics_cpu on the card"
