import numpy as np
import pytest
import torch

from ferkit.evaluate.metrics import classification_report
from ferkit.train.augment import augment_batch, mix_batch
from ferkit.train.config import AugmentConfig

NONE = dict(flip=0.0, scale=(1.0, 1.0), shift=0.0, rotate=0.0, brightness=0.0, contrast=0.0, erasing=0.0)


def batch(n=16):
    return torch.randint(
        0, 256, (n, 1, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


def test_identity_when_everything_is_off():
    x = batch()
    y = augment_batch(x, AugmentConfig(**NONE), torch.Generator().manual_seed(0))
    assert torch.allclose(y, x.float() / 255, atol=1e-5)


def test_flip_is_an_exact_mirror():
    x = batch()
    y = augment_batch(x, AugmentConfig(**{**NONE, "flip": 1.0}), torch.Generator().manual_seed(0))
    assert torch.allclose(y, x.flip(3).float() / 255, atol=1e-4)


def test_full_augmentation_range_and_reproducibility():
    x = batch(64)
    cfg = AugmentConfig(erasing=1.0)
    a = augment_batch(x, cfg, torch.Generator().manual_seed(3))
    b = augment_batch(x, cfg, torch.Generator().manual_seed(3))
    assert a.shape == (64, 1, 48, 48) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert (a - x.float() / 255).abs().mean() > 0.05


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mix_keeps_target_mass(kind):
    x = batch().float() / 255
    targets = torch.eye(7)[torch.arange(16) % 7]
    cfg = AugmentConfig(**{kind: 1.0})
    mixed, soft = mix_batch(x, targets, cfg, torch.Generator().manual_seed(0))
    assert torch.allclose(soft.sum(1), torch.ones(16))
    assert not torch.equal(mixed, x)


def test_metrics_hand_computed():
    labels = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 1, 1, 1, 0, 0])  # class 2 is never predicted
    probs = np.eye(3)[preds] * 0.8 + 0.1
    r = classification_report(labels, probs, ["a", "b", "c"])
    assert r.accuracy == pytest.approx(3 / 6)
    assert r.per_class["a"].precision == pytest.approx(1 / 3) and r.per_class["a"].recall == pytest.approx(
        1 / 2
    )
    assert r.per_class["b"].precision == pytest.approx(2 / 3) and r.per_class["b"].recall == 1.0
    assert r.per_class["c"].precision == 0.0 and r.per_class["c"].f1 == 0.0
    assert r.macro_f1 == pytest.approx((0.4 + 0.8 + 0.0) / 3)
    assert r.balanced_accuracy == pytest.approx((0.5 + 1 + 0) / 3)
    assert r.confusion == [[1, 1, 0], [0, 2, 0], [2, 0, 0]]
    with pytest.raises(ValueError, match="expected"):
        classification_report(labels, probs[:, :2], ["a", "b", "c"])
