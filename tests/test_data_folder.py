import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image

from ferkit.data import load_dataset, read_image_folder, write_image_folder
from ferkit.errors import DataError
from ferkit.labels import FER2013, RAFDB


def face(value=100, size=48):
    img = np.full((size, size), value, np.uint8)
    img[10:20, 10:20] = 255 - value
    return img


def put(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def test_label_folders_without_splits(tmp_path):
    for label in ("happy", "Sad", "anger"):  # any common spelling
        for i in range(3):
            put(tmp_path / "faces" / label / f"{i}.png", face(i * 40))
    ds = read_image_folder(tmp_path / "faces")
    assert ds.label_set is FER2013
    assert ds.class_counts() == {
        "all": {"angry": 3, "disgust": 0, "fear": 0, "happy": 3, "sad": 3, "surprise": 0, "neutral": 0}
    }


def test_rafdb_numbers_and_split_folders(tmp_path):
    for split in ("train", "test"):
        for number in range(1, 8):
            put(tmp_path / split / str(number) / f"{split}_{number}.jpg", face(number * 30))
    ds = read_image_folder(tmp_path)
    assert ds.label_set is RAFDB
    assert ds.split_names == ["train", "test"]
    assert ds.class_counts()["train"]["surprise"] == 1
    assert ds.pick("test").labels.tolist() == list(range(7))


def test_kaggle_prefix_gives_split_and_zip_reads_in_place(tmp_path, small_dataset):
    z = write_image_folder(small_dataset, tmp_path / "images.zip")
    names = zipfile.ZipFile(z).namelist()
    assert any(n.startswith("test/happy/PrivateTest_") for n in names)
    ds = read_image_folder(z)
    assert ds.format == "image-zip"
    # PNG is lossless and the index in the name restores the original order.
    assert (ds.images == small_dataset.images).all()
    assert (ds.splits == small_dataset.splits).all()
    assert (ds.labels == small_dataset.labels).all()


def test_resizes_any_size_and_colour(tmp_path):
    put(tmp_path / "happy" / "big.jpg", np.full((200, 300, 3), 128, np.uint8))
    (tmp_path / "sad").mkdir()
    (tmp_path / "fear").mkdir()
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "sad" / "a.png")
    Image.fromarray(np.full((30, 30), 40000, np.uint16)).save(tmp_path / "sad" / "deep.png")
    Image.fromarray(face()).save(tmp_path / "fear" / "x.gif")
    ds = read_image_folder(tmp_path, size=32)
    assert ds.images.shape == (4, 32, 32)
    rgb = read_image_folder(tmp_path, size=32, color="rgb")
    assert rgb.images.shape == (4, 32, 32, 3)


def test_corrupt_image_error_and_skip(tmp_path):
    put(tmp_path / "happy" / "ok.png", face())
    (tmp_path / "happy" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good_jpg = cv2.imencode(".jpg", face())[1].tobytes()
    (tmp_path / "sad").mkdir()
    (tmp_path / "sad" / "cut.jpg").write_bytes(good_jpg[: len(good_jpg) // 2])
    (tmp_path / "sad" / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError) as info:
        read_image_folder(tmp_path)
    assert "broken.png" in str(info.value) and "not a readable image" in str(info.value)
    ds = read_image_folder(tmp_path, on_error="skip")
    assert len(ds) == 1
    problems = {s.source.rsplit("/", 1)[-1]: s.problem for s in ds.skipped}
    assert set(problems) == {"broken.png", "cut.jpg", "empty.jpg"}
    assert "truncated JPEG" in problems["cut.jpg"] and problems["empty.jpg"] == "file is empty"


def test_unknown_label_for_fixed_label_set(tmp_path):
    put(tmp_path / "happy" / "a.png", face())
    put(tmp_path / "bored" / "b.png", face())
    with pytest.raises(DataError, match="unknown label 'bored' for label set fer2013"):
        read_image_folder(tmp_path, labels="fer2013")
    with pytest.raises(DataError, match=r"\['bored'\] are not emotions"):  # not silently a custom set
        read_image_folder(tmp_path)
    ds = read_image_folder(tmp_path, labels="custom")  # asked for: the folder names are the classes
    assert ds.label_set.names == ("bored", "happy")


def test_empty_folder_and_bad_zip(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        read_image_folder(tmp_path / "empty")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="not a readable zip"):
        load_dataset(bad)


def test_roles_match_split_names_in_any_case_and_missing_ones_are_clear(tmp_path):
    import cv2

    from ferkit.errors import DataError

    for split in ("Train", "Val"):  # SFEW's names
        (tmp_path / split / "Happy").mkdir(parents=True)
        cv2.imwrite(str(tmp_path / split / "Happy" / "a.png"), np.full((60, 50), 128, np.uint8))
    ds = read_image_folder(tmp_path)
    assert ds.split_for("train") == "Train" and len(ds.pick("val")) == 1
    with pytest.raises(DataError, match="no split for role 'test'.*splits are Train, Val"):
        ds.pick("test")
