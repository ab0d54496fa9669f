import gzip
import tarfile
import zipfile

import numpy as np
import pytest

from conftest import make_dataset
from ferkit.data import load_dataset, read_fer2013_csv, write_fer2013_csv
from ferkit.errors import DataError

HEADER = "emotion,pixels,Usage\n"


def pixels(n=2304, value=7):
    return " ".join([str(value)] * n)


def write(tmp_path, body, name="f.csv"):
    p = tmp_path / name
    p.write_text(HEADER + body)
    return p


@pytest.mark.parametrize("name", ["a.csv", "a.csv.gz", "a.tar.gz", "a.zip"])
def test_roundtrip_all_containers(tmp_path, name, small_dataset):
    csv_path = write_fer2013_csv(small_dataset, tmp_path / "plain.csv")
    target = tmp_path / name
    if name.endswith(".tar.gz"):
        with tarfile.open(target, "w:gz") as tar:
            tar.add(csv_path, arcname="fer2013/fer2013.csv")
    elif name.endswith(".zip"):
        with zipfile.ZipFile(target, "w") as zf:
            zf.write(csv_path, "fer2013.csv")
    elif name.endswith(".gz"):
        target.write_bytes(gzip.compress(csv_path.read_bytes()))
    else:
        target = csv_path
    ds = read_fer2013_csv(target)
    assert (ds.images == small_dataset.images).all()
    assert (ds.labels == small_dataset.labels).all()
    assert (ds.splits == small_dataset.splits).all()


@pytest.mark.parametrize(
    "row, problem",
    [
        (f"0,{pixels(2303)},Training", "expected 2304 pixel values, found 2303"),
        (f"0,{pixels(2303)} x1,Training", "pixel 2304 is not a number: 'x1'"),
        (f"0,{pixels(2303)} 300,Training", "pixel 2304 is 300, outside 0..255"),
        (f"9,{pixels()},Training", "unknown emotion '9'"),
        (f"happy,{pixels()},Training", "unknown emotion 'happy'"),
        (f"0,{pixels()},Validation", "unknown Usage 'Validation'"),
        (f"0,{pixels()}", "expected 3 fields, found 2"),
    ],
    ids=["short", "non-numeric", "out-of-range", "emotion-9", "emotion-name", "usage", "fields"],
)
def test_bad_row_names_file_line_and_problem(tmp_path, row, problem):
    p = write(tmp_path, f"3,{pixels()},Training\n{row}\n")
    with pytest.raises(DataError) as info:
        read_fer2013_csv(p)
    assert str(p) in str(info.value) and "line 3" in str(info.value) and problem in str(info.value)


def test_skip_mode_counts_and_reports_every_bad_row(tmp_path):
    body = "\n".join(
        [
            f"3,{pixels()},Training",
            f"0,{pixels(10)},Training",
            f"5,{pixels()},PrivateTest",
            f"8,{pixels()},Training",
            "",
        ]
    )
    ds = read_fer2013_csv(write(tmp_path, body), on_error="skip")
    assert len(ds) == 2 and ds.labels.tolist() == [3, 5]
    assert [s.location for s in ds.skipped] == ["line 3", "line 5"]
    assert "unknown emotion '8'" in ds.skipped[1].problem


def test_missing_column(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("emotion,Usage\n0,Training\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['pixels'\]"):
        read_fer2013_csv(p)


def test_empty_and_header_only(tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="file is empty"):
        read_fer2013_csv(empty)
    with pytest.raises(DataError, match="header but no rows"):
        read_fer2013_csv(write(tmp_path, ""))


def test_truncated_tar_gz(tmp_path):
    ds = make_dataset(n_per_class=20)
    csv_path = write_fer2013_csv(ds, tmp_path / "fer2013.csv")
    tgz = tmp_path / "fer2013.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(csv_path, arcname="fer2013/fer2013.csv")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(tgz.read_bytes()[: tgz.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_fer2013_csv(cut)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nope.csv")


def test_write_is_atomic_on_failure(tmp_path, small_dataset):
    target = tmp_path / "out.csv"
    target.write_text("keep me")
    bad = small_dataset.subset(np.arange(3))
    bad.labels = np.array([0, 1, 99])  # index outside the label set -> fails mid-write
    with pytest.raises(IndexError):
        write_fer2013_csv(bad, target)
    assert target.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_gzip_text_is_readable(tmp_path, small_dataset):
    p = write_fer2013_csv(small_dataset, tmp_path / "x.csv.gz")
    with gzip.open(p, "rt") as f:
        assert f.readline().strip() == "emotion,pixels,Usage"
    assert len(read_fer2013_csv(p)) == len(small_dataset)


def test_written_files_get_the_usual_mode(tmp_path, small_dataset):
    import os
    import stat

    p = write_fer2013_csv(small_dataset, tmp_path / "m.csv")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask


def test_faces_are_framed_to_the_size_a_network_asks(tmp_path, small_dataset):
    """A 112 px network (face-api's) trains on FER-2013's 48 px rows: they are framed to
    112 as the runtime frames a crop, not refused as rows of the wrong length."""
    from ferkit.framing import frame_face

    path = write_fer2013_csv(small_dataset, tmp_path / "plain.csv")
    ds = load_dataset(path, size=112, cache=False)
    assert ds.images.shape == (len(small_dataset), 112, 112)
    np.testing.assert_array_equal(ds.images[3], frame_face(small_dataset.images[3], None, 112))
    assert (ds.labels == small_dataset.labels).all()


def test_a_csv_of_another_square_size_is_read_at_its_size(tmp_path):
    """Rows of 16x16 (the first row says so) read at 16 px as before; a row of another length is an error."""
    path = write(tmp_path, f"3,{pixels(16 * 16)},Training\n4,{pixels(16 * 16, 9)},PublicTest\n")
    ds = read_fer2013_csv(path, size=16)
    assert ds.images.shape == (2, 16, 16) and ds.images[1].max() == 9
    with pytest.raises(DataError, match="line 3.*expected 256 pixel values, found 2304"):
        read_fer2013_csv(
            write(tmp_path, f"3,{pixels(256)},Training\n4,{pixels()},Training\n", "g.csv"), size=16
        )
