"""Progress bars: a total learnt while reading, a bar that ends when its loop is left, and
`ferkit video` showing frames, rate and ETA on a terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from skimage import data

from ferkit.progress import progress_iter
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
