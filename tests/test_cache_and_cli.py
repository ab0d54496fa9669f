import json
import os

import pytest
from typer.testing import CliRunner

from ferkit.cli import app
from ferkit.data import load as load_module
from ferkit.data import load_dataset, write_fer2013_csv
from ferkit.errors import DataError

runner = CliRunner()


def test_second_load_comes_from_cache(tmp_path, small_dataset, monkeypatch):
    p = write_fer2013_csv(small_dataset, tmp_path / "f.csv")
    first = load_dataset(p)
    calls = []
    monkeypatch.setattr(load_module, "read_fer2013_csv", lambda *a, **k: calls.append(1))
    second = load_dataset(p)
    assert calls == [] and (second.images == first.images).all() and second.label_set == first.label_set
    # Editing the source invalidates the cache.
    os.utime(p, ns=(1, 1))
    with pytest.raises(AttributeError):  # the stub reader returned None: it was called
        load_dataset(p)
    assert calls == [1]


def test_damaged_cache_is_rebuilt(tmp_path, small_dataset):
    p = write_fer2013_csv(small_dataset, tmp_path / "f.csv")
    load_dataset(p)
    cache = os.environ["FERKIT_CACHE_DIR"]
    for f in os.scandir(os.path.join(cache, "data")):
        with open(f.path, "wb") as fh:
            fh.write(b"garbage")
    assert (load_dataset(p).images == small_dataset.images).all()


def test_cli_info_json(tmp_path, small_dataset):
    p = write_fer2013_csv(small_dataset, tmp_path / "f.csv")
    result = runner.invoke(app, ["data", "info", str(p), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["format"] == "fer2013-csv" and info["images"] == 84
    assert info["class_counts"]["PrivateTest"]["disgust"] == 4


def test_cli_preview_and_convert(tmp_path, small_dataset):
    import cv2

    p = write_fer2013_csv(small_dataset, tmp_path / "f.csv")
    result = runner.invoke(
        app, ["data", "preview", str(p), "--out", str(tmp_path / "g.png"), "--per-class", "3"]
    )
    assert result.exit_code == 0, result.output
    sheet = cv2.imread(str(tmp_path / "g.png"))
    assert sheet.shape[0] > 7 * 96 and sheet.std() > 10
    result = runner.invoke(app, ["data", "convert", str(p), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["data", "convert", str(tmp_path / "out"), str(tmp_path / "back.csv")])
    assert result.exit_code == 0, result.output
    back = load_dataset(tmp_path / "back.csv")
    assert (back.images == small_dataset.images).all() and (back.labels == small_dataset.labels).all()


def test_cli_error_is_one_clear_line(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n0,1 2 3,Training\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ferkit", "data", "info", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{bad}, line 2: expected 2304 pixel values, found 3" in " ".join(proc.stderr.split())


def test_skip_mode_reports(tmp_path):
    bad = tmp_path / "bad.csv"
    good = " ".join(["1"] * 2304)
    bad.write_text(f"emotion,pixels,Usage\n0,1 2 3,Training\n3,{good},Training\n")
    result = runner.invoke(app, ["data", "info", str(bad), "--on-error", "skip", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["skipped"] == 1


def test_packed_dataset_round_trip_and_train_reads_it(tmp_path, small_dataset):
    import dataclasses

    import numpy as np

    from ferkit.data import write_packed

    ds = dataclasses.replace(
        small_dataset,
        soft_labels=np.random.default_rng(0).dirichlet(np.ones(7), len(small_dataset)).astype(np.float32),
    )
    csv_path = tmp_path / "fer.csv"
    write_fer2013_csv(ds, csv_path)
    packed = tmp_path / "fer.ferkit.xz"
    result = CliRunner().invoke(app, ["data", "convert", str(csv_path), str(packed)])  # the CLI way
    assert result.exit_code == 0, result.output
    assert np.array_equal(load_dataset(packed).images, load_dataset(csv_path).images)
    write_packed(ds, packed)  # the library way, with FER+-style vote distributions
    back = load_dataset(packed)
    assert np.array_equal(back.images, ds.images) and np.array_equal(back.labels, ds.labels)
    assert list(back.splits) == list(ds.splits) and back.label_set == ds.label_set
    assert np.array_equal(back.soft_labels, ds.soft_labels)

    from ferkit.train import load_config
    from ferkit.train.data import prepare_data

    data = prepare_data(
        load_config(data=str(packed), model="mini_xception"), __import__("torch").device("cpu")
    )
    assert len(data.train) == int((ds.splits == "Training").sum())

    damaged = tmp_path / "cut.ferkit.xz"
    damaged.write_bytes(packed.read_bytes()[:1000])
    with pytest.raises(DataError, match="cut.ferkit.xz: packed dataset is truncated or corrupt"):
        load_dataset(damaged)
    with pytest.raises(DataError, match="asked for 64 px"):
        load_dataset(packed, size=64)
