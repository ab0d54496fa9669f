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
