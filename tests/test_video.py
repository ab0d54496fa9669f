import json

import numpy as np
import pytest

from conftest import count_looks, default_stop_signals
from ferkit.errors import FerkitError
from ferkit.runtime.recognize import Recognizer
from ferkit.runtime.video import SourceReport, process_video, read_frames
from ferkit.synth import Actor, write_video


@pytest.fixture(scope="module")
def face():
    from skimage import data

    return data.astronaut()[30:230, 120:320]  # her face with some margin


@pytest.fixture(scope="module")
def clip(tmp_path_factory, face):
    path = tmp_path_factory.mktemp("video") / "walk.mp4"
    actor = Actor({"happy": face}, [(0.0, "happy")], start=(40, 150), end=(440, 170), size=150)
    truth = write_video(path, [actor], seconds=3, fps=25)
    return path, truth


def test_video_tracking_keeps_one_id_and_follows_the_face(clip):
    path, truth = clip
    report = SourceReport()
    rec = Recognizer("default")
    frames = list(process_video(str(path), rec, report=report, detect_every=2))
    assert report.frames_read == len(truth) == 75 and not report.ended_early
    with_face = [f for f in frames if f.faces]
    assert len(with_face) >= 0.9 * len(frames)
    assert {face.id for f in frames for face in f.faces} == {1}
    errors = []
    for f in with_face:
        (x, y, w, h), gt = f.faces[0].box, truth[f.index].box
        errors.append(abs((x + w / 2) - (gt[0] + gt[2] / 2)) + abs((y + h / 2) - (gt[1] + gt[3] / 2)))
    assert np.median(errors) < 25  # pixels, detected and tracked-in-between frames alike
    assert any(not face.detected for f in frames for face in f.faces)  # some boxes came from tracking
    assert all(abs(sum(face.probs.values()) - 1) < 1e-4 for f in with_face for face in f.faces)


def test_timestamps_follow_the_frame_rate(clip):
    path, _ = clip
    times = [t for _, t, _ in read_frames(str(path))]
    assert abs(times[25] - times[0] - 1.0) < 0.05


def test_annotated_video_plays_at_the_source_rate(tmp_path, face):
    import cv2
    from typer.testing import CliRunner

    from ferkit.cli import app

    src, out = tmp_path / "slow.avi", tmp_path / "out.mp4"
    write_video(src, [Actor({"x": face}, [(0.0, "x")], (50, 50), (60, 60), size=150)], seconds=1, fps=10)
    report = SourceReport()
    assert sum(1 for _ in read_frames(str(src), report)) == 10 and report.fps == pytest.approx(10)
    result = CliRunner().invoke(app, ["video", str(src), "--out", str(out), "--detector", "haar"])
    assert result.exit_code == 0, result.output
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10) and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 10


def test_video_summary_shares_timelines_and_files(tmp_path):
    from ferkit.runtime.recognize import Face
    from ferkit.runtime.video import FrameResult, VideoSummary

    labels = ["happy", "sad"]

    def face(track, p_happy):
        probs = {"happy": p_happy, "sad": 1 - p_happy}
        return Face((0, 0, 10, 10), 1.0, probs, max(probs, key=probs.get), id=track)

    summary = VideoSummary(labels)
    for i, p in enumerate([0.9, 0.8, 0.3, 0.7]):
        faces = [face(1, p)] + ([face(2, 0.1)] if i < 2 else [])
        summary.add(FrameResult(i, i / 25, faces))
    assert summary.shares() == {1: {"happy": 0.75, "sad": 0.25}, 2: {"happy": 0.0, "sad": 1.0}}
    assert [t for t, _ in summary.timelines[1]] == [0, 0.04, 0.08, 0.12]
    written = summary.write(tmp_path / "s")
    assert [p.name for p in written] == ["summary.json", "timeline_face1.png", "timeline_face2.png"]
    assert json.loads(written[0].read_text())["1"] == {"happy": 0.75, "sad": 0.25}
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(
        p.name for p in written
    )  # no temp files


