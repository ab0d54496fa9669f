"""The web API with FastAPI's test client.

Good image, no face, corrupt, too large, wrong type, concurrent requests, the live stream.
"""

import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from matplotlib import cbook

from ferkit.app.server import AppConfig, create_app

with open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb") as _f:
    GRACE = _f.read()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    games = str(tmp_path_factory.mktemp("games") / "mirror.db")  # this module's games only
    config = AppConfig(max_upload_bytes=200_000, workers=2, allowed_hosts=("testserver",), game_db=games)
    return TestClient(create_app(config))


def post(client, data: bytes, name="photo.jpg", ctype="image/jpeg", **params):
    return client.post("/api/v1/analyze", files={"image": (name, io.BytesIO(data), ctype)}, params=params)


def test_health_and_models(client):
    assert client.get("/healthz").json()["status"] == "ok"
    info = client.get("/api/v1/models").json()
    from ferkit.runtime.catalog import default_model_name

    assert info["default"] == default_model_name() and info["serving"]["model"].endswith(
        f"{info['default']}.onnx"
    )
    assert info["models"][0]["metrics"]["PrivateTest"]["accuracy"] > 0.6
    assert "/api/v1/analyze" in client.get("/openapi.json").json()["paths"]


def test_analyze_finds_the_face(client):
    r = post(client, GRACE, annotate="true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (512, 600) and len(body["faces"]) == 1
    face = body["faces"][0]
    assert face["label"] in face["probs"] and abs(sum(face["probs"].values()) - 1) < 1e-3
    png = np.frombuffer(base64.b64decode(body["annotated_png_base64"]), np.uint8)
    assert cv2.imdecode(png, cv2.IMREAD_COLOR).shape == (600, 512, 3)


def test_no_face(client):
    blank = cv2.imencode(".png", np.full((240, 320, 3), 127, np.uint8))[1].tobytes()
    r = post(client, blank, "blank.png", "image/png")
    assert r.status_code == 200 and r.json()["faces"] == []


@pytest.mark.parametrize(
    "data, status, code",
    [
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, 422, "undecodable"),  # JPEG header, no image
        (b"%PDF-1.4 not an image", 415, "unsupported_type"),
        (b"", 422, "empty"),
        (b"\xff\xd8\xff" + b"\x00" * 300_000, 413, "too_large"),
    ],
    ids=["corrupt", "wrong-type", "empty", "too-large"],
)
def test_bad_uploads_get_json_errors(client, data, status, code):
    r = post(client, data, "../../etc/passwd.jpg")  # a hostile name is never used
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_concurrent_requests(client):
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: post(client, GRACE), range(16)))
    assert [r.status_code for r in results] == [200] * 16
    assert len({len(r.json()["faces"]) for r in results}) == 1


def test_stream_answers_frames_and_drops_stale_ones(client):
    frame = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(GRACE, np.uint8), cv2.IMREAD_COLOR))[1].tobytes()
    with client.websocket_connect("/api/v1/stream") as ws:
        for _ in range(6):  # a burst: the server keeps only the newest while busy
            ws.send_bytes(frame)
        first = ws.receive_json()
        assert len(first["faces"]) == 1
        ws.send_bytes(b"garbage")  # answered at once by the reader, never counted as a frame
        replies = [first]
        while "error" not in replies[-1]:
            replies.append(ws.receive_json())
        assert replies[-1]["error"]["code"] == "unsupported_type"
        ws.send_bytes(frame)

        def settled(r):  # the newest frame answered: every frame processed or dropped
            return r.get("received") == 7 and r["processed"] + r["dropped"] == 7

        while not settled(replies[-1]):
            assert len(replies) < 20
            replies.append(ws.receive_json())
        last = replies[-1]
        assert "faces" in last
        assert last["dropped"] >= 1  # the burst arrived while the first frame was being processed


def test_static_paths_cannot_escape(client):
    assert client.get("/static/../../pyproject.toml").status_code == 404


def test_pages_are_served_without_cdn(client):
    for path, text in (("/", "Analyze a photo"), ("/live.html", "getUserMedia"), ("/common.js", "drawFaces")):
        r = client.get(path)
        assert r.status_code == 200 and text in r.text
        assert "http://" not in r.text and "https://" not in r.text  # works offline: no CDN


def test_cors_is_off_unless_configured(client):
    headers = {"Origin": "http://elsewhere.example"}
    assert "access-control-allow-origin" not in client.get("/healthz", headers=headers).headers
    open_client = TestClient(
        create_app(AppConfig(cors_origins=("http://elsewhere.example",), workers=1, allowed_hosts=("*",)))
    )
    r = open_client.get("/healthz", headers=headers)
    assert r.headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_request_timeout_is_a_json_504():
    app = create_app(AppConfig(request_timeout=0.2, workers=1, allowed_hosts=("*",)))
    rec = app.state.pool.items.queue[0]
    real = rec.recognize

    def slow_recognize(image):  # sleeping frees the GIL, so the loop's timer fires on time
        time.sleep(1.0)
        return real(image)

    rec.recognize = slow_recognize
    r = post(TestClient(app), GRACE)
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"


