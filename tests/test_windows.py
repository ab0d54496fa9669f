"""Desktop windows without OpenCV's GUI: a browser app window fed by a local MJPEG stream, and
``ferkit mirror`` serving the game page to a kiosk window. A stand-in browser (a script named
by $FERKIT_BROWSER) records how it was started and talks to the URL it was given."""

import json
import os
import subprocess
import sys
import textwrap
import urllib.request

import cv2
import numpy as np
import pytest

from ferkit.runtime.display import BrowserWindow, open_app_window


def read_mjpeg_frames(url: str, n: int) -> list[np.ndarray]:
    frames, buf = [], b""
    with urllib.request.urlopen(url, timeout=10) as stream:
        while len(frames) < n:
            buf += stream.read(1024)
            start, end = buf.find(b"\xff\xd8"), buf.find(b"\xff\xd9")
            if start >= 0 and end > start:
                frames.append(cv2.imdecode(np.frombuffer(buf[start : end + 2], np.uint8), cv2.IMREAD_COLOR))
                buf = buf[end + 2 :]
    return frames


@pytest.fixture
def fake_browser(tmp_path, monkeypatch):
    """A 'browser' that logs its arguments, then runs BEHAVIOUR (python) with the --app URL."""
    log = tmp_path / "browser.json"
    script = tmp_path / "browser.py"

    def install(behaviour: str) -> os.PathLike:
        script.write_text(
            "#!"
            + sys.executable
            + "\n"
            + textwrap.dedent(f"""
            import json, sys, urllib.request
            args = sys.argv[1:]
            url = next(a.split("=", 1)[1] for a in args if a.startswith("--app="))
            json.dump(args, open({str(log)!r}, "w"))
            """)
            + textwrap.dedent(behaviour)
        )
        script.chmod(0o755)
        monkeypatch.setenv("FERKIT_BROWSER", str(script))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        return log

    return install


def test_app_window_flags_and_profile(fake_browser, tmp_path):
    log = fake_browser("")
    proc = open_app_window("http://127.0.0.1:1/x", kiosk=True)
    assert proc is not None and proc.wait(10) == 0
    args = json.loads(log.read_text())
    assert "--app=http://127.0.0.1:1/x" in args and "--kiosk" in args
    assert f"--user-data-dir={tmp_path / 'cache' / 'ferkit' / 'browser'}" in args  # its own profile


def test_browser_window_streams_frames_behind_a_token():
    window = BrowserWindow("test", open_window=False)
    try:
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:, :80] = (0, 0, 255)  # BGR red on the left
        window.show(frame)
        page = urllib.request.urlopen(window.url, timeout=10).read().decode()
        assert 'src="stream.mjpg"' in page
        (got,) = read_mjpeg_frames(window.url + "stream.mjpg", 1)
        assert got.shape == (120, 160, 3) and got[60, 20, 2] > 200 and got[60, 140, 2] < 50
        base = window.url.rsplit("/", 2)[0]
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(base + "/stream.mjpg", timeout=10)  # no token, no frames
        assert window.show(frame)
        urllib.request.urlopen(urllib.request.Request(window.url + "quit", method="POST"), timeout=10)
        assert not window.show(frame)  # q in the window stops the caller's loop
    finally:
        window.close()


def test_video_show_opens_a_browser_window_that_can_stop_it(fake_browser, tmp_path, monkeypatch):
    """Headless OpenCV: --show streams to an app window; the viewer reads frames, then presses q."""
    from skimage import data

    from ferkit.synth import Actor, write_video

    monkeypatch.delenv("DISPLAY", raising=False)
    src = tmp_path / "in.avi"
    face = data.astronaut()[30:230, 120:320]
    write_video(src, [Actor({"x": face}, [(0.0, "x")], (60, 120), (400, 140), size=150)], seconds=8, fps=25)
    frames_log = tmp_path / "frames.json"
    fake_browser(f"""
        import cv2, numpy as np
        buf, shapes = b"", []
        with urllib.request.urlopen(url + "stream.mjpg", timeout=30) as s:
            while len(shapes) < 3:
                buf += s.read(4096)
                a, b = buf.find(b"\\xff\\xd8"), buf.find(b"\\xff\\xd9")
                if a >= 0 and b > a:
                    shapes.append(cv2.imdecode(np.frombuffer(buf[a:b + 2], np.uint8), 1).shape)
                    buf = buf[b + 2:]
        json.dump(shapes, open({str(frames_log)!r}, "w"))
        urllib.request.urlopen(urllib.request.Request(url + "quit", method="POST"), timeout=10)
        """)
    proc = subprocess.run(
        [sys.executable, "-m", "ferkit", "video", str(src), "--show", "--csv", str(tmp_path / "f.csv")],
        capture_output=True,
        text=True,
        env={**os.environ, "FERKIT_BROWSER": os.environ["FERKIT_BROWSER"]},
    )
    assert proc.returncode == 0, proc.stderr
    assert "browser window" in proc.stderr
    assert json.loads(frames_log.read_text()) == [[480, 640, 3]] * 3
    n_rows = len((tmp_path / "f.csv").read_text().splitlines()) - 1
    assert 3 <= n_rows < 200  # stopped by q, before the 200 frames of the clip


def test_mirror_command_serves_the_game_to_a_kiosk_window(fake_browser, tmp_path):
    page = tmp_path / "page.html"
    fake_browser(f"""
        open({str(page)!r}, "w").write(urllib.request.urlopen(url, timeout=30).read().decode())
        board = json.load(urllib.request.urlopen(url.split("/mirror.html")[0] + "/api/v1/leaderboard"))
        assert board == {{"games": []}}, board
        """)  # the window "closes" when this returns: the command ends
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ferkit",
            "mirror",
            "--player",
            "Ada",
            "--difficulty",
            "hard",
            "--rounds",
            "3",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},  # the game database goes under this HOME
    )
    assert proc.returncode == 0, proc.stderr
    args = json.loads((tmp_path / "browser.json").read_text())
    app_url = next(a for a in args if a.startswith("--app="))
    assert app_url.startswith("--app=http://127.0.0.1:") and "--kiosk" in args
    assert "camera=on" in app_url and "player=Ada" in app_url and "difficulty=hard" in app_url
    assert 'id="menu"' in page.read_text() and "Mirror" in page.read_text()


def test_mirror_command_refuses_an_unknown_level():
    proc = subprocess.run(
        [sys.executable, "-m", "ferkit", "mirror", "--difficulty", "insane", "--no-open"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "insane" in proc.stderr and "Traceback" not in proc.stderr
