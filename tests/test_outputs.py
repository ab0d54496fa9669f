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
    return subprocess.run([*FERKIT, *map(str, args)], capture_output=True, text=True, errors="replace")


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


def test_odd_file_names_are_written_losslessly_and_resume_without_duplicates(tmp_path):
    import csv
    import json
    import os

    folder = tmp_path / "odd"
    folder.mkdir()
    names = [b"latin1_\xe9t\xe9.jpg", b"=cmd.jpg", b"-1+2.jpg", b"new\nline.jpg", b"'quoted.jpg"]
    for name in names:
        shutil.copy(GRACE, os.path.join(os.fsencode(folder), name))
    out_csv, out_json = tmp_path / "faces.csv", tmp_path / "faces.jsonl"
    r = ferkit("predict", folder, "--csv", out_csv, "--json", out_json, "--detector", "none")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    raw = out_csv.read_bytes()
    assert b"latin1_\xe9t\xe9.jpg" in raw  # the name's own bytes
    with open(out_csv, newline="", encoding="utf-8", errors="surrogateescape") as f:
        cells = [row[0] for row in csv.reader(f)][1:]
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)  # no formula for a spreadsheet
    assert {os.fsencode(c[1:] if c.startswith("'") else c) for c in cells} == {
        os.path.join(os.fsencode(folder), n) for n in names
    }
    records = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert {os.fsencode(rec["file"]) for rec in records} == {
        os.path.join(os.fsencode(folder), n) for n in names
    }
    before = out_csv.read_bytes()
    for _ in range(2):  # resumed twice: every file is already there, nothing is added
        r = ferkit("predict", folder, "--csv", out_csv, "--json", out_json, "--detector", "none", "--resume")
        assert r.returncode == 0, r.stderr
    after = out_csv.read_bytes()
    assert after.count(b"\n") == before.count(b"\n") and len(after) == len(before)


def test_a_full_disk_is_a_clear_error(photos, tmp_path):
    r = ferkit("predict", photos / "a.jpg", "--csv", "/dev/full", "--overwrite")
    assert r.returncode == 2 and "/dev/full: cannot write output (No space left on device)" in r.stderr
    assert "Traceback" not in r.stderr
    from ferkit.synth import Actor, write_video

    face = cv2.cvtColor(cv2.imread(str(GRACE)), cv2.COLOR_BGR2RGB)
    src = tmp_path / "clip.mp4"
    write_video(src, [Actor({"x": face}, [(0.0, "x")], (50, 50), (60, 60))], seconds=0.4, fps=10)
    full = tmp_path / "full.mp4"
    full.symlink_to("/dev/full")
    r = ferkit("video", src, "--out", full, "--overwrite")
    assert r.returncode == 2 and "full.mp4: cannot write this video format" in one_line(r.stderr)
    assert "wrote" not in r.stderr


def test_a_write_that_fails_mid_run_names_the_file(tmp_path):
    import errno

    from ferkit.errors import DataError
    from ferkit.runtime.recognize import Face
    from ferkit.runtime.writers import FaceRowWriter

    face = Face((1, 2, 3, 4), 0.9, {"happy": 0.9, "sad": 0.1}, "happy")
    with FaceRowWriter(["happy", "sad"], jsonl_path=tmp_path / "f.jsonl") as writer:
        writer.write("a.jpg", [face])
        handle = writer._files["jsonl"]

        def full(_text):
            raise OSError(errno.ENOSPC, "No space left on device")

        handle.write = full
        with pytest.raises(DataError, match=r"f\.jsonl: cannot write output \(No space left on device\)"):
            writer.write("b.jpg", [face])
    assert (tmp_path / "f.jsonl").read_text().count("a.jpg") == 1  # what was written stays


def test_a_video_the_writer_failed_on_is_never_called_written(tmp_path):
    from ferkit.runtime.video import written_video_problem
    from ferkit.synth import Actor, write_video

    face = cv2.cvtColor(cv2.imread(str(GRACE)), cv2.COLOR_BGR2RGB)
    good = tmp_path / "good.mp4"
    write_video(good, [Actor({"x": face}, [(0.0, "x")], (50, 50), (60, 60))], seconds=0.4, fps=10)
    assert written_video_problem(good, 4) is None
    assert "holds" in written_video_problem(good, 40)  # fewer frames than were written
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 3])  # a disk that filled up
    assert written_video_problem(cut, 4) is not None
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    assert "empty" in written_video_problem(empty, 4)


def test_video_files_are_checked_and_fps_is_drawn_only_when_asked(tmp_path):
    from ferkit.synth import Actor, write_video

    face = cv2.cvtColor(cv2.imread(str(GRACE)), cv2.COLOR_BGR2RGB)
    src = tmp_path / "clip.mp4"
    write_video(src, [Actor({"x": face}, [(0.0, "x")], (50, 50), (60, 60))], seconds=0.4, fps=10)
    frames = {}
    for flag in ([], ["--show-fps"]):
        out = tmp_path / f"out{len(flag)}.mp4"
        r = ferkit("video", src, "--out", out, *flag)
        assert r.returncode == 0 and f"wrote {out} (4 frames)" in one_line(r.stderr), r.stderr
        cap = cv2.VideoCapture(str(out))
        frames[len(flag)] = cap.read()[1]
        cap.release()
    corner = (slice(0, 40), slice(0, 160))  # where the rate is drawn
    assert np.abs(frames[0][corner].astype(int) - frames[1][corner].astype(int)).mean() > 1


def test_unreadable_folders_are_failures_not_silence(tmp_path, monkeypatch):
    import os

    from ferkit.runtime.batch import expand_inputs

    top = tmp_path / "top"
    (top / "locked").mkdir(parents=True)
    shutil.copy(GRACE, top / "a.jpg")
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    paths, problems = expand_inputs([str(top)])
    assert paths == [str(top / "a.jpg")]
    assert [(p.path, p.error) for p in problems] == [
        (str(top / "locked"), "folder not readable (Permission denied)")
    ]
    paths, problems = expand_inputs([str(top / "locked")])  # a named folder: its own name
    assert paths == [] and problems[0].path == str(top / "locked")
