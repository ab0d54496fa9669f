"""The real-photo degradations: JPEG matches libjpeg, each one changes only the chosen images,
everything is reproducible, and the defaults leave training (and its random stream) as before."""

import cv2
import numpy as np
import pytest
import torch

from ferkit.train.augment import augment_batch, degrade, gaussian_blur, jpeg_compress
from ferkit.train.config import AugmentConfig

KINDS = ["gamma", "lighting", "lowres", "blur", "noise", "jpeg"]


def face_like(n: int = 16, size: int = 48, channels: int = 1) -> torch.Tensor:
    """Smooth shapes plus texture, so blur and JPEG have edges and detail to remove."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for i in range(n):
        base = (
            128
            + 60 * np.sin(xx / (4.0 + i % 3)) * np.cos(yy / (6.0 + i % 4))
            + rng.normal(0, 12, (size, size))
        )
        out.append(np.stack([np.roll(base, 3 * c, 1) for c in range(channels)]))
    return torch.from_numpy(np.clip(out, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("quality", [15, 30, 50, 75])
def test_grey_jpeg_matches_libjpeg(quality):
    img = face_like(1)[0, 0].numpy()
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    real = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(float)
    sim = jpeg_compress(
        torch.from_numpy(img).float().view(1, 1, 48, 48) / 255, torch.tensor([float(quality)])
    )
    sim = sim[0, 0].numpy() * 255
    assert np.abs(real - img).mean() > 5  # the compression is visible ...
    assert np.abs(sim - real).mean() < 0.5  # ... and ours is libjpeg's to well under a grey level


def test_colour_jpeg_matches_libjpeg_444():
    img = face_like(1, channels=3)[0].permute(1, 2, 0).numpy().copy()  # RGB
    params = [
        cv2.IMWRITE_JPEG_QUALITY,
        50,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    ]
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], params)
    real = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(float)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    sim = jpeg_compress(x, torch.tensor([50.0]))[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(real - img).mean() > 5
    assert np.abs(sim - real).mean() < 1.5


def test_jpeg_pads_odd_sizes_and_keeps_shape():
    x = face_like(2, size=45).float() / 255
    y = jpeg_compress(x, torch.tensor([20.0, 90.0]))
    assert y.shape == x.shape
    assert (y[0] - x[0]).abs().mean() > (y[1] - x[1]).abs().mean()  # lower quality, bigger error


@pytest.mark.parametrize("kind", KINDS)
def test_each_degradation_changes_only_the_chosen_images(kind):
    x = face_like(64).float() / 255
    gen = torch.Generator().manual_seed(0)
    all_on = degrade(x, AugmentConfig(**{kind: 1.0}), gen)
    assert all_on.shape == x.shape and all_on.min() >= 0 and all_on.max() <= 1
    changed = (all_on - x).abs().flatten(1).amax(1) > 1e-4
    assert changed.float().mean() > 0.9
    half = degrade(x, AugmentConfig(**{kind: 0.5}), torch.Generator().manual_seed(1))
    changed = (half - x).abs().flatten(1).amax(1) > 1e-6
    assert 0.2 < changed.float().mean() < 0.8  # the others are left exactly as they were


def test_blur_removes_detail_and_sigma_zero_is_identity():
    x = face_like(8).float() / 255
    y = gaussian_blur(x, 1.0, torch.Generator().manual_seed(0))
    detail = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert detail(y) < 0.7 * detail(x)
    assert torch.allclose(gaussian_blur(x, 0.0, torch.Generator()), x, atol=1e-6)


def test_defaults_are_off_and_draw_no_random_numbers():
    x = face_like(16).float() / 255
    gen = torch.Generator().manual_seed(5)
    before = gen.get_state()
    assert torch.equal(degrade(x, AugmentConfig(), gen), x)
    assert torch.equal(gen.get_state(), before)  # runs started before these existed resume exactly


def test_photo_augmentation_reproducible():
    x = face_like(32)
    cfg = AugmentConfig(**{k: 0.5 for k in KINDS})
    a = augment_batch(x, cfg, torch.Generator().manual_seed(3))
    b = augment_batch(x, cfg, torch.Generator().manual_seed(3))
    c = augment_batch(x, cfg, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
