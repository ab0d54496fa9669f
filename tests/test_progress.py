"""Progress bars: a total learnt while reading, a bar that ends when its loop is left, and
`ferkit video` showing frames, rate and ETA on a terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from skimage import data

from ferkit.evaluate.run import _classified
from ferkit.progress import progress_iter
from ferkit.runtime.tta import predict_tta
from ferkit.synth import Actor, write_video


def test_a_total_learnt_while_reading_fills_the_bar(capsys):
    known: list[int] = []

    def source():
        known.append(7)  # like a video, whose frame count is read when it opens
        yield from range(7)

    got = list(
        progress_iter(source(), description="frames", total=lambda: known[0] if known else None, enabled=True)
    )
    assert got == list(range(7))
    final = capsys.readouterr().err
    assert re.search(r"frames .* 7/7 +100%", final), final


def test_a_source_that_ends_early_shows_how_far_it_got(capsys):
    list(progress_iter(iter(range(3)), description="frames", total=lambda: 10, enabled=True))
    final = capsys.readouterr().err
    assert re.search(r"3/10 +30%", final), final


def test_units_count_what_each_item_holds(capsys):
    batches = [list(range(256)), list(range(256)), list(range(37))]
    list(progress_iter(batches, description="faces", total=549, units=len, enabled=True))
    assert re.search(r"549/549 +100%", capsys.readouterr().err)


class _Recorder:
    """A predictor that records the batches it is given and answers from the pixels."""

    name, labels, input_size = "recorder", ("a", "b", "c"), 8

    def __init__(self):
        self.batches: list[int] = []

    def predict_proba(self, faces, batch_size=256):
        out = []
        for i in range(0, len(faces), batch_size):
            batch = np.asarray(faces[i : i + batch_size], np.float32)
            self.batches.append(len(batch))
            out.append(np.stack([batch.mean((1, 2)), batch.std((1, 2)), batch[:, 0, 0]], 1))
        return np.concatenate(out)


@pytest.mark.parametrize("tta", ["none", "flip", "tencrop"])
def test_evaluation_under_a_bar_sees_the_same_batches_and_numbers(tta):
    """eval classifies in chunks to move its bar; the chunks end where predict_tta's own
    batches end, so a model sees the same batches (and gives the same numbers) as in one call."""
    faces = np.random.default_rng(0).integers(0, 256, (1300, 8, 8), dtype=np.uint8)
    whole, chunked = _Recorder(), _Recorder()
    expected = predict_tta(whole, faces, tta)
    got = _classified(chunked, faces, tta)
    assert chunked.batches == whole.batches
    np.testing.assert_array_equal(got, expected)


def test_leaving_the_loop_ends_the_bar():
    """A q in the video window breaks the loop; closing the iterator must stop the live
    display, or the next bar in the process fails (rich allows one live display at a time)."""
    shown = progress_iter(iter(range(100)), description="frames", total=100, enabled=True)
    assert next(shown) == 0 and next(shown) == 1
    shown.close()
    assert list(progress_iter(range(3), description="again", enabled=True)) == [0, 1, 2]


def test_off_unless_asked_or_on_a_terminal(capsys):
    assert list(progress_iter(range(3), description="images", enabled=False)) == [0, 1, 2]
    assert list(progress_iter(range(3), description="images")) == [0, 1, 2]  # stderr is captured
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_video_on_a_terminal_shows_frames_rate_and_eta(tmp_path):
    clip = tmp_path / "clip.mp4"
    face = data.astronaut()[30:230, 120:320]
    write_video(
        clip, [Actor({"happy": face}, [(0.0, "happy")], (40, 150), (440, 170), 150)], seconds=2, fps=25
    )
    leader, follower = os.openpty()
    cmd = [sys.executable, "-m", "ferkit", "video", str(clip), "--csv", str(tmp_path / "f.csv")]
    env = dict(os.environ, COLUMNS="120")
    with subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower, env=env
    ) as run:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert run.wait() == 0
    os.close(leader)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert re.search(r"frames .* 50/50 +100% +\d+/s .*ETA", screen), screen[-2000:]
    assert "50 frame(s)" in screen
