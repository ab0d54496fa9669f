"""Every model that ships in ferkit/weights has a complete card, and its numbers reproduce."""

import json

import pytest

from ferkit.card import is_ensemble_card
from ferkit.errors import ModelError
from ferkit.evaluate.run import evaluate_models
from ferkit.runtime.catalog import WEIGHTS_DIR, default_model_name, resolve_model, shipped_models
from ferkit.runtime.classifier import EnsembleClassifier, OnnxClassifier

SHIPPED = shipped_models()
REQUIRED = (
    "labels",
    "input_size",
    "color",
    "normalization",
    "architecture",
    "recipe",
    "epochs",
    "train_seconds",
    "hardware",
    "parameters",
    "macs",
    "metrics",
)


def test_something_ships_and_default_resolves():
    assert SHIPPED, "no model ships in ferkit/weights"
    assert resolve_model("default").stem == default_model_name()


def test_weights_fit_the_size_budget():
    """Everything under ferkit/weights (classifiers, ensemble members, detector) <= 20 MB."""
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.rglob("*") if p.is_file())
    assert total <= 20e6, f"{total / 1e6:.1f} MB"


@pytest.mark.parametrize("name", SHIPPED)
def test_card_is_complete_in_onnx_and_json(name):
    json_card = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    if is_ensemble_card(WEIGHTS_DIR / f"{name}.json"):  # a card only; its members are shipped files
        ensemble = EnsembleClassifier(WEIGHTS_DIR / f"{name}.json")
        onnx_card = ensemble.card.to_dict()
        # each member a shipped name, or an .onnx file in the package with a complete card
        for member, clf in zip(json_card["members"], ensemble.members, strict=True):
            assert member in SHIPPED or clf.path.parent.is_relative_to(WEIGHTS_DIR), member
            member_card = clf.card.to_dict()
            assert all(key in member_card for key in REQUIRED), member
            assert "PrivateTest" in member_card["metrics"], f"{member}: no measured accuracy on its card"
            assert member_card["license"] == json_card["license"]
        assert abs(sum(json_card["member_weights"]) - 1) < 1e-4
    else:
        onnx_card = OnnxClassifier(WEIGHTS_DIR / f"{name}.onnx").card.to_dict()
    # a head is fitted in one go (no epochs); its backbones are shipped models with full cards
    required = [k for k in REQUIRED if k != "epochs"] if json_card.get("kind") == "head" else REQUIRED
    if json_card.get("kind") == "head":
        assert all(member in SHIPPED for member in json_card["members"]), json_card["members"]
    for key in required:
        assert key in onnx_card and key in json_card, key
    assert json_card["labels"] == onnx_card["labels"]
    assert "MIT" in json_card["license"] and onnx_card["license"] == json_card["license"]
    metrics = json_card["metrics"]["PrivateTest"]
    assert {"accuracy", "macro_f1", "ece", "per_class_f1"} <= set(metrics)
    assert "PrivateTest_tta_flip" in json_card["metrics"]


@pytest.mark.shared_data
@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("tta", ["none", "flip"])
def test_stated_accuracy_reproduces(name, tta, shared):
    card = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    key = "PrivateTest" if tta == "none" else f"PrivateTest_tta_{tta}"
    # FER+ models are scored on the FER+ majority labels of the same PrivateTest faces.
    data = shared / ("fer2013new.csv" if card.get("label_set") == "ferplus" else "fer2013.tar.gz")
    result = evaluate_models([name], data, split="PrivateTest", tta=tta)
    assert result.entries[0].report.accuracy == pytest.approx(card["metrics"][key]["accuracy"], abs=0.001)


WITH_SFEW = [
    n for n in SHIPPED if "SFEW_Val" in json.loads((WEIGHTS_DIR / f"{n}.json").read_text())["metrics"]
]


@pytest.mark.shared_data
@pytest.mark.parametrize("name", WITH_SFEW)
@pytest.mark.parametrize("tta", ["none", "flip"])
def test_stated_sfew_accuracy_reproduces(name, tta, shared):
    """Cards that state an SFEW 2.0 Val figure (the wild model's) reproduce it."""
    sfew = shared.parent / "sfew"
    if not sfew.is_dir():
        pytest.skip(f"no SFEW 2.0 at {sfew}")
    card = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    key = "SFEW_Val" if tta == "none" else f"SFEW_Val_tta_{tta}"
    result = evaluate_models([name], sfew, split="Val", tta=tta)
    assert result.entries[0].report.accuracy == pytest.approx(card["metrics"][key]["accuracy"], abs=0.001)


def test_wild_model_is_a_head_on_a_shipped_backbone():
    """`wild`: a few kilobytes of head on `ferplus`'s features, stated on SFEW with per-class
    F1 and the confusion matrix, and runs like any model."""
    import numpy as np

    from ferkit.runtime.classifier import HeadClassifier, load_model

    card = json.loads((WEIGHTS_DIR / "wild.json").read_text())
    assert card["kind"] == "head" and card["members"] == ["ferplus"]
    assert (WEIGHTS_DIR / "wild.onnx").stat().st_size < 50_000
    sfew = card["metrics"]["SFEW_Val_tta_flip"]
    assert len(sfew["confusion"]) == 7 and sum(map(sum, sfew["confusion"])) == sfew["n"] == 431
    assert set(sfew["per_class_f1"]) == set(card["labels"])
    clf = load_model("wild")
    assert isinstance(clf, HeadClassifier) and clf.labels == tuple(card["labels"])
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    probs = clf.predict_proba(faces)
    assert probs.shape == (4, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_ensemble_is_the_weighted_mean_of_its_members(tmp_path):
    import numpy as np

    from ferkit.runtime.recognize import Recognizer

    fast = WEIGHTS_DIR / "fast.onnx"
    card = {"kind": "ensemble", "members": ["fast", "fast.onnx"], "member_weights": [3, 1]}
    card["labels"] = list(OnnxClassifier(fast).labels)
    (tmp_path / "fast.onnx").write_bytes(fast.read_bytes())  # a member beside the card, by path
    (tmp_path / "e.json").write_text(json.dumps(card))
    ens = EnsembleClassifier(tmp_path / "e.json")
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    assert np.allclose(ens.predict_proba(faces), OnnxClassifier(fast).predict_proba(faces), atol=1e-6)
    assert np.allclose(ens.weights, [0.75, 0.25])
    assert Recognizer(tmp_path / "e.json", detector="none").recognize(faces[0])[0].label in card["labels"]
    card["labels"] = card["labels"][:-1]
    (tmp_path / "bad.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="member fast predicts"):
        EnsembleClassifier(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(ModelError, match="not an ensemble card"):
        EnsembleClassifier(tmp_path / "junk.json")


def test_models_list_shows_shipped_models_and_architectures():
    from typer.testing import CliRunner

    from ferkit.cli import app

    result = CliRunner().invoke(app, ["models", "list", "--architectures"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    plain = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"})  # lists, no torch needed
    assert plain.exit_code == 0 and "Architectures" not in plain.output
    assert all(f"│ {name}" in plain.output for name in SHIPPED)
    for name in SHIPPED:
        assert f"│ {name}" in result.output
    assert f"{default_model_name()} (default)" in result.output
    fast_flip = json.loads((WEIGHTS_DIR / "fast.json").read_text())["metrics"]["PrivateTest_tta_flip"]
    assert f"{fast_flip['accuracy']:.2%}" in result.output  # read from the card
    assert "mini_xception" in result.output.split("Architectures")[1] and "vgg_fer" in result.output
