"""Nothing the user gave is overwritten: outputs checked against inputs, each other, the run's
own files and existing files of another kind. Real processes on real files."""

from __future__ import annotations

import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from matplotlib import cbook

from ferkit.errors import FerkitError
from ferkit.outputs import check_outputs, is_ours_png, mark_png

GRACE = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
FERKIT = [sys.executable, "-m", "ferkit"]


def ferkit(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*FERKIT, *map(str, args)], capture_output=True, text=True)


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(GRACE, folder / "a.jpg")
    cv2.imwrite(str(folder / "p.png"), np.full((64, 64, 3), 80, np.uint8))
    return folder


def test_csv_onto_the_input_photo_is_refused(photos):
    before = (photos / "a.jpg").read_bytes()
    r = ferkit("predict", photos / "a.jpg", "--csv", photos / "a.jpg")
    assert r.returncode == 2 and "--csv" in r.stderr and "that is an input" in one_line(r.stderr)
    assert (photos / "a.jpg").read_bytes() == before


def test_annotations_into_the_input_folder_are_refused(photos):
    before = (photos / "p.png").read_bytes()
    for args in ([photos], [photos / "a.jpg", photos / "p.png"]):  # the folder, or files in it
        r = ferkit("predict", *args, "--annotate", photos)
        assert r.returncode == 2 and "--annotate" in r.stderr, r.stderr
    assert (photos / "p.png").read_bytes() == before


def test_two_outputs_on_one_path_are_refused(photos, tmp_path):
    r = ferkit("predict", photos / "a.jpg", "--csv", tmp_path / "x", "--json", tmp_path / "x")
    assert r.returncode == 2 and "--json and --csv name the same path" in one_line(r.stderr)
    assert not (tmp_path / "x").exists()


def test_a_foreign_file_is_replaced_only_with_overwrite(photos, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    r = ferkit("predict", photos / "a.jpg", "--csv", notes)
    assert r.returncode == 2 and "not a ferkit csv output" in one_line(r.stderr) and "--overwrite" in r.stderr
    assert notes.read_text() == "my notes\n"
    r = ferkit("predict", photos / "a.jpg", "--csv", notes, "--overwrite")
    assert r.returncode == 0 and notes.read_text().startswith("file,x,y,w,h,")
    r = ferkit("predict", photos / "a.jpg", "--csv", notes)  # its own kind now: a re-run replaces it
    assert r.returncode == 0


def test_annotated_copies_replace_only_their_own_files(photos, tmp_path):
    out = tmp_path / "annotated"
    out.mkdir()
    mine = out / "a.png"
    cv2.imwrite(str(mine), np.zeros((8, 8, 3), np.uint8))  # someone's picture, same name
    before = mine.read_bytes()
    r = ferkit("predict", photos / "a.jpg", "--annotate", out)
    assert r.returncode == 0 and "annotated copy not written" in one_line(r.stderr)
    assert mine.read_bytes() == before
    mine.unlink()
    assert ferkit("predict", photos / "a.jpg", "--annotate", out).returncode == 0
    assert is_ours_png(mine.read_bytes())
    assert cv2.imread(str(mine)).shape[:2] == cv2.imread(str(GRACE)).shape[:2]  # a valid PNG
    r = ferkit("predict", photos / "a.jpg", "--annotate", out)  # a re-run replaces its own copy
    assert r.returncode == 0 and "not written" not in r.stderr


def test_video_out_onto_its_input_is_refused(tmp_path):
    from ferkit.synth import Actor, write_video

    face = cv2.cvtColor(cv2.imread(str(GRACE)), cv2.COLOR_BGR2RGB)
    src = tmp_path / "clip.mp4"
    write_video(src, [Actor({"x": face}, [(0.0, "x")], (50, 50), (60, 60))], seconds=0.4, fps=10)
    before = src.read_bytes()
    r = ferkit("video", src, "--out", src)
    assert r.returncode == 2 and "--out" in r.stderr and "that is an input" in one_line(r.stderr)
    assert src.read_bytes() == before
    notes = tmp_path / "notes.csv"
    notes.write_text("name,phone\n")
    r = ferkit("video", src, "--csv", notes)
    assert r.returncode == 2 and notes.read_text() == "name,phone\n"


def test_export_never_writes_over_the_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: x\n")
    r = ferkit("export", run, "--out", run / "config.yaml")
    assert r.returncode == 2 and "ends in .onnx" in one_line(r.stderr)
    assert (run / "config.yaml").read_text() == "model: x\n"
    (run / "model.onnx").write_bytes(b"\x08\x07")  # an ONNX-looking file of the run itself
    with pytest.raises(FerkitError, match="belongs to the source"):
        check_outputs({"--out": (run / "model.onnx", "onnx")}, [run], protected=[run / "model.onnx"])


def test_a_missing_named_input_fails_the_command(photos, tmp_path):
    r = ferkit("predict", photos / "a.jpg", tmp_path / "nothere.jpg")
    assert r.returncode == 1 and "nothere.jpg: no such file" in one_line(r.stderr)
    r = ferkit("predict", photos)  # a folder: bad files inside are skipped and named, exit 0
    assert r.returncode == 0


def test_hard_links_and_symlinks_count_as_the_input(photos, tmp_path):
    link = tmp_path / "link.csv"
    link.symlink_to(photos / "a.jpg")
    with pytest.raises(FerkitError, match="that is an input"):
        check_outputs({"--csv": (link, "csv")}, [photos / "a.jpg"])
    hard = tmp_path / "hard.csv"
    hard.hardlink_to(photos / "a.jpg")
    with pytest.raises(FerkitError, match="that is an input"):
        check_outputs({"--csv": (hard, "csv")}, [photos / "a.jpg"])


def test_png_marker_keeps_the_png_valid():
    ok, png = cv2.imencode(".png", np.arange(48, dtype=np.uint8).reshape(6, 8))
    marked = mark_png(png.tobytes())
    assert is_ours_png(marked) and not is_ours_png(png.tobytes())
    decoded = cv2.imdecode(np.frombuffer(marked, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(decoded, np.arange(48, dtype=np.uint8).reshape(6, 8))
