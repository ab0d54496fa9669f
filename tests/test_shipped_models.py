"""Every model that ships in ferkit/weights has a complete card, and its numbers reproduce."""

import json

import pytest

from ferkit.evaluate.run import evaluate_models
from ferkit.runtime.classifier import OnnxClassifier
from ferkit.runtime.models import WEIGHTS_DIR, default_model_name, resolve_model, shipped_models

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


@pytest.mark.parametrize("name", SHIPPED)
def test_card_is_complete_in_onnx_and_json(name):
    onnx_card = OnnxClassifier(WEIGHTS_DIR / f"{name}.onnx").card.extra
    json_card = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    for key in REQUIRED:
        assert key in onnx_card and key in json_card, key
    assert json_card["labels"] == onnx_card["labels"]
    metrics = json_card["metrics"]["PrivateTest"]
    assert {"accuracy", "macro_f1", "ece", "per_class_f1"} <= set(metrics)
    assert "PrivateTest_tta_flip" in json_card["metrics"]


@pytest.mark.shared_data
@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("tta", ["none", "flip"])
def test_stated_accuracy_reproduces(name, tta, shared):
    card = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    key = "PrivateTest" if tta == "none" else f"PrivateTest_tta_{tta}"
    result = evaluate_models([name], shared / "fer2013.tar.gz", split="PrivateTest", tta=tta)
    assert result.entries[0].report.accuracy == pytest.approx(card["metrics"][key]["accuracy"], abs=0.001)
