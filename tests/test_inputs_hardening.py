"""Hostile and odd inputs on the command line and in datasets: real files, real processes.

Decompression bombs, special files, oversized files, bad symlinks, out-of-range CSV pixels,
unknown label folders, clean one-line errors, and predict outputs that survive a stop.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from matplotlib import cbook
from typer.testing import CliRunner

from conftest import default_stop_signals
from ferkit.cli import app
from ferkit.data import load_dataset
from ferkit.errors import DataError
from ferkit.imageio import read_image
from ferkit.synth import png_bomb

GRACE = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
FERKIT = [sys.executable, "-m", "ferkit"]


# A small launcher reports its child's peak RSS: measured from pytest itself, ru_maxrss would
# count the (large) pytest process the child was forked from.
_LAUNCH = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)"
)


def run_measured(args: list[str]) -> tuple[int, str, float]:
    """Run a command; return its exit code, stderr and peak RSS (MB)."""
    done = subprocess.run([sys.executable, "-c", _LAUNCH, *args], capture_output=True, text=True)
    *err, peak = done.stderr.rstrip().splitlines()
    return done.returncode, "\n".join(err), int(peak) / 1024


def test_bomb_is_refused_by_predict_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(30000, 30000))
    assert bomb.stat().st_size < 200_000
    code, err, peak = run_measured([*FERKIT, "predict", str(bomb), "--detector", "haar", "--strict"])
    assert code == 1
    assert "bomb.png: image declares 30000x30000 (900,000,000 pixels), over the 50,000,000-pixel limit" in (
        " ".join(err.split())
    )
    assert peak < 300  # was 5.4 GB (the whole command: Python, OpenCV, ONNX Runtime, the detector)


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    img = tmp_path / "g.jpg"
    shutil.copy(GRACE, img)
    monkeypatch.setenv("FERKIT_MAX_PIXELS", "1000")
    with pytest.raises(
        DataError, match=r"g.jpg: image is 512x600 \(307,200 pixels\), over the 1,000-pixel limit"
    ):
        read_image(str(img))
    assert read_image(str(img), max_pixels=400_000).shape == (600, 512)


def test_special_files_are_refused_not_read(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="pipe.jpg: is a FIFO"):
        read_image(str(fifo))  # used to hang forever
    with pytest.raises(DataError, match="/dev/zero: is a character device"):
        read_image("/dev/zero")  # used to read until MemoryError
    with pytest.raises(DataError, match="is a folder"):
        read_image(str(tmp_path))


def test_files_over_the_size_limit_are_refused(tmp_path, monkeypatch):
    img = tmp_path / "big.jpg"
    shutil.copy(GRACE, img)
    monkeypatch.setenv("FERKIT_MAX_FILE_BYTES", "1000")
    with pytest.raises(DataError, match=r"big.jpg: file is [\d,]+ bytes, over the 1,000-byte limit"):
        read_image(str(img))


def test_bad_symlinks_and_special_files_are_reported_and_fail_strict(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(GRACE, folder / "ok.jpg")
    (folder / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    os.mkfifo(folder / "fifo.jpg")
    given = [str(folder / "ok.jpg"), str(folder / "dangling.jpg"), str(folder / "loop.jpg"), "/dev/zero"]
    for inputs in ([str(folder)], given):
        result = CliRunner().invoke(app, ["predict", *inputs, "--detector", "haar"])
        out = " ".join(result.output.split())
        # Inside a folder a bad file is skipped and named; named on the command line it fails it.
        assert result.exit_code == (0 if inputs == [str(folder)] else 1), result.output
        assert "dangling.jpg: broken symlink" in out and "loop.jpg: symlink loop" in out
        strict = CliRunner().invoke(app, ["predict", *inputs, "--detector", "haar", "--strict"])
        assert strict.exit_code == 1
    assert "fifo.jpg: is a FIFO (named pipe), not a regular file" in " ".join(
        CliRunner().invoke(app, ["predict", str(folder), "--detector", "haar"]).output.split()
    )


def test_folder_dataset_with_a_fifo_and_a_bomb_skips_both(tmp_path):
    import cv2
    import numpy as np

    for label in ("happy", "sad"):
        (tmp_path / label).mkdir()
        for i in range(3):
            cv2.imwrite(str(tmp_path / label / f"{i}.png"), np.full((48, 48), 40 * i, np.uint8))
    os.mkfifo(tmp_path / "happy" / "pipe.png")
    (tmp_path / "sad" / "bomb.png").write_bytes(png_bomb(20000, 20000))
    ds = load_dataset(tmp_path, on_error="skip", cache=False)
    problems = {os.path.basename(s.source): s.problem for s in ds.skipped}
    assert len(ds) == 6 and set(problems) == {"pipe.png", "bomb.png"}
    assert "FIFO" in problems["pipe.png"] and "pixel limit" in problems["bomb.png"]


@pytest.mark.parametrize("value", ["65636", "-65436", "256", "-1", "1.5"])  # int16 wrapped the first two
def test_out_of_range_csv_pixels_are_errors(tmp_path, value):
    pixels = ["100"] * 2304
    pixels[7] = value
    path = tmp_path / "fer.csv"
    path.write_text(f"emotion,pixels,Usage\n3,{' '.join(pixels)},Training\n")
    with pytest.raises(
        DataError, match=rf"line 2: pixel 8 (is {value}, outside 0..255|is not a number: '1.5')"
    ):
        load_dataset(path, cache=False)


def test_unknown_label_folder_is_an_error_that_says_how_to_go_custom(tmp_path):
    import cv2
    import numpy as np

    for label in ("happy", "sad", "bored"):
        (tmp_path / label).mkdir()
        cv2.imwrite(str(tmp_path / label / "a.png"), np.zeros((48, 48), np.uint8))
    with pytest.raises(DataError, match=r"\['bored'\] are not emotions ferkit knows.*labels='custom'"):
        load_dataset(tmp_path, cache=False)
    custom = load_dataset(tmp_path, labels="custom", cache=False)
    assert custom.label_set.names == ("bored", "happy", "sad") and len(custom) == 3
    result = CliRunner().invoke(app, ["data", "info", str(tmp_path)])
    assert result.exit_code != 0 and "--labels custom" in " ".join(str(result.exception).split())


@pytest.mark.parametrize(
    "args, message",
    [
        (["predict", GRACE, "--model", "fsat"], "did you mean 'fast'?"),
        (["predict", GRACE, "--detector", "hoog"], "unknown face detector 'hoog'; did you mean 'hog'?"),
        (["predict", GRACE, "--tta", "flp"], "unknown TTA mode 'flp'; did you mean 'flip'?"),
        (["eval", "fast", "--data", "x.csv", "--tta", "rotate"], "unknown TTA mode 'rotate'"),
        (["predict", GRACE, "--batch-size", "0"], "Invalid value for '--batch-size'"),
        (["predict", GRACE, "--annotate", GRACE], "that is an input"),
    ],
)
def test_clean_one_line_errors(args, message):
    done = subprocess.run([*FERKIT, *args], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert message in " ".join(done.stderr.split())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet99"], "unknown model architecture 'resnet99'; did you mean 'resnet50'"),
        (["--model", "vgg_fer", "--data", "missing.csv"], "missing.csv: file or folder not found"),
        (["--model", "vgg_fer", "--batch_size", "0"], "must be positive"),
    ],
)
def test_train_errors_leave_no_run_folder(tmp_path, args, message):
    out = tmp_path / "run"
    data = ["--data", str(GRACE)] if "--data" not in args else []
    done = subprocess.run([*FERKIT, "train", *data, *args, "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert message in " ".join(done.stderr.split())
    assert not out.exists()


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_predict_keeps_rows_on_a_stop_and_resumes(tmp_path, signame):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(150):
        os.link(GRACE, folder / f"g{i:03d}.jpg") if i else shutil.copy(GRACE, folder / "g000.jpg")
    table, records = tmp_path / "faces.csv", tmp_path / "faces.jsonl"
    args = [
        *FERKIT,
        "predict",
        str(folder),
        "--detector",
        "haar",
        "--csv",
        str(table),
        "--json",
        str(records),
    ]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_stop_signals
    )
    # Readiness, not a clock: stop it once a dozen rows are written (a busy machine is slower).
    while proc.poll() is None and (not table.exists() or table.read_text().count("\n") < 12):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate()
    assert proc.returncode == 130, err
    assert "continue with --resume" in err
    rows = list(csv.DictReader(table.open()))
    assert 10 <= len(rows) < 150 and len(records.read_text().splitlines()) == len(rows)

    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "file(s) already in the outputs are skipped" in resumed.stderr
    rows = list(csv.DictReader(table.open()))
    files = [r["file"] for r in rows]
    assert len(files) == len(set(files)) == 150  # each image once, none lost, none twice
    jsonl = [json.loads(line)["file"] for line in records.read_text().splitlines()]
    assert sorted(jsonl) == sorted(files)


def test_resume_drops_a_half_written_last_file(tmp_path):
    from ferkit.runtime.recognize import Face
    from ferkit.runtime.writers import FaceRowWriter

    labels = ["happy", "sad"]
    face = Face((1, 2, 3, 4), 0.9, {"happy": 0.7, "sad": 0.3}, "happy")
    out = tmp_path / "f.csv"
    with FaceRowWriter(labels, csv_path=out) as w:
        w.write("a.jpg", [face])
        w.write("b.jpg", [face, face])
    with open(out, "a") as f:
        f.write("b.jpg,1,2,3")  # a kill mid-row
    with FaceRowWriter(labels, csv_path=out, resume=True) as w:
        assert w.done == {"a.jpg"}  # b.jpg may be incomplete: done again
        w.write("b.jpg", [face, face])
    assert [r["file"] for r in csv.DictReader(out.open())] == ["a.jpg", "b.jpg", "b.jpg"]
    with pytest.raises(DataError, match="columns are not this run's"):
        FaceRowWriter(["x"], csv_path=out, resume=True)


class _StopAfterFlush:
    """An output file whose flush is followed at once by a signal to this process."""

    def __init__(self, f, signum):
        self._f, self._signum = f, signum

    def flush(self):
        self._f.flush()
        os.kill(os.getpid(), self._signum)  # lands between the CSV's rows and the JSONL's

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_stop_during_a_write_waits_for_every_output(tmp_path, signame):
    """A stop that comes while one image's rows are written is delivered after they are in
    both outputs: a stopped run's CSV and JSONL hold the same files."""
    from ferkit.runtime.recognize import Face
    from ferkit.runtime.writers import FaceRowWriter
    from ferkit.utils import stop_signals

    labels = ["happy", "sad"]
    face = Face((1, 2, 3, 4), 0.9, {"happy": 0.7, "sad": 0.3}, "happy")
    table, records = tmp_path / "f.csv", tmp_path / "f.jsonl"
    # Ctrl-C raises KeyboardInterrupt, as in a terminal (a test run started in a script's
    # background inherits SIGINT ignored)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with stop_signals(), FaceRowWriter(labels, csv_path=table, jsonl_path=records) as w:
            w.write("a.jpg", [face])
            w._files["csv"] = _StopAfterFlush(w._files["csv"], getattr(signal, signame))
            with pytest.raises(KeyboardInterrupt):
                w.write("b.jpg", [face, face])
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back
    finally:
        signal.signal(signal.SIGINT, outer)
    files = [r["file"] for r in csv.DictReader(table.open())]
    assert files == ["a.jpg", "b.jpg", "b.jpg"]
    assert [json.loads(line)["file"] for line in records.read_text().splitlines()] == files


