"""Integration tests on the real FER-2013 files in ../shared/datasets (skipped when absent)."""

import numpy as np
import pytest

from ferkit.data import load_dataset, write_fer2013_csv, write_image_folder
from ferkit.data.ferplus import read_ferplus_votes

pytestmark = pytest.mark.shared_data

# ../shared/datasets/README.md
EXPECTED = {
    "Training": [3995, 436, 4097, 7215, 4830, 3171, 4965],
    "PublicTest": [467, 56, 496, 895, 653, 415, 607],
    "PrivateTest": [491, 55, 528, 879, 594, 416, 626],
}


@pytest.fixture(scope="module")
def fer(shared):
    return load_dataset(shared / "fer2013.tar.gz")


def test_csv_counts(fer):
    assert fer.image_size == (48, 48) and len(fer) == 35887
    assert {s: list(c.values()) for s, c in fer.class_counts().items()} == EXPECTED


def test_images_zip_counts(shared):
    ds = load_dataset(shared / "fer2013-images.zip")
    assert ds.format == "image-zip" and ds.image_size == (48, 48)
    assert {s: list(c.values()) for s, c in ds.class_counts().items()} == EXPECTED


def test_ferplus_join(shared, fer):
    _, usage, _ = read_ferplus_votes(shared / "fer2013new.csv")
    assert {s: int((usage == s).sum()) for s in EXPECTED} == {
        "Training": 28709,
        "PublicTest": 3589,
        "PrivateTest": 3589,
    }
    ds = load_dataset(shared / "fer2013new.csv", pixels=shared / "fer2013.tar.gz")
    counts = {s: sum(c.values()) for s, c in ds.class_counts().items()}
    # Barsoum et al.'s majority protocol (measured with ferkit; see CHANGELOG.md, 0.1.0).
    assert counts == {"Training": 25060, "PublicTest": 3199, "PrivateTest": 3153}
    assert ds.soft_labels.shape == (len(ds), 8) and np.allclose(ds.soft_labels.sum(1), 1)


@pytest.mark.slow
def test_convert_roundtrip_keeps_every_label_and_pixel(fer, tmp_path):
    write_image_folder(fer, tmp_path / "images.zip")
    via_folder = load_dataset(tmp_path / "images.zip", cache=False)
    write_fer2013_csv(via_folder, tmp_path / "back.csv")
    back = load_dataset(tmp_path / "back.csv", cache=False)
    assert (back.images == fer.images).all()
    assert (back.labels == fer.labels).all()
    assert (back.splits == fer.splits).all()
