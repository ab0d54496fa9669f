"""The `[app]` extra alone runs every page: a fresh virtualenv with `pip install ".[app]"` (no
dev or train extras) serves the live stream and the mirror game over WebSockets."""

from __future__ import annotations

import json
import subprocess
import threading
import venv
from pathlib import Path

import cv2
import pytest
import websocket  # websocket-client, in the test environment only (not in the venv)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def app_venv(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("app-venv")
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{ROOT}[app]"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return where


@pytest.mark.slow
def test_app_extra_alone_streams_frames_and_plays_a_game(app_venv):
    listed = subprocess.run(
        [str(app_venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "wsproto" in installed and not {"torch", "selenium", "pytest", "websocket-client"} & installed

    server = subprocess.Popen(
        [str(app_venv / "bin" / "ferkit"), "serve", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=app_venv,  # not the checkout: the installed package only
    )
    try:
        lines = []
        for line in server.stderr:  # readiness: the server's own line
            lines.append(line)
            if line.startswith("ferkit: serving "):
                break
        assert lines and lines[-1].startswith("ferkit: serving "), "".join(lines)
        assert "WebSocket wsproto" in lines[-1]
        threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
        url = lines[-1].split()[2].replace("http", "ws")

        from skimage import data

        face = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
        ws = websocket.create_connection(url + "/api/v1/stream", timeout=60)
        ws.send_binary(face)
        reply = json.loads(ws.recv())
        ws.close()
        assert len(reply["faces"]) == 1 and reply["faces"][0]["label"] == "happy", reply

        ws = websocket.create_connection(url + "/api/v1/game", timeout=60)
        setup = {"player": "venv", "rounds": 1, "expressions": ["happy"], "countdown": 0, "seed": 1}
        ws.send(json.dumps(setup))
        assert json.loads(ws.recv())["phase"] in ("countdown", "playing")
        for _ in range(200):
            ws.send_binary(face)
            msg = json.loads(ws.recv())
            if msg.get("phase") == "over" and "summary" in msg:
                break
        ws.close()
        assert msg["summary"]["results"][0]["outcome"] == "hit" and msg["game_id"] is not None
    finally:
        server.terminate()
        server.wait(10)


def test_serve_refuses_to_start_without_a_websocket_library(monkeypatch):
    import importlib.util

    from ferkit.app.server import websocket_library
    from ferkit.errors import FerkitError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("wsproto", "websockets") else real(name, *a),
    )
    with pytest.raises(FerkitError, match=r'needs a WebSocket library .* pip install "ferkit\[app\]"'):
        websocket_library()