def test_ordinary_runs_are_quiet(tmp_path):
    import cv2

    img = cv2.imread(GRACE)
    png = cv2.imencode(".png", img)[1].tobytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    shutil.copy(GRACE, tmp_path / "ok.jpg")
    env = {k: v for k, v in os.environ.items() if k not in ("FERKIT_VERBOSE", "OPENCV_LOG_LEVEL")}
    done = subprocess.run([*FERKIT, "predict", str(tmp_path)], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "cut.png: not a readable image (truncated PNG" in done.stderr
    noise = ("INFO", "libpng error", "[ WARN", "WARNING")
    assert not any(n in done.stderr for n in noise), done.stderr
    # (ferkit -v letting other libraries speak is tested with Ray, the chattiest: test_scale.py)


def test_train_without_its_extra_says_which_to_install():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in ('yaml', 'torch'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = ['ferkit', 'train', '--data', 'x.csv']\n"
        "from ferkit.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        'training needs its extra: pip install "ferkit[train]" torch==2.13.0 (yaml is missing)' in done.stderr
    )


def test_eval_writes_under_the_cache_not_the_current_folder(tmp_path, shared):
    if not (shared / "fer2013.tar.gz").exists():
        pytest.skip("needs ../shared/datasets")
    done = subprocess.run(
        [*FERKIT, "eval", "tiny", "--data", str(shared / "fer2013.tar.gz")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=os.environ | {"FERKIT_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "cache"]
    assert list((tmp_path / "cache" / "eval").glob("*/eval.json"))
