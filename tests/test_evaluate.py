import json

import numpy as np
import pytest

from conftest import make_dataset
from ferkit.errors import FerkitError, LabelMismatchError, ModelError
from ferkit.evaluate.align import align_probs
from ferkit.evaluate.ensemble import combine, cv_log_loss, fit_weights, log_loss, select_members
from ferkit.evaluate.metrics import bootstrap_accuracy_ci, expected_calibration_error
from ferkit.evaluate.run import evaluate_models, write_report
from ferkit.labels import FER2013, FER2013_NO_DISGUST, FERPLUS, RAFDB
from ferkit.runtime.classifier import load_model
from ferkit.runtime.tta import predict_tta, tta_views


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained run and its ONNX export (shared by the tests here)."""
    from ferkit.export import export_onnx
    from ferkit.train import fit
    from test_train import learnable, quick_cfg

    root = tmp_path_factory.mktemp("evalrun")
    data = learnable(n_per_class=30)
    result = fit(quick_cfg(root, epochs=2), dataset=data)
    report = export_onnx(result.run_dir, root / "model.onnx")
    return data, result.run_dir, root / "model.onnx", report


def test_export_carries_card_and_matches_torch(trained):
    _, _, onnx_path, report = trained
    assert report.max_abs_diff < 1e-4
    clf = load_model(onnx_path)
    assert clf.labels == FER2013.names and clf.input_size == 48
    card = clf.card.to_dict()
    for key in ("architecture", "normalization", "recipe", "epochs", "hardware", "parameters", "macs"):
        assert key in card, key
    assert card["architecture"] == "mini_xception" and int(card["parameters"]) > 10_000


def test_onnx_and_torch_evaluation_agree(trained):
    data, run_dir, onnx_path, _ = trained
    result = evaluate_models([str(run_dir), str(onnx_path)], data, split="PrivateTest")
    torch_entry, onnx_entry, ensemble = result.entries
    assert torch_entry.report.accuracy == pytest.approx(onnx_entry.report.accuracy, abs=1 / 84)
    assert torch_entry.report.confusion == onnx_entry.report.confusion
    # An ensemble of (numerically) the same model is that model.
    assert ensemble.report.confusion == onnx_entry.report.confusion


def test_ensemble_of_identical_members_equals_member():
    p = np.random.default_rng(0).dirichlet(np.ones(7), size=50)
    assert np.allclose(combine([p, p, p]), p)
    w = fit_weights([p, p], np.zeros(50, int))
    assert np.allclose(combine([p, p], w), p)


def test_fitted_weights_prefer_the_better_member():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 400)
    good = np.eye(3)[labels] * 0.7 + 0.1
    noise = rng.dirichlet(np.ones(3), size=400)
    w = fit_weights([good, noise], labels)
    assert w[0] > 0.8


def test_selection_keeps_complementary_members_and_drops_noise():
    """Two members each sure on half the faces, one that guesses, and a copy of the first."""
    rng = np.random.default_rng(2)
    n, k = 2000, 7
    labels = rng.integers(0, k, n)
    sure = np.full((n, k), 0.02)
    sure[np.arange(n), labels] = 0.88
    vague = np.full((n, k), 1 / k)
    even = (np.arange(n) % 2 == 0)[:, None]
    a, b = np.where(even, sure, vague), np.where(even, vague, sure)
    noise = rng.dirichlet(np.ones(k), size=n)
    chosen, trace = select_members([noise, a, b, a.copy()], labels)
    assert sorted(chosen) == [1, 2] or sorted(chosen) == [2, 3]  # a (or its copy) and b, once
    assert [len(step) for step, _ in trace] == [1, 2]
    assert trace[1][1] < trace[0][1] - 0.1  # the pair is much better than either alone
    # In-sample, adding the noise member can only lower the fitted log-loss (a weight may be 0);
    # held out it does not help: that is why selection is cross-validated.
    pair, triple = [a, b], [a, b, noise]
    in_pair = log_loss(combine(pair, fit_weights(pair, labels)), labels)
    in_triple = log_loss(combine(triple, fit_weights(triple, labels)), labels)
    assert in_triple <= in_pair + 1e-9
    assert cv_log_loss(triple, labels) >= cv_log_loss(pair, labels) - 1e-4
    with pytest.raises(ValueError):
        select_members([a], labels)


def test_flip_tta_on_symmetric_input_is_a_noop(trained):
    _, _, onnx_path, _ = trained
    clf = load_model(onnx_path)
    half = np.random.default_rng(0).integers(0, 256, (6, 48, 24), dtype=np.uint8)
    faces = np.concatenate([half, half[:, :, ::-1]], axis=2)  # mirror-symmetric
    assert np.allclose(predict_tta(clf, faces, "flip"), clf.predict_proba(faces), atol=1e-6)
    assert len(tta_views(faces, "tencrop")) == 10
    assert predict_tta(clf, faces, "tencrop").shape == (6, 7)


def test_calibration_and_bootstrap():
    labels = np.array([0, 1, 0, 1])
    confident_right = np.eye(2)[labels] * 0.98 + 0.01
    ece, bins = expected_calibration_error(labels, confident_right)
    assert ece == pytest.approx(0.01, abs=1e-6) and bins[-1]["count"] == 4
    lo, hi = bootstrap_accuracy_ci(np.zeros(1000, int), (np.arange(1000) % 4 != 0).astype(int))
    assert lo < 0.25 < hi and hi - lo < 0.08


def test_label_variants_and_mismatch():
    probs = np.array([[0.1, 0.5, 0.1, 0.1, 0.1, 0.05, 0.05]])
    merged = align_probs(probs, FER2013.names, FER2013_NO_DISGUST, "merge-disgust")
    assert merged[0, FER2013_NO_DISGUST.index("angry")] == pytest.approx(0.6)
    dropped = align_probs(probs, FER2013.names, FER2013_NO_DISGUST, "no-disgust")
    assert dropped.sum() == pytest.approx(1) and dropped[0, 0] == pytest.approx(0.2)
    reordered = align_probs(probs, FER2013.names, RAFDB)
    assert reordered[0, RAFDB.index("disgust")] == pytest.approx(0.5)
    with pytest.raises(LabelMismatchError, match="predicts 'contempt'"):
        align_probs(np.ones((1, 8)) / 8, FERPLUS.names, FER2013)
    with pytest.raises(LabelMismatchError, match=r"cannot predict \['disgust'\]"):
        align_probs(np.ones((1, 6)) / 6, FER2013_NO_DISGUST.names, FER2013)


def test_ignored_model_classes_are_dropped_and_renormalised():
    probs = np.array([[0.1, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2]])  # FER+ order, contempt last
    with pytest.raises(LabelMismatchError, match="--ignore contempt drops it"):
        align_probs(probs, FERPLUS.names, FER2013)
    out = align_probs(probs, FERPLUS.names, FER2013, ignore=["contempt"])
    assert out.sum() == pytest.approx(1)
    assert out[0, FER2013.index("happy")] == pytest.approx(0.2 / 0.8)
    with pytest.raises(LabelMismatchError, match="no class"):
        align_probs(probs, FERPLUS.names, FER2013, ignore=["boredom"])


def test_bad_model_paths(tmp_path):
    with pytest.raises(ModelError, match="not a model"):
        load_model("no_such_model_name")
    with pytest.raises(ModelError, match="model file not found"):
        load_model(tmp_path / "x.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_model(bad)
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    with pytest.raises(FerkitError, match="no best.pt or last.pt"):
        load_model(empty_run)


def test_report_files_and_cli(trained, tmp_path):
    from typer.testing import CliRunner

    from ferkit.cli import app
    from ferkit.data import write_fer2013_csv

    data, run_dir, onnx_path, _ = trained
    result = evaluate_models([str(onnx_path)], data, tta="flip", variant="merge-disgust")
    written = {p.name for p in write_report(result, tmp_path / "out")}
    assert {"eval.json", "eval.md", "reliability.png"} <= written and any(
        n.startswith("confusion_") for n in written
    )
    md = (tmp_path / "out" / "eval.md").read_text()
    assert "| **angry** |" in md and "disgust" not in md.split("Confusion matrix")[1]
    csv_path = write_fer2013_csv(data, tmp_path / "d.csv")
    runner = CliRunner()
    res = runner.invoke(
        app, ["eval", str(onnx_path), "--data", str(csv_path), "--out", str(tmp_path / "cli")]
    )
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "cli" / "eval.json").read_text())
    assert saved["split"] == "PrivateTest" and saved["entries"][0]["report"]["n"] == 84
    res = runner.invoke(
        app, ["report", str(onnx_path), "--data", str(csv_path), "--out", str(tmp_path / "results")]
    )
    assert res.exit_code == 0, res.output
    table = (tmp_path / "results.md").read_text()
    assert "mini_xception" in table and "(published)" in table
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert [line.rstrip() for line in res.output.splitlines() if line.startswith("| ")] == [
        r.rstrip() for r in rows
    ]  # printed rows unbroken, however wide (piped output must stay pasteable markdown)


def test_ensemble_card_cli_fits_on_publictest_and_reports(trained, tmp_path):
    """``ferkit ensemble`` writes a card whose stated accuracy ``ferkit eval`` reproduces."""
    import shutil

    from typer.testing import CliRunner

    from ferkit.cli import app
    from ferkit.data import write_fer2013_csv

    data, run_dir, onnx_path, _ = trained
    csv_path = write_fer2013_csv(data, tmp_path / "d.csv")
    shutil.copy(onnx_path, tmp_path / "a.onnx")
    shutil.copy(onnx_path, tmp_path / "b.onnx")
    runner = CliRunner()
    args = ["ensemble", str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx"), "--data", str(csv_path)]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "ens.json")])
    assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "ens.json").read_text())
    assert card["kind"] == "ensemble" and card["members"] == ["a.onnx", "b.onnx"]  # beside the card
    assert card["member_weights"] == pytest.approx([0.5, 0.5], abs=1e-6)  # identical members
    assert set(card["metrics"]) == {"PrivateTest", "PrivateTest_tta_flip"}
    again = evaluate_models([str(tmp_path / "ens.json")], data, tta="flip").entries[0]
    assert again.report.accuracy == card["metrics"]["PrivateTest_tta_flip"]["accuracy"]
    single = evaluate_models([str(onnx_path)], data, tta="flip").entries[0]
    assert again.report.accuracy == pytest.approx(single.report.accuracy)
    # another dataset's splits, nothing fitted (members fine-tuned on the only other split)
    res = runner.invoke(
        app, [*args, "--equal", "--test-split", "PublicTest", "--out", str(tmp_path / "eq.json")]
    )
    assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "eq.json").read_text())
    assert card["member_weights"] == [0.5, 0.5] and card["recipe"]["weights"] == "equal weights"
    assert set(card["metrics"]) == {"PublicTest", "PublicTest_tta_flip"}
    res = runner.invoke(
        app, ["report", str(tmp_path / "ens.json"), "--data", str(csv_path), "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output
    row = (tmp_path / "r.md").read_text().splitlines()[2]
    assert "ensemble(mini_xception, mini_xception)" in row and "(members)" in row
    assert runner.invoke(app, [*args[:2], "--data", str(csv_path), "--out", "x.json"]).exit_code != 0
    # --select: a copy adds nothing held out, so no ensemble is written and the error says why
    res = runner.invoke(app, [*args, "--select", "--out", str(tmp_path / "sel.json")])
    assert res.exit_code != 0 and "alone" in str(res.exception) and not (tmp_path / "sel.json").exists()
    res = runner.invoke(app, [*args, "--select", "--equal", "--out", str(tmp_path / "sel.json")])
    assert res.exit_code != 0 and "not both" in str(res.exception)


def test_unsplit_errors(trained):
    data, _, onnx_path, _ = trained
    with pytest.raises(KeyError, match="no split"):
        evaluate_models([str(onnx_path)], data.pick("Training"), split="PrivateTest")


def test_int8_quantisation_keeps_card_and_accuracy(trained, tmp_path):
    from ferkit.export import quantize_int8

    data, _, onnx_path, _ = trained
    train, val = data.pick("train"), data.pick("val")
    q = quantize_int8(onnx_path, tmp_path / "m.int8.onnx", train.images[:128], val.images, val.labels)
    clf = load_model(q.path)
    assert clf.labels == load_model(onnx_path).labels
    assert clf.card.extra["quantization"].startswith("int8")
    assert abs(q.quantized_accuracy - q.fp32_accuracy) <= 0.1
    # the softmax stays in float: quantised probabilities came in steps of 1/255
    import onnx

    graph = onnx.load(str(q.path)).graph
    softmax = [n for n in graph.node if n.op_type == "Softmax"]
    assert softmax and not any(
        n.op_type == "QuantizeLinear" and n.input[0] in softmax[0].output for n in graph.node
    )
    p = clf.session.run(None, {clf.input_name: clf.prepare(val.images[:32])})[0]
    assert np.allclose(p.sum(1), 1, atol=1e-5)


def test_int4_stored_weights_run_as_the_int8_graph_they_encode(trained, tmp_path, monkeypatch):
    """``weight_bits=4``: the file holds int4 weights (half a byte each) and loads as an int8
    graph computing exactly ``q * scale``; card kept. What int4 costs in accuracy is measured
    on the real models (README), not on this two-epoch toy."""
    import onnx
    from onnx import numpy_helper

    import ferkit.export
    from ferkit.export import _int4_tensor, int4_weights, quantize_int8

    monkeypatch.setattr(ferkit.export, "INT4_MIN_SIZE", 1000)  # the toy's weights are small
    data, _, onnx_path, _ = trained
    train = data.pick("train")
    q8 = quantize_int8(onnx_path, tmp_path / "m.int8.onnx", train.images[:128], data.images, data.labels)
    q4 = quantize_int8(
        onnx_path, tmp_path / "m.int4.onnx", train.images[:128], data.images, data.labels, weight_bits=4
    )
    clf = load_model(q4.path)
    assert clf.labels == load_model(onnx_path).labels
    assert "int4 weights" in clf.card.extra["quantization"]
    graph = onnx.load(str(q4.path)).graph
    inits = {t.name: t for t in graph.initializer}
    weights = [
        n
        for n in graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and len(inits[n.input[0]].dims) > 1
    ]
    large = [n for n in weights if np.prod(inits[n.input[0]].dims) >= 1000]
    assert large and all(inits[n.input[0]].data_type == onnx.TensorProto.INT4 for n in large)
    assert all(
        len(inits[n.input[0]].raw_data) == (int(np.prod(inits[n.input[0]].dims)) + 1) // 2 for n in large
    )
    small = [n for n in weights if n not in large]  # below the size: int8, as before
    assert small and all(inits[n.input[0]].data_type == onnx.TensorProto.INT8 for n in small)
    assert q4.size_bytes < q8.size_bytes
    # biases stored as int32 at the int4 weights' scales, as the fused kernels add them
    assert not [
        n for n in graph.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 2 and n.input[2] in inits
    ]
    ref = clf.reference_proba(data.images)
    assert np.mean(ref.argmax(1) == clf.predict_proba(data.images).argmax(1)) >= 0.995
    # loaded: the same graph with the int4 values held as int8 (no int4 tensor reaches ONNX Runtime)
    values = {n.input[0]: numpy_helper.to_array(inits[n.input[0]]) for n in large}
    assert all(v.min() >= -7 and v.max() <= 7 for v in values.values())
    as_int8 = onnx.load(str(q4.path))
    for t in as_int8.graph.initializer:
        if t.data_type == onnx.TensorProto.INT4:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.int8), t.name))
    onnx.save(as_int8, str(tmp_path / "reference.onnx"))
    reference = load_model(tmp_path / "reference.onnx")
    assert np.array_equal(clf.predict_proba(data.images), reference.predict_proba(data.images))
    # --init reads int4 files too (fine-tuning a shipped model): every tensor, float32
    import torch

    from ferkit.models import create_model
    from ferkit.train.onnx_init import onnx_state_dict

    net = create_model("mini_xception", num_classes=7, in_chans=1)
    sd4, sd8 = onnx_state_dict(q4.path, net), onnx_state_dict(q8.path, net)
    assert sd4.keys() == sd8.keys()
    assert all(v.dtype == torch.float32 for k, v in sd4.items() if not k.endswith("num_batches_tracked"))
    assert all(sd4[k].shape == sd8[k].shape for k in sd8)

    w = np.random.default_rng(0).normal(size=(16, 32, 3, 3)).astype(np.float32)
    qv, scale = int4_weights(w)
    assert qv.dtype == np.int8 and qv.min() >= -7 and qv.max() <= 7 and scale.shape == (16,)
    full = scale.reshape(16, 1, 1, 1)
    inside = np.abs(w) <= 7 * full  # rounded to the nearest level; beyond the clip, the end level
    assert np.all(np.abs(qv * full - w)[inside] <= full.repeat(w[0].size).reshape(w.shape)[inside] / 2 + 1e-6)
    assert np.all(np.abs(qv[~inside]) == 7)
    plain = (np.abs(w).reshape(16, -1).max(axis=1) / 7).reshape(16, 1, 1, 1)  # no clipping
    err = ((qv * full - w) ** 2).reshape(16, -1).sum(axis=1)
    err_plain = ((np.rint(w / plain) * plain - w) ** 2).reshape(16, -1).sum(axis=1)
    assert np.all(err <= err_plain + 1e-6) and err.sum() < 0.95 * err_plain.sum()  # Gaussian: clipping pays
    assert (numpy_helper.to_array(_int4_tensor("t", qv)) == qv).all()  # nibbles in ONNX's order
    odd = qv.reshape(-1)[:7]
    assert (numpy_helper.to_array(_int4_tensor("t", odd)) == odd).all()


def test_export_quantised_needs_data_and_says_so_before_any_work(trained, tmp_path):
    from typer.testing import CliRunner

    from ferkit.cli import app

    _, run_dir, _, _ = trained
    out = tmp_path / "m.onnx"
    res = CliRunner().invoke(
        app, ["export", str(run_dir), "--out", str(out), "--int4"], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 2 and "--int8 / --int4 need --data" in res.output
    assert not out.exists()  # refused before the export


def test_report_without_matplotlib_skips_plots(trained, tmp_path, monkeypatch, capsys):
    import importlib.util

    data, _, onnx_path, _ = trained
    result = evaluate_models([str(onnx_path)], data)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )
    written = {p.name for p in write_report(result, tmp_path)}
    assert written == {"eval.json", "eval.md"}
    assert "plots skipped: pip install matplotlib" in capsys.readouterr().err


def test_ensemble_members_are_named_so_the_card_still_finds_them(tmp_path):
    from ferkit.evaluate.ensemble_card import _member_name

    (tmp_path / "cards" / "m").mkdir(parents=True)
    inside, outside = tmp_path / "cards" / "m" / "a.onnx", tmp_path / "b.onnx"
    assert _member_name(str(inside), inside, tmp_path / "cards") == "m/a.onnx"  # moves with the folder
    assert _member_name(str(outside), outside, tmp_path / "cards") == str(outside.resolve())
    assert _member_name("fast", tmp_path / "fast.onnx", tmp_path) == "fast"  # shipped names stay names


def test_quantised_export_measures_its_own_card(trained, tmp_path):
    """``ferkit export --metrics E --int8`` runs E's evaluation again on the int8 file: its card
    (in the ONNX file and the JSON beside it) shows the int8 model's accuracy, not the fp32's."""
    import json

    from typer.testing import CliRunner

    from ferkit.card import ModelCard
    from ferkit.cli import app
    from ferkit.data.load import write_packed

    data, run_dir, _, _ = trained
    packed = write_packed(data, tmp_path / "faces.ferkit.xz")
    fp32_eval = evaluate_models([str(run_dir)], packed, split="PrivateTest", tta="flip")
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(json.dumps(fp32_eval.to_dict()))  # names the packed file as its data
    out = tmp_path / "m.onnx"
    res = CliRunner().invoke(
        app,
        [
            "export",
            str(run_dir),
            "--out",
            str(out),
            "--metrics",
            str(eval_json),
            "--int8",
            "--data",
            str(packed),
        ],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    int8 = out.with_suffix(".int8.onnx")
    expected = evaluate_models([str(int8)], packed, split="PrivateTest", tta="flip").entries[0].report
    for card in (ModelCard.read(int8), ModelCard.read_json(int8.with_suffix(".json"))):
        assert set(card.metrics) == {"PrivateTest_tta_flip"}
        assert card.metrics["PrivateTest_tta_flip"]["accuracy"] == pytest.approx(expected.accuracy)
        assert card.metrics["PrivateTest_tta_flip"]["n"] == expected.n
        assert "int8" in card.extra["quantization"]
    fp32 = ModelCard.read(out)
    assert fp32.metrics["PrivateTest_tta_flip"]["accuracy"] == pytest.approx(
        fp32_eval.entries[0].report.accuracy
    )


def _photo_folder(root):
    """A Val split of real photos (the shipped samples) in label folders, and one blank photo."""
    import shutil
    from pathlib import Path

    import cv2

    photos = Path(__file__).resolve().parents[1] / "examples" / "photos"
    for label, name in (
        ("happy", "eileen_collins.jpg"),
        ("neutral", "grace_hopper.jpg"),
        ("sad", "cameraman.jpg"),
    ):
        (root / "Val" / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(photos / name, root / "Val" / label / name)
    (root / "Val" / "angry").mkdir()
    cv2.imwrite(str(root / "Val" / "angry" / "blank.png"), np.full((200, 200, 3), 128, np.uint8))
    return root


def test_evaluation_through_detection_counts_missed_faces(tmp_path):
    """--detect: each photo goes through the detector and framing; the blank one has no face
    and counts as wrong in a 'no face' column, outside the macro-F1 and the calibration."""
    data = _photo_folder(tmp_path / "photos")
    result = evaluate_models(["fast"], data, split="Val", tta="flip", detector="auto", align="eyes")
    e = result.entries[0]
    assert result.labels[-1] == "no face" and result.detector == "auto" and result.align == "eyes"
    assert e.faces_found == 3 and e.report.n == 4
    assert e.report.confusion[result.labels.index("angry")][-1] == 1  # the blank photo: no face
    assert e.report.per_class["angry"].recall == 0.0
    real = [m.f1 for n, m in e.report.per_class.items() if n != "no face"]
    assert e.report.macro_f1 == pytest.approx(np.mean(real))
    assert sum(b["count"] for b in e.reliability) == 3  # calibration over the faces found

    # the same faces, recognised one photo at a time, give the same answers
    from ferkit.runtime.recognize import Recognizer

    rec = Recognizer("fast", align="eyes", tta="flip")
    cm = np.array(e.report.confusion)
    for label in ("happy", "neutral", "sad"):
        (photo,) = (data / "Val" / label).iterdir()
        face = rec.recognize(str(photo))[0]
        assert cm[result.labels.index(label), result.labels.index(face.label)] == 1

    md = (write_report(result, tmp_path / "out", plots=False), (tmp_path / "out" / "eval.md").read_text())[1]
    assert "a face was found in 3 of 4 photos" in md and "alignment `eyes`" in md

    with pytest.raises(FerkitError, match="needs a folder"):
        evaluate_models(["fast"], learnable_dataset(), split="Val", detector="auto")
    with pytest.raises(FerkitError, match="unknown alignment 'tilt'"):
        evaluate_models(["fast"], data, split="Val", detector="auto", align="tilt")


def learnable_dataset():
    from test_train import learnable

    return learnable(n_per_class=2)


def test_align_is_one_option_everywhere(tmp_path):
    """predict, video, serve and eval take --align none|level|eyes and refuse anything else
    before doing any work."""
    import subprocess
    import sys
    from pathlib import Path

    photos = Path(__file__).resolve().parents[1] / "examples" / "photos"
    for cmd in (
        ["predict", str(photos), "--align", "eye"],
        ["video", str(photos / "collage.jpg"), "--align", "eye"],
        ["serve", "--port", "0", "--align", "eye"],
        ["eval", "fast", "--data", str(photos), "--detect", "auto", "--align", "eye"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "ferkit", *cmd], capture_output=True, text=True, timeout=300
        )
        assert done.returncode != 0, cmd
        assert "unknown alignment 'eye'; did you mean 'eyes'" in done.stderr, (cmd, done.stderr)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ferkit",
            "predict",
            str(photos / "eileen_collins.jpg"),
            "--align",
            "eyes",
            "--json",
            str(tmp_path / "f.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "f.jsonl").read_text().splitlines()[0])["label"] == "happy"


class _Seen:
    """A model that records the faces it is given; ``spec`` is ``<color><size>``."""

    def __init__(self, spec: str):
        from types import SimpleNamespace

        self.name, self.labels = spec, FER2013.names
        color = "rgb" if spec.startswith("rgb") else "gray"
        self.input_size = int(spec.removeprefix(color))
        self.card = SimpleNamespace(color=color, to_dict=dict)
        self.seen: list[np.ndarray] = []

    def predict_proba(self, faces, batch_size=256):
        self.seen.append(np.asarray(faces))
        return np.full((len(faces), len(self.labels)), 1 / len(self.labels), np.float32)


def test_each_model_reads_photos_at_its_own_size_and_colour(tmp_path, monkeypatch):
    """As the runtime frames a photo for each model: a 112 px RGB network (face-api's) reads
    a folder's files at 112 px in colour, not the 48 px grey faces enlarged; a 48 px grey
    model reads those; FER-2013's 48 px rows are framed up as training frames them."""
    import ferkit.evaluate.run as run
    from ferkit.data import FaceDataset, load_dataset, write_fer2013_csv, write_image_folder
    from ferkit.framing import frame_face

    rng = np.random.default_rng(0)
    n = 2 * len(FER2013)
    photos = FaceDataset(
        rng.integers(0, 256, (n, 96, 96, 3), np.uint8),
        np.arange(n, dtype=np.int64) % len(FER2013),
        np.asarray(["PrivateTest"] * n),
        FER2013,
    )
    folder = write_image_folder(photos, tmp_path / "photos")
    models: dict[str, _Seen] = {}
    monkeypatch.setattr(run, "load_model", lambda spec: models.setdefault(spec, _Seen(spec)))
    run.evaluate_models(["rgb112", "gray48"], folder, split="PrivateTest")
    as_read = {
        key: load_dataset(folder, size=s, color=c).pick("PrivateTest")
        for key, s, c in (("rgb112", 112, "rgb"), ("gray48", 48, "gray"))
    }
    for key, model in models.items():
        np.testing.assert_array_equal(np.concatenate(model.seen), as_read[key].images)

    models.clear()
    fer = write_fer2013_csv(make_dataset(), tmp_path / "fer.csv")
    run.evaluate_models(["gray112"], fer, split="PrivateTest")
    test = load_dataset(fer).pick("PrivateTest")
    np.testing.assert_array_equal(
        np.concatenate(models["gray112"].seen), np.stack([frame_face(f, None, 112) for f in test.images])
    )


def _channel_model(path, size: int, color: str, weights: np.ndarray):
    """A ferkit ONNX model whose class scores are its input's mean colour times ``weights``."""
    from onnx import TensorProto, helper, numpy_helper

    from ferkit.card import ModelCard, save_onnx

    channels = weights.shape[0]
    nodes = [
        helper.make_node("ReduceMean", ["pixels", "axes"], ["mean"], keepdims=0),
        helper.make_node("MatMul", ["mean", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "channels",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", channels, size, size])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 7])],
        [numpy_helper.from_array(np.array([2, 3], np.int64), "axes"), numpy_helper.from_array(weights, "w")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 9
    save_onnx(proto, ModelCard(labels=FER2013.names, input_size=size, color=color), path)
    return path


def test_an_ensemble_with_a_colour_member_crops_in_colour_at_its_largest_size(tmp_path):
    """ferkit ensemble: a 112 px RGB member makes the card 112 px RGB, so the runtime crops
    faces in colour and the 48 px grey member greys and shrinks its own copy."""
    from ferkit.data import FaceDataset, write_image_folder
    from ferkit.evaluate.ensemble_card import build_ensemble_card
    from ferkit.runtime.recognize import Recognizer

    rng = np.random.default_rng(1)
    rgb = _channel_model(tmp_path / "rgb.onnx", 112, "rgb", rng.normal(0, 5, (3, 7)).astype(np.float32))
    grey = _channel_model(tmp_path / "grey.onnx", 48, "gray", rng.normal(0, 5, (1, 7)).astype(np.float32))
    n = 4 * len(FER2013)
    photos = FaceDataset(
        rng.integers(0, 256, (n, 96, 96, 3), np.uint8),
        np.arange(n, dtype=np.int64) % len(FER2013),
        np.asarray(["PublicTest", "PrivateTest"] * (n // 2)),
        FER2013,
    )
    folder = write_image_folder(photos, tmp_path / "photos")
    card = build_ensemble_card([str(rgb), str(grey)], folder, tmp_path / "both.json")
    assert (card.input_size, card.color) == (112, "rgb")
    assert "PrivateTest" in card.metrics
    face = rng.integers(0, 256, (120, 100, 3), np.uint8)
    got = Recognizer(str(tmp_path / "both.json"), detector="none", tta="none").recognize(face)[0]
    single = [Recognizer(str(p), detector="none", tta="none").recognize(face)[0] for p in (rgb, grey)]
    w = card.member_weights
    expected = [w[0] * single[0].probs[k] + w[1] * single[1].probs[k] for k in FER2013.names]
    np.testing.assert_allclose([got.probs[k] for k in FER2013.names], expected, atol=2e-3)
