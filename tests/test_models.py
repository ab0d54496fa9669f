import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferkit.models import create_model, list_models, model_stats

MODELS = list_models()


def test_registry_lists_the_issue_models():
    assert set(MODELS) >= {
        "baseline_cnn",
        "mini_xception",
        "vgg_fer",
        "resnet18_fer",
        "resnet34_fer",
        "inception_fer",
    }
    with pytest.raises(KeyError, match=r"unknown model architecture .nope. \(known: baseline_cnn, "):
        create_model("nope")


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    x = torch.randn(3, 1, 48, 48)
    out = model(x)
    assert out.shape == (3, 5) and torch.isfinite(out).all()
    F.cross_entropy(out, torch.tensor([0, 1, 4])).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []


@pytest.mark.parametrize("name", MODELS)
def test_bf16_autocast_channels_last(name):
    model = create_model(name).to(memory_format=torch.channels_last).eval()
    x = torch.randn(2, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out.float()).all()


def test_mini_xception_is_tiny_and_vgg_is_not():
    assert 40_000 < model_stats("mini_xception").params < 80_000
    assert model_stats("vgg_fer").params > 1_000_000


def test_resnet_names_match_torchvision():
    keys = set(create_model("resnet18_fer").state_dict())
    assert {
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "fc.weight",
    } <= keys
    assert not any(k.startswith(("stem", "features")) for k in keys)


@pytest.mark.parametrize("name", MODELS)
def test_onnx_export_agrees_with_torch(name, tmp_path):
    """Every registered model exports (dynamic batch) and ONNX Runtime matches torch."""
    from ferkit.export import export_onnx
    from ferkit.runtime.classifier import OnnxClassifier
    from ferkit.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = create_model(name).eval()
    ckpt = {
        "model_name": name,
        "model_args": model.ferkit_args,
        "label_names": [f"c{i}" for i in range(7)],
        "preprocessing": {"input_size": 48, "color": "gray", "mean": 0.5, "std": 0.25},
        "model": model.state_dict(),
    }
    save_checkpoint(tmp_path / "m.pt", ckpt)
    report = export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx")
    assert report.max_abs_diff < 1e-4
    clf = OnnxClassifier(tmp_path / "m.onnx")
    faces = np.random.default_rng(0).integers(
        0, 256, (5, 48, 48), dtype=np.uint8
    )  # batch 5 != export batch 2
    with torch.no_grad():
        expected = torch.softmax(
            model((torch.from_numpy(faces).float()[:, None] / 255 - 0.5) / 0.25), 1
        ).numpy()
    assert np.abs(clf.predict_proba(faces) - expected).max() < 1e-4
