import subprocess
import sys

import numpy as np
import pytest
from matplotlib import cbook

from ferkit.errors import FerkitError, ModelError
from ferkit.imageio import read_image
from ferkit.runtime.catalog import resolve_model
from ferkit.runtime.classifier import OnnxClassifier
from ferkit.runtime.detect import Detection, create_detector, list_detectors
from ferkit.runtime.recognize import Recognizer, crop_face

GRACE = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


def test_runtime_never_imports_torch():
    code = (
        "import sys; import ferkit.runtime.recognize, ferkit.runtime.classifier, ferkit.evaluate.run; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_haar_finds_grace_hopper():
    img = read_image(GRACE, color="rgb")
    faces = create_detector("haar").detect(img)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 120 < x + w / 2 < 330 and 150 < y + h / 2 < 330 and w > 150  # her face, not the uniform


def test_detector_registry_and_none():
    assert {"haar", "none"} <= set(list_detectors())
    assert create_detector("none").detect(np.zeros((48, 60), np.uint8))[0].box == (0, 0, 60, 48)
    with pytest.raises(FerkitError, match="unknown face detector 'yolo'"):
        create_detector("yolo")


def test_huge_image_is_downscaled_and_boxes_mapped_back():
    img = read_image(GRACE, color="gray")
    big = np.kron(img, np.ones((4, 4), np.uint8))  # 2400 x 2048
    small_box = create_detector("haar").detect(img)[0].box
    big_box = create_detector("haar", max_side=960).detect(big)[0].box
    assert all(abs(b - 4 * s) < 0.15 * 4 * small_box[2] for b, s in zip(big_box, small_box, strict=True))


def test_crop_alignment_levels_the_eyes():
    img = np.zeros((100, 100), np.uint8)
    img[40:45, 30:35] = 255  # left eye
    img[60:65, 65:70] = 255  # right eye, lower: a tilted face
    det = Detection((20, 20, 60, 60), 1.0, np.array([[32, 42], [67, 62]], np.float32))
    aligned = crop_face(img, det, 48, margin=0.0, align=True)
    ys = [np.argmax(aligned[:, :24].max(1)), np.argmax(aligned[:, 24:].max(1))]
    assert abs(int(ys[0]) - int(ys[1])) <= 2
    assert crop_face(img, det, 48).shape == (48, 48)


def test_unknown_model_name():
    with pytest.raises(ModelError, match="not a model: no such file, and not a shipped model"):
        resolve_model("surely-not-a-model")


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    from ferkit.export import export_onnx
    from ferkit.train import fit
    from test_train import learnable, quick_cfg

    root = tmp_path_factory.mktemp("rt")
    run = fit(quick_cfg(root, epochs=1), dataset=learnable(n_per_class=10)).run_dir
    return export_onnx(run, root / "m.onnx").path


def test_card_comes_from_the_onnx_file_not_a_stale_json_twin(tmp_path, onnx_model):
    import json
    import shutil

    from ferkit.card import ModelCard

    model = shutil.copy(onnx_model, tmp_path / "m.onnx")
    stale = json.loads(onnx_model.with_suffix(".json").read_text())
    stale["labels"] = list(reversed(stale["labels"]))  # another model's card left beside it
    (tmp_path / "m.json").write_text(json.dumps(stale))
    assert ModelCard.read(model).labels == OnnxClassifier(model).card.labels != tuple(stale["labels"])


@pytest.mark.parametrize("content", [b"", b"not onnx at all", b"\x08\x07"])
def test_card_read_names_a_file_that_is_not_onnx(tmp_path, content):
    from ferkit.card import ModelCard

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(ModelError, match=r"bad\.onnx: not a loadable ONNX model"):
        ModelCard.read(bad)


def test_recognize_batch_types(onnx_model):
    rec = Recognizer(onnx_model, detector="haar")
    img = read_image(GRACE, color="rgb")
    blank = np.full((200, 200, 3), 128, np.uint8)
    results = rec.recognize_batch([img, blank, img])
    assert [len(r) for r in results] == [1, 0, 1]
    face = results[0][0]
    assert face.label in rec.labels and abs(sum(face.probs.values()) - 1) < 1e-4
    # Batching does not change answers (beyond float rounding).
    assert np.allclose(list(results[0][0].probs.values()), list(results[2][0].probs.values()), atol=1e-6)
    assert set(face.to_dict()) >= {"box", "score", "label", "probs"}


def test_predict_cli_reports_bad_files_and_writes_outputs(tmp_path, onnx_model):
    import csv
    import json
    import shutil

    from typer.testing import CliRunner

    from ferkit.cli import app

    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    shutil.copy(GRACE, photos / "a.jpg")
    shutil.copy(GRACE, photos / "sub" / "a.jpg")  # same name in another folder
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (photos / "empty.png").write_bytes(b"")
    args = [
        "predict",
        str(photos),
        "--model",
        str(onnx_model),
        "--json",
        str(tmp_path / "f.jsonl"),
        "--csv",
        str(tmp_path / "f.csv"),
        "--annotate",
        str(tmp_path / "ann"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 image(s) read, 2 face(s) found, 2 failed" in result.output
    assert "broken.jpg: truncated JPEG" in result.output and "empty.png: file is empty" in result.output
    records = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert len(records) == 2 and {"file", "box", "label", "probs"} <= set(records[0])
    rows = list(csv.DictReader((tmp_path / "f.csv").open()))
    assert len(rows) == 2 and abs(sum(float(rows[0][k]) for k in records[0]["probs"]) - 1) < 1e-4
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["a.png", "a_1.png"]
    strict = CliRunner().invoke(app, [*args, "--strict"])
    assert strict.exit_code == 1


@pytest.mark.parametrize("name", ["haar", "hog"])
def test_each_detector_finds_the_astronaut(name):
    from skimage import data

    faces = create_detector(name).detect(data.astronaut())
    assert len(faces) >= 1
    x, y, w, h = faces[0].box
    assert 190 < x + w / 2 < 250 and 100 < y + h / 2 < 140 and 60 < w < 130  # Eileen Collins' face


def test_hog_needs_dlib_message(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dlib(name, *args, **kwargs):
        if name == "dlib":
            raise ImportError("no dlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dlib)
    with pytest.raises(FerkitError, match=r'needs dlib: pip install "ferkit\[detect\]"'):
        create_detector("hog")


@pytest.mark.slow
def test_ten_thousand_images_with_corrupt_ones(tmp_path):
    import csv

    import cv2
    from typer.testing import CliRunner

    from ferkit.cli import app

    folder = tmp_path / "many"
    rng = np.random.default_rng(0)
    good = [
        cv2.imencode(".png", rng.integers(0, 256, (48, 48), dtype=np.uint8))[1].tobytes() for _ in range(50)
    ]
    bad = {137: b"", 4242: b"\x89PNG\r\n\x1a\n broken", 9999: good[0][:40]}
    for i in range(10_000):
        sub = folder / f"part{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"img{i:05d}.png").write_bytes(bad.get(i, good[i % 50]))
    args = [
        "predict",
        str(folder),
        "--detector",
        "none",
        "--csv",
        str(tmp_path / "out.csv"),
        "--batch-size",
        "256",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "9997 image(s) read, 9997 face(s) found, 3 failed" in result.output
    for i in bad:
        assert f"img{i:05d}.png: " in result.output
    with open(tmp_path / "out.csv") as f:
        assert sum(1 for _ in csv.DictReader(f)) == 9997
    assert CliRunner().invoke(app, [*args, "--strict"]).exit_code == 1


@pytest.mark.parametrize("model", ["full", "short"])
def test_blazeface_finds_faces_with_keypoints(model):
    from skimage import data

    det = create_detector("blazeface", model=model)
    faces = det.detect(data.astronaut())
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 190 < x + w / 2 < 250 and 100 < y + h / 2 < 150
    left, right = faces[0].landmarks[:2]
    assert left[0] < right[0] and x < left[0] < right[0] < x + w and y < left[1] < y + h / 2 + 10
    assert len(create_detector("blazeface", model=model).detect(data.camera())) == 1  # the cameraman too


def test_blazeface_short_is_a_detector_of_its_own(tmp_path):
    """``blazeface-short`` (faces near the camera) is the short-range model by name: from the
    API, in Recognizer's copies for workers, and on the command line, tiling option and all."""
    import csv

    import cv2
    from skimage import data
    from typer.testing import CliRunner

    from ferkit.cli import app

    detector = create_detector("blazeface-short")
    assert (detector.name, detector.spec.name, detector.min_score) == ("blazeface-short", "short", 0.5)
    same = create_detector("blazeface", model="short").detect(data.astronaut())
    assert [d.box for d in detector.detect(data.astronaut())] == [d.box for d in same]
    with pytest.raises(FerkitError, match="blazeface-short is the short-range model"):
        create_detector("blazeface-short", model="full")
    rec = Recognizer("fast", detector="blazeface-short", min_face=30)
    assert [r.detector.name for r in rec.replicas(2)] == ["blazeface-short"] * 2
    assert rec.detector.min_size == 30
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "faces.csv"
    args = ["predict", str(photo), "--detector", "blazeface-short", "--tiles", "never", "--csv", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader(out.open()))
    x, w = int(row["x"]), int(row["w"])
    assert 190 < x + w / 2 < 250 and row["label"] == "happy"


def test_auto_detector_prefers_blazeface():
    assert create_detector("auto").name == "blazeface"


def test_auto_falls_back_to_haar_without_blazeface_models(monkeypatch, tmp_path):
    import ferkit.runtime.blazeface as blazeface

    monkeypatch.setattr(blazeface, "MODELS_DIR", tmp_path)  # an install that lost its model files
    with pytest.raises(FerkitError, match="BlazeFace model missing"):
        create_detector("blazeface")
    assert create_detector("auto").name == "haar"


def _photo_folder(tmp_path):
    """The shipped example photos twice over, a corrupt file and an empty one, sorted names."""
    import shutil
    from pathlib import Path

    folder = tmp_path / "photos"
    folder.mkdir()
    photos = sorted(Path(__file__).parents[1].joinpath("examples", "photos").glob("*.jpg"))
    for copy in range(2):
        for p in photos:
            shutil.copy(p, folder / f"{copy}_{p.name}")
    (folder / "1_broken.jpg").write_bytes(photos[0].read_bytes()[:300])
    (folder / "1_empty.jpg").write_bytes(b"")
    return sorted(str(p) for p in folder.iterdir())


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_give_the_same_answers_in_order(tmp_path, workers):
    from ferkit.runtime.batch import predict_files

    paths = _photo_folder(tmp_path)
    rec = Recognizer("fast", detector="blazeface")
    alone = list(predict_files(paths, rec, batch_size=2))
    together = list(predict_files(paths, rec, batch_size=2, workers=workers))
    assert [r.path for r in together] == [r.path for r in alone] == paths
    assert [r.error for r in together] == [r.error for r in alone]
    assert sum(r.error is not None for r in alone) == 2 and sum(len(r.faces) for r in alone) >= 8
    for a, b in zip(alone, together, strict=True):  # integer kernels, one thread or two: equal
        assert [(f.box, f.label) for f in a.faces] == [(f.box, f.label) for f in b.faces]
        for fa, fb in zip(a.faces, b.faces, strict=True):
            assert fa.probs == pytest.approx(fb.probs, abs=1e-6)


def test_replicas_are_separate_single_threaded_recognizers():
    rec = Recognizer("fast", detector="blazeface", align="level", tta="none")
    lanes = rec.replicas(2)
    assert len(lanes) == 2 and lanes[0].detector is not lanes[1].detector
    for lane in lanes:
        assert (lane.align, lane.tta, lane.margin) == (rec.align, rec.tta, rec.margin)
        assert lane.classifier.session.get_session_options().intra_op_num_threads == 1
        assert lane.detector.model.session.get_session_options().intra_op_num_threads == 1
    own = Recognizer("fast", detector=create_detector("none"))
    assert own.replicas(4) == [own]  # a detector object is not copied


def test_closing_a_parallel_run_early_stops_its_workers(tmp_path):
    import threading

    from ferkit.runtime.batch import predict_files

    paths = _photo_folder(tmp_path) * 5
    results = predict_files(paths, Recognizer("fast", detector="blazeface"), batch_size=1, workers=2)
    assert next(results).path == paths[0]
    results.close()  # what a Ctrl-C in the consumer does
    assert not [t for t in threading.enumerate() if t.name.startswith("ferkit-predict")]


def test_predict_cli_workers_option(tmp_path):
    import csv

    from typer.testing import CliRunner

    from ferkit.cli import app

    paths = _photo_folder(tmp_path)
    rows = {}
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.csv"
        result = CliRunner().invoke(
            app, ["predict", str(tmp_path / "photos"), "--workers", workers, "--csv", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert "2 failed" in result.output
        rows[workers] = [(r["file"], r["label"], r["x"], r["y"]) for r in csv.DictReader(out.open())]
    assert rows["1"] == rows["2"] and {r[0] for r in rows["1"]} <= set(paths)


def test_ordered_map_keeps_order_and_never_shares_a_tool():
    import threading
    import time

    from ferkit.runtime.parallel import ordered_map

    busy = {0: threading.Lock(), 1: threading.Lock()}

    def work(tool, item):
        assert busy[tool].acquire(blocking=False), "a tool used by two calls at once"
        try:
            time.sleep(0.001 * (item % 3))  # later items often finish first
            return item * 10, tool
        finally:
            busy[tool].release()

    out = list(ordered_map(work, range(40), [0, 1]))
    assert [item for item, _ in out] == list(range(40))
    assert [r for _, (r, _) in out] == [10 * i for i in range(40)]
    assert {tool for _, (_, tool) in out} == {0, 1}  # both worked

    def fails(tool, item):
        if item == 5:
            raise ValueError("item 5")
        return item

    with pytest.raises(ValueError, match="item 5"):
        list(ordered_map(fails, range(20), [0, 1]))