def test_mirror_game_over_websocket(client):
    from skimage import data

    face = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
    blank = cv2.imencode(".jpg", np.full((240, 320, 3), 127, np.uint8))[1].tobytes()
    with client.websocket_connect("/api/v1/game") as ws:
        ws.send_json(
            {
                "player": "tester",
                "difficulty": "hard",
                "rounds": 2,
                "expressions": ["happy", "surprise"],
                "seed": 1,
                "countdown": 0,
            }
        )
        state = ws.receive_json()
        phases = []
        ws.send_bytes(blank)  # no face: the round pauses
        paused = ws.receive_json()
        assert paused["phase"] == "paused"
        while True:
            ws.send_bytes(face)  # a happy face throughout
            msg = ws.receive_json()
            phases.append(msg["phase"])
            if msg["phase"] == "over" and "summary" in msg:
                break
    outcomes = {r["target"]: r["outcome"] for r in msg["summary"]["results"]}
    assert outcomes == {"happy": "hit", "surprise": "miss"} and state["round"] == 1
    assert msg["leaderboard"][0]["player"] == "tester"
    assert client.get("/api/v1/leaderboard").json()["games"][0]["id"] == msg["game_id"]


def test_mirror_game_rejects_bad_setup(client):
    with client.websocket_connect("/api/v1/game") as ws:
        ws.send_json({"difficulty": "nightmare"})
        assert "difficulty must be one of" in ws.receive_json()["error"]["message"]


@pytest.mark.parametrize(
    "setup, problem",
    [
        ("[" * 2000 + "]" * 2000, "nested too deeply"),
        ('{"difficulty": []}', "difficulty must be one of"),
        ('{"difficulty": {}}', "difficulty must be one of"),
        ('{"rounds": 1' + "0" * 5000 + "}", "too long"),
        ("{" + " " * 9000 + "}", "characters; at most"),
        ("\ud800", "not JSON"),
    ],
    ids=["nested", "difficulty-list", "difficulty-object", "huge-number", "oversized", "lone-surrogate"],
)
def test_mirror_game_answers_hostile_setups_and_goes_on(client, setup, problem):
    with client.websocket_connect("/api/v1/game") as ws:
        ws.send_text(setup)
        assert problem in ws.receive_json()["error"]["message"]
        ws.send_json({"player": "after", "rounds": 1, "countdown": 0})  # the socket still works
        assert ws.receive_json()["phase"] in ("countdown", "playing")


def _play_one_round(ws, setup: dict) -> dict:
    from skimage import data

    face = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
    ws.send_json({"rounds": 1, "expressions": ["happy"], "countdown": 0, "seed": 1} | setup)
    ws.receive_json()
    while True:
        ws.send_bytes(face)
        msg = ws.receive_json()
        if msg["phase"] == "over" and "summary" in msg:
            return msg


def test_mirror_game_saves_a_player_name_with_a_lone_surrogate(client):
    with client.websocket_connect("/api/v1/game") as ws:
        ws.send_text('{"player": "ada\\ud800", "rounds": 1, "expressions": ["happy"], "countdown": 0}')
        ws.receive_json()
        msg = _play_one_round(ws, {"player": "ada\ud800".encode("utf-8", "replace").decode()})
    assert msg["game_id"] is not None and "error" not in msg
    assert msg["summary"]["results"][0]["outcome"] == "hit"


def test_analysis_works_and_game_results_still_reach_the_player_without_a_database(tmp_path, caplog):
    broken = tmp_path / "mirror.db"
    broken.write_bytes(b"this is not an SQLite database" * 100)
    app = create_app(AppConfig(workers=1, allowed_hosts=("testserver",), game_db=str(broken)))
    assert str(broken) in caplog.text and "will not be saved" in caplog.text
    c = TestClient(app)
    assert post(c, GRACE).status_code == 200
    r = c.get("/api/v1/leaderboard")
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_database"
    with c.websocket_connect("/api/v1/game") as ws:
        msg = _play_one_round(ws, {"player": "bob"})
    assert msg["game_id"] is None and msg["error"]["code"] == "not_saved"
    assert msg["summary"]["results"][0]["outcome"] == "hit"  # the result is not lost


def test_a_one_pixel_strip_is_answered(client):
    strip = cv2.imencode(".png", np.full((1, 3000, 3), 200, np.uint8))[1].tobytes()
    assert len(strip) < 200
    r = post(client, strip, "strip.png", "image/png")
    assert r.status_code == 200 and r.json()["faces"] == [] and r.json()["width"] == 3000


def test_annotated_copy_is_capped_in_size(client):
    from ferkit.app.api import ANNOTATED_MAX_SIDE

    big = cv2.imencode(".jpg", np.full((2400, 3600, 3), 90, np.uint8))[1].tobytes()
    r = post(client, big, annotate="true")
    assert r.status_code == 200 and r.json()["width"] == 3600
    png = base64.b64decode(r.json()["annotated_png_base64"])
    shrunk = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert shrunk.shape[:2] == (round(ANNOTATED_MAX_SIDE * 2400 / 3600), ANNOTATED_MAX_SIDE)


def test_a_silent_websocket_is_closed():
    app = create_app(AppConfig(workers=1, allowed_hosts=("testserver",), ws_idle_timeout=0.3))
    with TestClient(app).websocket_connect("/api/v1/stream") as ws:
        assert ws.receive_json()["error"]["code"] == "idle"  # nothing sent: the server ends it


def test_a_head_model_and_alignment_serve_like_any_other():
    """`--model wild --align eyes`: the head model (backbone + head) behind the same API."""
    app = create_app(AppConfig(model="wild", align="eyes", workers=1, allowed_hosts=("testserver",)))
    with TestClient(app) as client:
        assert client.get("/api/v1/models").json()["serving"]["model"].endswith("wild.onnx")
        r = post(client, GRACE)
        assert r.status_code == 200, r.text
        (face,) = r.json()["faces"]
        assert set(face["probs"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
        assert abs(sum(face["probs"].values()) - 1) < 1e-3
