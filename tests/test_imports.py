import json
import subprocess
import sys


def test_core_and_cli_do_not_import_torch():
    # The inference/data path must work without torch installed.
    code = "import sys, ferkit, ferkit.data, ferkit.cli, ferkit.labels; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_front_door_is_lazy_and_torch_free():
    code = (
        "import sys, ferkit; lazy = 'ferkit.runtime.recognize' not in sys.modules; "
        "ferkit.Recognizer, ferkit.Face, ferkit.load_dataset, ferkit.list_models(); "
        "print(lazy, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_analyze_and_recognizer_take_what_users_have(tmp_path):
    import io

    import numpy as np
    import pytest
    from matplotlib import cbook
    from PIL import Image

    import ferkit

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    rec = ferkit.Recognizer("fast", detector="haar")
    expected = rec(path)  # callable, with a path
    assert len(expected) == 1 and isinstance(expected[0], ferkit.Face)
    with open(path, "rb") as f:
        data = f.read()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    inputs = {
        "bytes": data,
        "PIL": Image.open(io.BytesIO(data)),
        "uint8 array": rgb,
        "float [0, 1]": rgb.astype(np.float32) / 255,
        "float [0, 255]": rgb.astype(np.float64),
        "uint16": rgb.astype(np.uint16) * 257,
        "RGBA": rgba,
    }
    for name, image in inputs.items():
        faces = rec.recognize(image)
        assert len(faces) == 1 and faces[0].label == expected[0].label, name
        assert np.abs(np.array(faces[0].box) - expected[0].box).max() <= 2, name
    grey = rec(rgb.mean(axis=2).astype(np.uint8))  # grey arrays work too
    assert len(grey) == 1
    assert ferkit.analyze(path, model="fast", detector="haar")[0].label == expected[0].label
    for bad, message in (
        (np.zeros((4, 4, 2), np.uint8), r"shape \(4, 4, 2\)"),
        (np.zeros((8, 8), np.complex64), "dtype complex64"),
        (np.full((8, 8), np.nan), "NaN"),
        ([1, 2, 3], "cannot read a list"),
    ):
        with pytest.raises(ferkit.DataError, match=message):
            rec(bad)


def test_evaluation_and_ensembles_work_without_torch(tmp_path):
    """ferkit eval / ferkit ensemble on ONNX models in an interpreter where torch cannot load."""
    import csv

    from conftest import make_dataset

    ds = make_dataset(n_per_class=3)
    data = tmp_path / "fer2013.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for img, label, split in zip(ds.images, ds.labels, ds.splits, strict=True):
            writer.writerow([int(label), " ".join(map(str, img.reshape(-1))), split])
    blocker = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'onnx', 'onnxscript'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "sys.argv = ['ferkit'] + sys.argv[1:]\n"
        "from ferkit.cli import main\n"
        "main()\n"
    )
    out = tmp_path / "e.json"

    def ferkit(*args):
        done = subprocess.run([sys.executable, "-c", blocker, *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    ferkit("eval", "tiny", "fast", "--data", str(data), "--out", str(tmp_path / "eval"))
    assert (tmp_path / "eval" / "eval.json").exists()
    printed = ferkit("ensemble", "tiny", "fast", "--data", str(data), "--out", str(out), "--tta", "none")
    assert "weights tiny" in printed and json.loads(out.read_text())["kind"] == "ensemble"
    ferkit("eval", str(out), "--data", str(data), "--out", str(tmp_path / "eval2"))
