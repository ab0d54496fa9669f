"""CycleGAN: network shapes, learning, checkpoints + exact resume, generation, errors."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
import torch

from ferkit.data import FaceDataset, load_dataset
from ferkit.errors import FerkitError
from ferkit.gan import (
    CycleGan,
    ImagePool,
    PatchDiscriminator,
    ResnetGenerator,
    gan_config,
    generate,
    train_cyclegan,
    train_step,
)
from ferkit.labels import get_label_set

TINY = {"ngf": 8, "n_blocks": 1, "ndf": 8, "n_layers": 2, "batch_size": 4, "precision": "fp32"}


def _faces(n: int, value: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random blobs around a mean grey level, so the two classes differ."""
    small = rng.integers(0, 60, (n, 6, 6)).astype(np.float32)
    big = np.stack([cv2.resize(s, (48, 48), interpolation=cv2.INTER_CUBIC) for s in small])
    return np.clip(big + value, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def two_class_dataset() -> FaceDataset:
    rng = np.random.default_rng(0)
    labels = get_label_set("fer2013")
    neutral, disgust = labels.index("neutral"), labels.index("disgust")
    images = np.concatenate(
        [_faces(12, 40, rng), _faces(8, 160, rng), np.full((5, 48, 48), 255, np.uint8), _faces(3, 160, rng)]
    )
    y = np.array([neutral] * 12 + [disgust] * 8 + [neutral] * 5 + [disgust] * 3)
    splits = np.array(["Training"] * 20 + ["PrivateTest"] * 8)
    return FaceDataset(images, y, splits, labels, source="synthetic-test")


def test_network_shapes():
    g = ResnetGenerator(1, ngf=8, n_blocks=2)
    d = PatchDiscriminator(1, ndf=8, n_layers=3)
    x = torch.randn(2, 1, 48, 48)
    y = g(x)
    assert y.shape == (2, 1, 48, 48)
    assert float(y.detach().abs().max()) <= 1.0  # tanh output
    assert d(x).shape == (2, 1, 10, 10)
    assert PatchDiscriminator(1, ndf=8, n_layers=2)(x).shape == (2, 1, 22, 22)
    with pytest.raises(ValueError, match="multiples of 4"):
        g(torch.randn(1, 1, 46, 46))


def test_image_pool_keeps_history_and_state():
    pool = ImagePool(4)
    gen = torch.Generator().manual_seed(0)
    first = torch.zeros(4, 1, 8, 8)
    assert torch.equal(pool.query(first, gen), first)  # filling: returned as is
    out = pool.query(torch.ones(8, 1, 8, 8), gen)
    assert out.shape == (8, 1, 8, 8)
    assert 0 < int((out.sum(dim=(1, 2, 3)) == 0).sum()) < 8  # some old fakes came back
    restored = ImagePool(4)
    restored.load(pool.state())
    assert torch.equal(restored.state(), pool.state())


def test_training_steps_lower_the_cycle_loss(two_class_dataset):
    torch.manual_seed(0)
    cfg = gan_config(**TINY, lr=2e-3)
    gan = CycleGan.create(cfg)
    opt_g = torch.optim.Adam([*gan.g_ab.parameters(), *gan.g_ba.parameters()], cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*gan.d_a.parameters(), *gan.d_b.parameters()], cfg.lr, betas=(0.5, 0.999))
    a = torch.from_numpy(two_class_dataset.images[:4]).unsqueeze(1).float() / 127.5 - 1
    b = torch.from_numpy(two_class_dataset.images[12:16]).unsqueeze(1).float() / 127.5 - 1
    pools, gen = (ImagePool(8), ImagePool(8)), torch.Generator().manual_seed(0)
    losses = [train_step(gan, a, b, opt_g, opt_d, pools, cfg, gen)["loss_cycle"] for _ in range(25)]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_train_checkpoint_samples_and_exact_resume(tmp_path, two_class_dataset, monkeypatch):
    common = {**TINY, "steps_per_epoch": 2, "samples": 3, "progress": False}
    cfg = gan_config(**common, epochs=2, out=str(tmp_path / "a"))
    straight = train_cyclegan(cfg, dataset=two_class_dataset)
    assert straight.epochs == 2
    run = tmp_path / "a"
    assert (run / "last.pt").stat().st_size > 0
    grid = cv2.imread(str(run / "samples" / "epoch_002.png"), cv2.IMREAD_GRAYSCALE)
    assert grid.shape == (3 * 48 * 2, 3 * 48 * 2)  # rows: source | translated | reconstructed
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"loss_cycle", "loss_d_b", "lr"} <= set(rows[0])

    # Ctrl-C after epoch 1 of 2, then resume: the same weights as the straight run.
    import ferkit.gan.train as gan_train

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(gan_train, "save_sample_grid", interrupt)
        with pytest.raises(KeyboardInterrupt):
            train_cyclegan(gan_config(**common, epochs=2, out=str(tmp_path / "b")), dataset=two_class_dataset)
    resumed = train_cyclegan(gan_config(**common, epochs=2), resume=tmp_path / "b", dataset=two_class_dataset)
    assert resumed.epochs == 2 and len(resumed.history) == 2
    a = torch.load(run / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for name in ("g_ab", "g_ba", "d_a", "d_b"):
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key} differs after resume"
    with pytest.raises(FerkitError, match="already holds a run"):
        train_cyclegan(gan_config(**common, epochs=1, out=str(run)), dataset=two_class_dataset)
    # An explicit new length is honoured on resume (even when it equals GanConfig's default).
    longer = train_cyclegan(gan_config(**common), resume=tmp_path / "b", epochs=3, dataset=two_class_dataset)
    assert longer.epochs == 3 and len(longer.history) == 3