def test_video_that_ends_early_is_reported(tmp_path, face):
    path = tmp_path / "cut.avi"  # MJPG in AVI: its header says how many frames to expect
    write_video(path, [Actor({"x": face}, [(0.0, "x")], (50, 50), (60, 60))], seconds=2, fps=25)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    report = SourceReport()
    n = sum(1 for _ in read_frames(str(path), report))
    assert 0 < n < 50 and report.expected_frames == 50 and report.ended_early


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(FerkitError, match="video file not found"):
        next(read_frames(str(tmp_path / "none.mp4")))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(FerkitError, match="cannot open video"):
        next(read_frames(str(junk)))
    with pytest.raises(FerkitError, match="cannot open camera"):
        next(read_frames("9"))


def test_video_cli_outputs_and_early_end(tmp_path, face):
    import csv
    import json

    import cv2
    from typer.testing import CliRunner

    from ferkit.cli import app

    src = tmp_path / "in.avi"
    write_video(
        src, [Actor({"happy": face}, [(0.0, "happy")], (60, 120), (400, 140), size=150)], seconds=2, fps=25
    )
    src.write_bytes(src.read_bytes()[: int(src.stat().st_size * 0.7)])  # the file ends early
    out = tmp_path / "out.mp4"
    args = [
        "video",
        str(src),
        "--out",
        str(out),
        "--csv",
        str(tmp_path / "f.csv"),
        "--jsonl",
        str(tmp_path / "f.jsonl"),
        "--summary",
        str(tmp_path / "summary"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ended early" in result.output
    rows = list(csv.DictReader((tmp_path / "f.csv").read_text().splitlines()))
    frames = {int(r["frame"]) for r in rows}
    assert len(rows) == len(frames) and 25 < len(frames) < 50  # one face: one row per processed frame
    assert len((tmp_path / "f.jsonl").read_text().splitlines()) == len(rows)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(
        frames
    )  # the annotated file is complete and readable
    summary = json.loads((tmp_path / "summary" / "summary.json").read_text())
    assert set(summary) == {"1"} and abs(sum(summary["1"].values()) - 1) < 1e-6
    assert (tmp_path / "summary" / "timeline_face1.png").exists()


def test_corrupt_frame_mid_file_is_skipped_and_reported(tmp_path, face):
    path = tmp_path / "c.avi"
    write_video(path, [Actor({"x": face}, [(0.0, "x")], (50, 50), (60, 60))], seconds=2, fps=25)
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]  # JPEG frames
    s, e = starts[20], starts[21]
    data[s : s + (e - s) // 2] = bytes((e - s) // 2)  # wipe the first half of frame 20
    path.write_bytes(bytes(data))
    report = SourceReport()
    indices = [i for i, _, _ in read_frames(str(path), report)]
    assert report.skipped_frames == [20] and 20 not in indices and len(indices) == 49
    assert not report.ended_early


@pytest.mark.parametrize(
    "signame, suffix", [("SIGINT", ".avi"), ("SIGTERM", ".mp4"), ("SIGHUP", ".mp4")]
)  # Ctrl-C; timeout / docker stop / systemd; a closed terminal
def test_stop_signals_finalise_the_output(tmp_path, face, signame, suffix):
    import signal
    import subprocess
    import sys
    import time

    import cv2

    src = tmp_path / "long.avi"
    write_video(src, [Actor({"x": face}, [(0.0, "x")], (60, 120), (400, 140), size=150)], seconds=40, fps=25)
    out, table = tmp_path / f"out{suffix}", tmp_path / "f.csv"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ferkit",
            "video",
            str(src),
            "--out",
            str(out),
            "--csv",
            str(table),
            "--detector",
            "haar",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_stop_signals,
    )
    while proc.poll() is None and (not table.exists() or table.stat().st_size < 2000):  # readiness
        time.sleep(0.1)
    assert proc.poll() is None, "the video ended before it could be stopped"
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "interrupted: finishing the output files" in err
    frames = {line.split(",")[0] for line in table.read_text().splitlines()[1:]}
    cap = cv2.VideoCapture(str(out))
    written = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    assert 0 < written < 1000 and written >= len(frames) > 0  # a complete, readable file of what was done


@pytest.mark.parametrize("ignored", [True, False])
def test_stop_signals_leave_an_ignored_hangup_ignored(ignored):
    """Under ``nohup`` (SIGHUP ignored) a closed terminal must not stop a long run."""
    import signal
    import subprocess
    import sys

    code = (
        "import os, signal, time\n"
        "from ferkit.utils import stop_signals\n"
        "with stop_signals():\n"
        "    os.kill(os.getpid(), signal.SIGHUP)\n"
        "    time.sleep(0.5)\n"
        "print('still running')\n"
    )

    def start() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN if ignored else signal.SIG_DFL)

    proc = subprocess.run([sys.executable, "-c", code], preexec_fn=start, capture_output=True, text=True)
    if ignored:
        assert proc.returncode == 0 and "still running" in proc.stdout, proc.stderr
    else:
        assert proc.returncode != 0 and "Stopped: SIGHUP" in proc.stderr and not proc.stdout


