"""Classifier heads on shipped models' features (``ferkit adapt``, ``HeadClassifier``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from ferkit.data.folder import write_image_folder
from ferkit.errors import FerkitError, ModelError
from ferkit.runtime.catalog import WEIGHTS_DIR
from ferkit.runtime.classifier import HeadClassifier, OnnxClassifier, load_model, with_features_output
from ferkit.train.head import fit_head


def _two_class_folder(tmp_path, n=24):
    """Faces of two made-up classes that a good backbone tells apart: bright upper half
    ("up") against bright lower half ("down"), with noise; written as a labelled folder."""
    from ferkit.data import FaceDataset
    from ferkit.labels import LabelSet

    rng = np.random.default_rng(0)
    images, labels = [], []
    for k in range(2 * n):
        face = rng.normal(90, 25, (48, 48))
        half = slice(0, 24) if k % 2 == 0 else slice(24, 48)
        face[half] += 90
        images.append(np.clip(face, 0, 255).astype(np.uint8))
        labels.append(k % 2)
    splits = np.array(["Training"] * (2 * n - 8) + ["PrivateTest"] * 8)
    ds = FaceDataset(np.stack(images), np.array(labels), splits, LabelSet("custom", ("down", "up")), "made")
    return write_image_folder(ds, tmp_path / "faces")


def _value(model, tensor):
    """A tensor of an ONNX graph: an initializer, or the DequantizeLinear of initializers."""
    init = {t.name: t for t in model.graph.initializer}
    if tensor in init:
        return onnx.numpy_helper.to_array(init[tensor]).astype(np.float32)
    dq = {o: n for n in model.graph.node for o in n.output}[tensor]
    assert dq.op_type == "DequantizeLinear", dq.op_type
    q, scale = _value(model, dq.input[0]), _value(model, dq.input[1])
    zero = _value(model, dq.input[2]) if len(dq.input) > 2 and dq.input[2] else 0.0
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    shape = [1] * q.ndim
    if np.ndim(scale):
        shape[axis] = -1
    return (q - np.reshape(zero, shape)) * np.reshape(scale, shape)


def test_features_are_what_the_last_layer_reads():
    """The features output is the input of the last fully connected layer: applying that
    layer's weights to it gives the model's own probabilities."""
    clf = OnnxClassifier(WEIGHTS_DIR / "tiny.onnx")
    faces = np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    for name in ("fast", "ferplus"):
        backbone = OnnxClassifier(WEIGHTS_DIR / f"{name}.onnx", features=True)
        feats = backbone.features(faces)
        assert feats.shape == (5, 512)
        model = onnx.load(str(WEIGHTS_DIR / f"{name}.onnx"))
        gemm = [n for n in model.graph.node if n.op_type == "Gemm"][-1]
        logits = feats @ _value(model, gemm.input[1]).T + _value(model, gemm.input[2])
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        # the graph quantises the logits once more before its softmax: close, not equal
        np.testing.assert_allclose(probs, backbone.predict_proba(faces), atol=0.03)
    with pytest.raises(ModelError, match="opened without features=True"):
        clf.features(faces)


def test_a_model_without_a_final_dense_layer_is_refused(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Softmax", ["pixels"], ["probabilities"], axis=1)],
        "g",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 7])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 7])],
    )
    with pytest.raises(ModelError, match="no last fully connected layer"):
        with_features_output(helper.make_model(graph), "odd.onnx")


def test_fit_a_head_and_run_it_like_any_model(tmp_path):
    folder = _two_class_folder(tmp_path)
    out = tmp_path / "updown.onnx"
    report = fit_head(["fast"], folder, out, split="Training")
    assert report.labels == ["down", "up"] and report.feature_dim == 512 and report.n_train == 40
    assert set(report.cv_accuracy) == {0.01, 0.03, 0.1, 0.3, 1.0, 3.0}
    assert report.weight_decay == max(report.cv_accuracy, key=report.cv_accuracy.get)
    assert report.train_accuracy >= 0.9

    card = json.loads(out.with_suffix(".json").read_text())
    assert card["kind"] == "head" and card["members"] == ["fast"] and card["labels"] == ["down", "up"]
    assert card["recipe"]["data"] == "faces" and "fitted on faces" in card["license"]

    clf = load_model(str(out))
    assert isinstance(clf, HeadClassifier) and clf.labels == ("down", "up") and clf.input_size == 48
    from ferkit.data import load_dataset

    test = load_dataset(folder, labels="custom").pick("PrivateTest")
    probs = clf.predict_proba(test.images)
    assert probs.shape == (8, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == test.labels).mean() >= 0.75  # unseen faces of the two classes

    # the head is the standardised logistic regression it was fitted as
    feats = clf.features(test.images)
    head = onnx.load(str(out))
    init = {t.name: onnx.numpy_helper.to_array(t) for t in head.graph.initializer}
    z = feats @ init["head.weight"].T + init["head.bias"]
    np.testing.assert_allclose(probs, np.exp(z) / np.exp(z).sum(1, keepdims=True), atol=1e-5)

    # through evaluation and recognition like a single model
    from ferkit.evaluate.run import evaluate_models
    from ferkit.runtime.recognize import Recognizer

    result = evaluate_models([str(out)], folder, split="PrivateTest", tta="flip", variant="fer2013")
    assert result.entries[0].report.n == 8
    face = Recognizer(str(out), detector="none").recognize(test.images[0])[0]
    assert face.label in ("down", "up")


def test_fixed_weight_decay_and_bad_inputs(tmp_path):
    folder = _two_class_folder(tmp_path, n=12)
    report = fit_head(["fast"], folder, tmp_path / "h.onnx", split="Training", weight_decay=0.1)
    assert report.weight_decay == 0.1 and report.cv_accuracy == {}
    with pytest.raises(FerkitError, match="not an ensemble card"):
        fit_head(["ensemble"], folder, tmp_path / "x.onnx", split="Training")
    with pytest.raises(ModelError, match="no last fully connected layer"):
        fit_head(["tiny"], folder, tmp_path / "x.onnx", split="Training")
    with pytest.raises(FerkitError, match="0 or more"):
        fit_head(["fast"], folder, tmp_path / "x.onnx", weight_decay=-1)
    with pytest.raises(FerkitError, match="at least one backbone"):
        fit_head([], folder, tmp_path / "x.onnx")
    few = _two_class_folder(tmp_path / "few", n=6)  # 4 training faces
    with pytest.raises(FerkitError, match="4 training faces in 2 classes: too few"):
        fit_head(["fast"], few, tmp_path / "x.onnx", split="Training")


def _clips_folder(tmp_path, clips=16, frames=8):
    """Frames of made-up clips whose label is drawn at random per clip: nothing carries from
    one clip to another, but a clip's frames are near copies of each other. Files are named
    ``clip<k>_<frame>.png``, as film frames are."""
    import cv2

    rng = np.random.default_rng(3)
    labels = rng.permutation(np.arange(clips) % 2)
    for k in range(clips):
        base = cv2.GaussianBlur(rng.normal(128, 60, (48, 48)), (0, 0), 2.0)
        for f in range(frames):
            face = np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
            folder = tmp_path / "clips" / "Training" / ("down", "up")[labels[k]]
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"clip{k:02d}_{f}.png"), face)
    return tmp_path / "clips"


def test_folds_by_file_name_group_keep_a_clip_together(tmp_path):
    """With a clip's frames on both sides of a fold, cross-validation reads a made-up task as
    learnt (the held-out frame's copies were fitted); folds by clip (``groups``) see chance."""
    from ferkit.data import load_dataset
    from ferkit.train.head import group_folds

    folder = _clips_folder(tmp_path)
    train = load_dataset(folder, labels="custom").pick("Training")
    assert train.names is not None and len(train.names) == 128
    assert all(n.startswith("Training/") and n.endswith(".png") for n in train.names)
    folds, n_groups = group_folds(train.names, r"^(clip\d+)_", "clips")
    assert n_groups == 16 and sorted(np.bincount(folds).tolist()) == [24, 24, 24, 24, 32]
    clip = np.array([n.rsplit("/", 1)[-1][:6] for n in train.names])
    assert all(len(set(folds[clip == c])) == 1 for c in set(clip))  # a clip sits in one fold

    at_random = fit_head(["fast"], folder, tmp_path / "r.onnx", split="Training", labels="custom")
    by_clip = fit_head(
        ["fast"], folder, tmp_path / "g.onnx", split="Training", labels="custom", groups=r"^(clip\d+)_"
    )
    assert at_random.folds == "random" and "16 groups" in by_clip.folds
    assert max(at_random.cv_accuracy.values()) >= 0.85
    assert max(by_clip.cv_accuracy.values()) <= max(at_random.cv_accuracy.values()) - 0.3
    card = json.loads((tmp_path / "g.json").read_text())
    assert "16 groups" in card["recipe"]["cv_folds"]


def test_group_folds_errors_name_the_problem(tmp_path):
    from ferkit.data import load_dataset
    from ferkit.data.fer2013 import write_fer2013_csv

    folder = _clips_folder(tmp_path, clips=6, frames=2)
    with pytest.raises(FerkitError, match=r"clip00_0.png: --groups '\^take' matches nothing"):
        fit_head(["fast"], folder, tmp_path / "x.onnx", split="Training", labels="custom", groups="^take")
    with pytest.raises(FerkitError, match="gives 2 group"):  # by frame number: 0 and 1
        fit_head(["fast"], folder, tmp_path / "x.onnx", split="Training", labels="custom", groups=r"_(\d)\.")
    with pytest.raises(FerkitError, match="not a regular expression"):
        fit_head(["fast"], folder, tmp_path / "x.onnx", split="Training", labels="custom", groups="(")
    from conftest import make_dataset

    csv = tmp_path / "fer.csv"
    write_fer2013_csv(make_dataset(n_per_class=4), csv)
    assert load_dataset(csv).names is None
    with pytest.raises(FerkitError, match="needs the images' file names"):
        fit_head(["fast"], csv, tmp_path / "x.onnx", groups="x")
    # the names survive the cache of decoded arrays, and a split keeps its own
    first, again = load_dataset(folder, labels="custom"), load_dataset(folder, labels="custom")
    assert list(again.names) == list(first.names) and len(first.names) == 12
    assert list(again.pick("Training").names) == list(first.names)  # one split here


def test_cli_adapt(tmp_path):
    folder = _two_class_folder(tmp_path, n=12)
    out = tmp_path / "cli.onnx"
    cmd = [sys.executable, "-m", "ferkit", "adapt", "fast", "--data", str(folder), "--split", "Training"]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "2 classes on 512 features of fast" in done.stdout and "5-fold CV" in done.stdout
    assert out.is_file() and out.with_suffix(".json").is_file()
    bad = subprocess.run([*cmd, "--out", str(tmp_path / "x.pt")], capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "ends in .onnx" in bad.stderr


def test_predict_with_the_shipped_wild_model(tmp_path):
    from pathlib import Path

    photos = Path(__file__).resolve().parents[1] / "examples" / "photos"
    out = tmp_path / "wild.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "ferkit", "predict", str(photos), "--model", "wild", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 7  # the sample photos' faces, as with the default model
    happy = [r for r in records if "eileen_collins" in r["file"]]
    assert happy and happy[0]["label"] == "happy"