def test_generate_count_label_and_training_faces_only(tmp_path, two_class_dataset):
    run = tmp_path / "gan"
    cfg = gan_config(**TINY, epochs=1, steps_per_epoch=1, progress=False, out=str(run))
    train_cyclegan(cfg, dataset=two_class_dataset)
    result = generate(run, n=30, out=tmp_path / "syn.npz", dataset=two_class_dataset)
    assert result.count == 30 and result.target == "disgust"
    with np.load(tmp_path / "syn.npz") as z:
        assert z["images"].shape == (30, 48, 48) and z["images"].dtype == np.uint8
        assert set(z["labels"].tolist()) == {get_label_set("fer2013").index("disgust")}
        # 12 Training neutral faces (indices 0..11); the 5 PrivateTest ones are never used.
        assert z["source_index"].max() < 12 and len(set(z["source_index"][:12].tolist())) == 12

    folder = generate(run, n=5, out=tmp_path / "syn_folder", dataset=two_class_dataset).out
    assert sorted(p.name for p in (folder / "disgust").iterdir()) == [f"{i:05d}.png" for i in range(5)]
    loaded = load_dataset(folder, cache=False)
    assert len(loaded) == 5 and set(loaded.labels.tolist()) == {loaded.label_set.index("disgust")}


def test_bad_input_errors(tmp_path, two_class_dataset):
    with pytest.raises(FerkitError, match="unknown class 'smug'"):
        train_cyclegan(gan_config(**TINY, target="smug", out=str(tmp_path / "x")), dataset=two_class_dataset)
    with pytest.raises(FerkitError, match="two different classes"):
        gan_config(source="disgust", target="disgust")
    not_gan = tmp_path / "classifier"
    not_gan.mkdir()
    torch.save({"format": "ferkit-checkpoint", "version": 1, "model_name": "x"}, not_gan / "last.pt")
    with pytest.raises(FerkitError, match="not a CycleGAN"):
        generate(not_gan, n=3, out=tmp_path / "y.npz", dataset=two_class_dataset)
    with pytest.raises(FerkitError, match="--n must be"):
        generate(not_gan, n=0, out=tmp_path / "y.npz", dataset=two_class_dataset)