def test_a_stop_that_python_drops_in_a_finaliser_is_delivered_again():
    """SIGTERM arriving while ``__del__`` runs raises there, where Python only prints and
    drops the exception; the run must still stop (it used to go on, deaf to more signals)."""
    import subprocess
    import sys

    code = (
        "import os, signal, time\n"
        "from ferkit.utils import stop_signals\n"
        "class Finaliser:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        for _ in range(1000): pass  # the handler runs here, inside __del__\n"
        "try:\n"
        "    with stop_signals():\n"
        "        Finaliser()\n"
        "        for _ in range(100): time.sleep(0.01)\n"
        "        print('went on')\n"
        "except KeyboardInterrupt as e:\n"
        "    print('stopped:', type(e).__name__, e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "stopped: Stopped SIGTERM", (proc.stdout, proc.stderr)


def _ffmpeg(*args: str) -> None:
    """Phones and editors write what OpenCV's writer cannot (rotation, irregular timestamps):
    make such files with the ffmpeg binary that the imageio-ffmpeg wheel carries."""
    import subprocess

    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def test_rotation_metadata_gives_upright_frames(tmp_path, face):
    """A phone video: frames stored sideways plus a display rotation. Frames come out upright."""
    import cv2

    upright = cv2.copyMakeBorder(cv2.resize(face, (160, 160)), 60, 60, 40, 40, cv2.BORDER_CONSTANT, value=90)
    stored = cv2.rotate(upright, cv2.ROTATE_90_CLOCKWISE)  # 280 wide, 240 high: the face lies on its side
    writer = cv2.VideoWriter(str(tmp_path / "raw.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (280, 240))
    for _ in range(10):
        writer.write(cv2.cvtColor(stored, cv2.COLOR_RGB2BGR))
    writer.release()
    _ffmpeg(
        "-display_rotation:v:0",
        "90",
        "-i",
        str(tmp_path / "raw.avi"),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(tmp_path / "phone.mp4"),
    )
    frames = [img for _, _, img in read_frames(str(tmp_path / "phone.mp4"))]
    assert len(frames) == 10 and frames[0].shape == upright.shape  # 280 high, 240 wide
    assert np.abs(frames[0].astype(int) - upright.astype(int)).mean() < 8  # codec noise only
    rec = Recognizer("default", detector="haar")
    assert len(rec.recognize(frames[0])) == 1  # the upright face is found
    assert rec.recognize(cv2.rotate(frames[0], cv2.ROTATE_90_CLOCKWISE)) == []  # sideways it is not


def test_variable_frame_rate_timestamps_come_from_the_container(tmp_path, face):
    """10 frames at 25 fps, a 0.5 s gap, 10 more: times follow the file, not frame count / fps."""
    import cv2

    writer = cv2.VideoWriter(str(tmp_path / "raw.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (200, 200))
    for _ in range(20):
        writer.write(cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    writer.release()
    pts = "N*0.04/TB+if(gte(N\\,10)\\,0.5/TB\\,0)"
    _ffmpeg(
        "-i",
        str(tmp_path / "raw.avi"),
        "-vf",
        f"settb=1/1000,setpts={pts}",
        "-fps_mode",
        "passthrough",
        "-enc_time_base",
        "1/1000",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(tmp_path / "vfr.mp4"),
    )
    times = np.array([t for _, t, _ in read_frames(str(tmp_path / "vfr.mp4"))])
    expected = np.arange(20) * 0.04 + np.where(np.arange(20) >= 10, 0.5, 0.0)
    assert len(times) == 20 and np.allclose(times, expected, atol=0.002)
    # The video loop passes these times on (its smoothing is a time constant, so gaps count).
    results = list(process_video(str(tmp_path / "vfr.mp4"), Recognizer("default", detector="haar")))
    assert [round(r.time, 2) for r in results[9:11]] == [0.36, 0.9]


def test_a_face_gone_after_a_hard_cut_is_not_carried_on(face):
    """The detector loses the face at a cut: its track is not drawn or written on the frames
    after (it once drifted over the background for ~1 s, labelled); --keep-lost keeps it."""
    import cv2

    from ferkit.runtime.video import process_frames

    background = np.full((480, 640, 3), 90, np.uint8)
    shot = background.copy()
    shot[100:300, 200:400] = cv2.resize(face, (200, 200))
    frames = [(i, i / 25, shot if i < 10 else background) for i in range(20)]
    rec = Recognizer("fast")
    for keep_lost, carried in ((0, 0), (2, 4)):  # kept for 2 detection rounds: 4 frames
        results = list(process_frames(frames, rec, detect_every=2, keep_lost=keep_lost))
        assert all(len(r.faces) == 1 for r in results[:10])
        after = [f for r in results[10:] for f in r.faces]
        assert len(after) == carried and not any(f.detected for f in after)


@pytest.mark.parametrize("detect_every", [1, 3])
def test_detecting_frames_ahead_gives_the_same_results(clip, detect_every):
    """workers=2 detects several frames at once, ahead of tracking: same faces, ids, boxes and
    smoothed probabilities, frame for frame."""
    from ferkit.runtime.video import process_frames

    path, _ = clip
    frames = list(read_frames(str(path)))
    rec = Recognizer("fast")

    def run(workers):
        results = process_frames(iter(frames), rec, detect_every=detect_every, workers=workers)
        return [[(r.index, f.box, f.id, f.label, f.detected, f.probs) for f in r.faces] for r in results]

    alone = run(1)
    assert sum(len(r) for r in alone) >= 0.9 * len(frames)
    assert run(2) == alone


def test_closing_a_video_run_early_stops_its_detectors(clip):
    import threading

    from ferkit.runtime.video import process_frames

    path, _ = clip
    results = process_frames(read_frames(str(path)), Recognizer("fast"), workers=2)
    next(results)
    results.close()  # a stop, or q in the window
    assert not [t for t in threading.enumerate() if t.name.startswith("ferkit-detect")]


def small_face_actors(face):
    """Three 60 px faces for 1280x720: too small for BlazeFace's one look at the whole frame,
    found by its tiles."""
    return [
        Actor(
            {"happy": face},
            [(0.0, "happy")],
            start=(100 + 300 * k, 200 + 60 * k),
            end=(140 + 300 * k, 220 + 60 * k),
            size=60,
        )
        for k in range(3)
    ]


@pytest.fixture(scope="module")
def small_faces_clip(face):
    """Two seconds of 1280x720 frames with ``small_face_actors``."""
    from ferkit.synth import render_frames

    frames = render_frames(small_face_actors(face), 2, 25, size=(1280, 720))
    return [(i, i / 25, frame) for i, (frame, _) in enumerate(frames)]


def test_small_faces_are_carried_between_whole_searches(small_faces_clip):
    """The tiles run on the first detection and then every half second; the detections between
    take one look (and the close-up look where it sees nothing), and carry the small faces on
    their last boxes: every frame has all three faces, with the same ids, at a quarter of the looks."""
    from ferkit.runtime.video import process_frames

    runs = {}
    for every in (0.0, None):  # 0: a whole search on every detection, as for a photo
        rec = Recognizer("fast")
        looks = count_looks(rec.detector)
        results = list(process_frames(iter(small_faces_clip), rec, detect_every=2, full_search_every=every))
        runs[every] = (results, len(looks))
    (every_time, looks_every_time), (results, looks) = runs[0.0], runs[None]
    assert all(len(r.faces) == 3 for r in every_time)
    assert all(len(r.faces) == 3 for r in results)  # none blinks out between whole searches
    assert {f.id for r in results for f in r.faces} == {1, 2, 3}
    # Whole searches at 0, 0.56, 1.12 and 1.68 s (the first detection frames half a second on):
    # only there are the small faces detected; in between they are carried, not seen.
    detected = [r.index for r in results if any(f.detected for f in r.faces)]
    assert detected == [0, 14, 28, 42]
    assert looks < 0.3 * looks_every_time
    # Carried boxes stay on the faces (60 px, moving 20 px a second): within half a face of
    # where a whole search on that frame puts them.
    for r, r_every in zip(results, every_time, strict=True):
        for f, g in zip(
            sorted(r.faces, key=lambda f: f.id), sorted(r_every.faces, key=lambda f: f.id), strict=True
        ):
            assert abs(f.box[0] - g.box[0]) + abs(f.box[1] - g.box[1]) < 30


def test_a_small_face_gone_is_dropped_at_the_next_whole_search(small_faces_clip):
    from ferkit.runtime.video import process_frames
    from ferkit.synth import render_frames

    ((background, _),) = render_frames([], 0.04, 25, size=(1280, 720))  # the clip's, without faces
    frames = small_faces_clip[:10] + [(i, i / 25, background) for i in range(10, 30)]
    results = list(process_frames(iter(frames), Recognizer("fast"), detect_every=2))
    assert all(len(r.faces) == 3 for r in results[:10])
    # Carried on their last boxes until the whole search at 0.56 s (frame 14), then gone.
    assert all(len(r.faces) == 3 and not any(f.detected for f in r.faces) for r in results[10:14])
    assert not any(r.faces for r in results[14:])


def test_whole_searches_follow_the_frame_times_whatever_the_workers(small_faces_clip):
    from ferkit.runtime.video import process_frames

    rec = Recognizer("fast")

    def run(workers):
        results = process_frames(iter(small_faces_clip), rec, detect_every=2, workers=workers)
        return [[(r.index, f.box, f.id, f.label, f.detected, f.probs) for f in r.faces] for r in results]

    assert run(2) == run(1)


def test_video_cli_full_search_every(tmp_path, face, monkeypatch):
    """``ferkit video --full-search-every``: 0 searches the whole frame on every detection; the
    default carries the small faces between searches. Both write all three faces on every frame,
    and the value given is the one process_frames runs with."""
    import csv

    from typer.testing import CliRunner

    import ferkit.runtime.video as video
    from ferkit.cli import app

    given, real = [], video.process_frames

    def recording(*args, **kwargs):
        given.append(kwargs.get("full_search_every"))
        return real(*args, **kwargs)

    monkeypatch.setattr(video, "process_frames", recording)
    src = tmp_path / "small.avi"
    write_video(src, small_face_actors(face), seconds=1, fps=25, size=(1280, 720))
    for every in ("0", None):
        out = tmp_path / f"rows_{every}.csv"
        args = ["video", str(src), "--csv", str(out)] + (["--full-search-every", every] if every else [])
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader(out.read_text().splitlines()))
        per_frame = {}
        for r in rows:
            per_frame[r["frame"]] = per_frame.get(r["frame"], 0) + 1
        assert len(per_frame) == 25 and set(per_frame.values()) == {3}, every
    assert given == [0.0, None]
    result = CliRunner().invoke(app, ["video", str(src), "--full-search-every", "-1"])
    assert result.exit_code != 0
