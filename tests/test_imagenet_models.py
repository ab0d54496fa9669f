"""ImageNet backbones with torchvision's names: parameter counts, and weights loaded from a file or URL."""

import hashlib

import pytest
import torch

from ferkit.models import create_model
from ferkit.train.finetune import load_init_weights

# torchvision's own figures (models at 1000 classes, 3 channels).
TORCHVISION_PARAMS = {
    "resnet50": 25_557_032,
    "vgg16_bn": 138_365_992,
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
}
# A few of torchvision's state-dict keys per model (what its published weights contain).
TORCHVISION_KEYS = {
    "resnet50": ["conv1.weight", "layer1.0.downsample.0.weight", "layer4.2.bn3.running_var", "fc.bias"],
    "vgg16_bn": ["features.0.weight", "features.1.running_mean", "features.41.weight", "classifier.6.weight"],
    "mobilenet_v2": [
        "features.0.0.weight",
        "features.1.conv.0.0.weight",
        "features.2.conv.3.bias",
        "classifier.1.weight",
    ],
    "efficientnet_b0": [
        "features.1.0.block.1.fc1.weight",
        "features.2.0.block.3.1.weight",
        "features.8.0.weight",
        "classifier.1.bias",
    ],
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_counts_and_names_match_torchvision(name):
    model = create_model(name, num_classes=1000, in_chans=3)
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[name]
    assert set(TORCHVISION_KEYS[name]) <= set(model.state_dict())


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0"])
def test_grey_faces_at_48_and_96_px(name):
    model = create_model(name).eval()  # 7 classes, 1 channel
    for size in (48, 96):
        assert model(torch.rand(2, 1, size, size)).shape == (2, 7)


def _saved_imagenet_state(tmp_path, name):
    """A state dict with torchvision's names (an ImageNet-shaped model), saved as
    ``<name>-<sha256 prefix>.pth`` like torchvision's files."""
    torch.manual_seed(0)
    state = create_model(name, num_classes=1000, in_chans=3).state_dict()
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()[:8]
    path = tmp_path / f"{name}-{digest}.pth"
    raw.rename(path)
    return state, path


@pytest.mark.parametrize("how", ["file", "url"])
def test_imagenet_state_dict_loads_every_key_from_a_file_or_url(tmp_path, monkeypatch, how):
    monkeypatch.setenv("FERKIT_CACHE_DIR", str(tmp_path / "cache"))
    source, path = _saved_imagenet_state(tmp_path, "mobilenet_v2")
    model = create_model("mobilenet_v2")  # 7 classes, grey
    spec = str(path) if how == "file" else path.as_uri()
    report = load_init_weights(model, spec, backbone_only=True)
    assert report.missing == []
    head = {k for k in source if k.startswith("classifier.")}
    assert set(report.skipped) == head  # the 1000-class head only
    assert "features.0.0.weight" in report.adapted  # the RGB stem, folded to grey
    folded = source["features.0.0.weight"].sum(1, keepdim=True)
    assert torch.allclose(model.state_dict()["features.0.0.weight"], folded)
    assert torch.equal(model.state_dict()["features.17.conv.2.weight"], source["features.17.conv.2.weight"])


def test_a_url_whose_file_does_not_match_its_hash_is_refused(tmp_path, monkeypatch):
    from ferkit.errors import FerkitError

    monkeypatch.setenv("FERKIT_CACHE_DIR", str(tmp_path / "cache"))
    _, path = _saved_imagenet_state(tmp_path, "mobilenet_v2")
    wrong = path.with_name("mobilenet_v2-00000000.pth")
    path.rename(wrong)
    with pytest.raises(FerkitError, match="mobilenet_v2-00000000.pth"):
        load_init_weights(create_model("mobilenet_v2"), wrong.as_uri())
