"""Batch recognition on Ray: same rows as single-process predict, bad files as rows, resumable."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook

from ferkit.scale.sources import expand_sources, plan_partitions
from ferkit.synth import png_bomb

GRACE = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
BAD = {
    "empty.jpg": b"",
    "truncated.jpg": None,
    "text.png": b"this is not a picture\n",
    "bomb.png": png_bomb(30000, 30000),  # refused from its header, never decoded
}


def make_collection(folder: Path, n: int = 300) -> dict[str, str]:
    """``n`` files: faces at several scales and flips, faceless pictures, and broken files."""
    grace = cv2.imread(str(GRACE))
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    good = n - len(BAD)
    for i in range(good):
        sub = folder / f"batch{i % 3}"
        sub.mkdir(exist_ok=True)
        if i % 5 == 0:  # a face
            scale = 0.35 + 0.05 * (i % 7)
            img = cv2.resize(grace, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            img = img[:, ::-1] if i % 2 else img
        else:  # no face: smooth noise
            img = cv2.GaussianBlur(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(str(sub / f"img{i:04d}.{'jpg' if i % 2 else 'png'}"), img)
    full = (folder / "batch0" / "img0000.png").read_bytes()
    for name, data in BAD.items():
        (folder / name).write_bytes(full[: len(full) // 3] if data is None else data)
    return {name: "" for name in BAD}


def test_plan_partitions_keeps_earlier_ones_and_appends_new_files():
    first = plan_partitions(["a", "b", "c", "d", "e"], None, 2)
    assert first == [["a", "b"], ["c", "d"], ["e"]]
    # A file added later (sorting first) must not shift earlier partitions: they may be written.
    again = plan_partitions(["0", "a", "b", "c", "d", "e", "f"], first, 2)
    assert again[:3] == first and again[3:] == [["0", "f"]]


def test_expand_sources_local_and_uri(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.jpg", "sub/b.png", "clip.mp4", "notes.txt", ".hidden.jpg"):
        (folder / name).write_bytes(b"x")
    local, missing = expand_sources([str(folder), str(tmp_path / "nothing_here")])
    assert [Path(p).name for p in local] == ["a.jpg", "clip.mp4", "b.png"]
    assert missing and missing[0][0].endswith("nothing_here")
    uri, missing = expand_sources([f"file://{folder}"])
    assert [p.split("/")[-1] for p in uri] == ["a.jpg", "clip.mp4", "b.png"] and not missing
    assert all(p.startswith("file://") for p in uri)


def test_ray_engine_needs_an_output_folder(tmp_path):
    from typer.testing import CliRunner

    from ferkit.cli import app

    result = CliRunner().invoke(app, ["predict", str(tmp_path), "--engine", "ray"])
    assert result.exit_code == 2 and "--out" in result.output
    result = CliRunner().invoke(app, ["predict", str(tmp_path), "--engine", "spark"])
    assert result.exit_code == 2 and "unknown engine" in result.output


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason='the Ray engine is optional: pip install "ferkit[scale]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_rows_equal_single_process_predict_and_resume(tmp_path, ray_cluster):
    from typer.testing import CliRunner

    from ferkit.cli import app
    from ferkit.scale import predict_ray, read_results
    from ferkit.scale.ray_predict import MANIFEST

    folder = tmp_path / "photos"
    make_collection(folder, 300)
    common = ["--detector", "haar", "--tta", "flip"]
    single = CliRunner().invoke(app, ["predict", str(folder), *common, "--json", str(tmp_path / "one.jsonl")])
    assert single.exit_code == 0, single.output
    expected = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    assert len(expected) >= 50  # the faces were found

    out = tmp_path / "out"
    report = predict_ray([str(folder)], out, detector="haar", workers=2, partition_size=40, progress=False)
    assert report.partitions == math.ceil(300 / 40) == report.done_partitions
    assert report.images == 300 and report.faces == len(expected)
    assert sorted(Path(p).name for p, _ in report.failed) == sorted(BAD)

    frame = read_results(out)
    faces = frame[frame["face"].notna()]
    errors = frame[frame["error"].notna()]
    no_face = frame[frame["face"].isna() & frame["error"].isna()]
    assert frame["path"].nunique() == 300  # every input is accounted for
    assert len(faces) == len(expected) and len(errors) == len(BAD)
    by_name = errors.set_index(errors["path"].map(lambda p: Path(p).name))["error"]
    assert "file is empty" in by_name["empty.jpg"]
    assert "30000x30000" in by_name["bomb.png"] and "pixel limit" in by_name["bomb.png"]
    assert len(no_face) == 300 - len(BAD) - faces["path"].nunique()

    labels = [c for c in frame.columns if c not in ("path", "frame", "timestamp", "error", "label", "score")]
    labels = [c for c in labels if c not in ("face", "x", "y", "w", "h")]
    by_key = {(r["file"], tuple(r["box"])): r for r in expected}
    for row in faces.itertuples(index=False):
        rec = by_key[(row.path, (row.x, row.y, row.w, row.h))]
        assert row.label == rec["label"]
        assert max(abs(getattr(row, n) - rec["probs"][n]) for n in labels) < 1e-4

    # Re-run: everything is there, nothing is recomputed.
    again = predict_ray([str(folder)], out, detector="haar", workers=2, partition_size=40, progress=False)
    assert again.done_partitions == 0 and again.skipped_partitions == report.partitions
    # Lose one partition (an interrupted job): only that one is written again, same rows.
    (out / "part-00003.parquet").unlink()
    resumed = predict_ray([str(folder)], out, detector="haar", workers=2, partition_size=40, progress=False)
    assert resumed.done_partitions == 1 and resumed.images == 40
    assert read_results(out).equals(frame)
    assert json.loads((out / MANIFEST).read_text())["partitions"][0][0].endswith("img0000.png")


@pytest.mark.slow
def test_ray_reads_videos_and_uris(tmp_path, ray_cluster):
    from ferkit.scale import predict_ray, read_results
    from ferkit.synth import Actor, write_video

    grace = cv2.cvtColor(cv2.imread(str(GRACE)), cv2.COLOR_BGR2GRAY)[40:440, 60:460]
    folder = tmp_path / "clips"
    folder.mkdir()
    actor = Actor({"happy": grace}, [(0.0, "happy")], (100, 100), (300, 200), size=160)
    write_video(folder / "walk.mp4", [actor], seconds=3.0, fps=10)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    from ferkit.runtime.catalog import resolve_model

    mine = tmp_path / "mine.onnx"  # a user's model file: it travels to the workers as bytes
    mine.write_bytes(resolve_model("fast").read_bytes())
    report = predict_ray(
        [f"file://{folder}"], tmp_path / "out", model=mine, detector="haar", workers=1, progress=False
    )
    frame = read_results(tmp_path / "out")
    rows = frame[frame["path"].str.endswith("walk.mp4")]
    assert sorted(rows["frame"].unique()) == [0, 10, 20]  # one sampled frame a second
    assert rows["face"].notna().all()
    assert np.allclose(sorted(rows["timestamp"].unique()), [0, 1, 2], atol=0.01)
    assert [Path(p).name for p, _ in report.failed] == ["broken.mp4"]
    assert "cannot open video" in report.failed[0][1]


@pytest.mark.slow
def test_ray_cli_reports_failures_and_strict(tmp_path, ray_cluster):
    import shutil

    from typer.testing import CliRunner

    from ferkit.cli import app

    folder = tmp_path / "few"
    folder.mkdir()
    shutil.copy(GRACE, folder / "grace.jpg")
    (folder / "empty.png").write_bytes(b"")
    args = ["predict", str(folder), "--engine", "ray", "--out", str(tmp_path / "out"), "--detector", "haar"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 partition(s) written, 0 already done; 2 file(s), 1 face(s), 1 failed" in result.output
    assert "empty.png: file is empty" in result.output
    again = CliRunner().invoke(app, [*args, "--strict"])  # nothing left to do, nothing failed this run
    assert again.exit_code == 0 and "0 partition(s) written, 1 already done" in again.output
    (tmp_path / "out" / "part-00000.parquet").unlink()
    assert CliRunner().invoke(app, [*args, "--strict"]).exit_code == 1


@pytest.mark.slow
def test_ray_runs_are_quiet_unless_verbose(tmp_path):
    """A successful Ray run prints ferkit's summary only; ferkit -v shows Ray's own log lines."""
    pytest.importorskip("ray", reason='the Ray engine is optional: pip install "ferkit[scale]"')
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(GRACE, folder / "a.jpg")
    env = {k: v for k, v in os.environ.items() if k != "FERKIT_VERBOSE"}
    runs = {}
    for flags in ([], ["-v"]):
        cmd = [sys.executable, "-m", "ferkit", *flags, "predict", str(folder), "--engine", "ray"]
        runs[bool(flags)] = subprocess.run(
            [*cmd, "--out", str(tmp_path / f"out{len(flags)}")], capture_output=True, text=True, env=env
        )
    quiet, loud = runs[False], runs[True]
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert "1 file(s), 1 face(s), 0 failed" in quiet.stderr
    lines = [line for line in quiet.stderr.splitlines() if line.strip()]
    assert not [line for line in lines if "INFO" in line or "WARNING" in line or " E " in line], lines
    assert "INFO" in loud.stderr  # Ray's own words, when asked for


def test_a_ray_worker_runs_detector_and_model_on_its_one_cpu(tmp_path):
    """Ray gives each worker one CPU: a detector on two threads (BlazeFace's default) made two
    workers on two cores no faster than one (76 vs 80 images/s in bench/scale.py)."""
    from ferkit.scale.ray_predict import PartitionWorker, RecognizeOptions

    worker = PartitionWorker(RecognizeOptions(None, detector="blazeface", model_name="fast"), str(tmp_path))
    rec = worker.recognizer
    assert rec.classifier.session.get_session_options().intra_op_num_threads == 1
    assert rec.detector.model.session.get_session_options().intra_op_num_threads == 1
