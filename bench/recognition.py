"""Recognition speed on this machine: classifier faces/s, detector ms, end-to-end images/s, vs fer.

Usage::

    python bench/recognition.py [--peer-python ~/.cache/ferkit/peers-venv/bin/python] [--repeat 20]
        [--sections classifiers detectors folder stream groups photos] [--passes 3]

Each figure is the best of 5 rounds (this machine's timings vary by up to ~30% between runs,
and slow spells of minutes halve its speed); the detectors' table and the comparison with
``fer`` take the best of ``--passes`` passes (default 3), each timing ferkit and then
``fer``, so a slow spell costs both sides. Beside each model's faces/s stands its share of
this CPU's measured peak for the numerics it runs in: the peak probe times one large matrix
product in ONNX Runtime on the same 2 threads (MatMulInteger, uint8 x 7-bit int8,
1024x1024x1024, for int8 models; MatMul float32 for float ones), best of 10, as multiply-
accumulates per second; a model's share is faces/s x its MACs a face / that peak. A second
peak is that of one big integer convolution (QLinearConv, 3x3, 256 -> 256 channels, 16 x 24
x 24): the kernels the models' convolutions run, which on a CPU with AMX do not use it while
the matrix product does.

Test images are 640x480 frames holding one real photo each (scikit-image's astronaut,
matplotlib's Grace Hopper) so detectors have a real face to find. Also prints what each
detector finds in a collage of four photos and in a 1280x720 frame of eight 24 px faces
(BlazeFace with and without tiling), and on the photos that ship in packages (astronaut,
camera, Grace Hopper).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from ferkit.runtime.catalog import shipped_models
from ferkit.runtime.classifier import load_model
from ferkit.runtime.detect import create_detector, list_detectors
from ferkit.runtime.recognize import Recognizer

HERE = Path(__file__).resolve().parent


def photos() -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from skimage import data

    from ferkit.imageio import read_image

    grey_camera = data.camera()
    return {
        "astronaut": data.astronaut(),
        "camera": np.repeat(grey_camera[..., None], 3, axis=2),
        "grace_hopper": read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), color="rgb"),
    }


def frame_640x480(photo: np.ndarray) -> np.ndarray:
    import cv2

    frame = np.full((480, 640, 3), 90, np.uint8)
    scale = min(480 / photo.shape[0], 640 / photo.shape[1])
    small = cv2.resize(
        photo, (int(photo.shape[1] * scale), int(photo.shape[0] * scale)), interpolation=cv2.INTER_AREA
    )
    frame[: small.shape[0], : small.shape[1]] = small
    return frame


def collage(pics: dict[str, np.ndarray]) -> np.ndarray:
    """astronaut | Grace Hopper | astronaut | camera, each 512 px high (1973x512)."""
    import cv2

    order = [pics["astronaut"], pics["grace_hopper"], pics["astronaut"], pics["camera"]]
    return np.concatenate(
        [
            cv2.resize(p, (round(p.shape[1] * 512 / p.shape[0]), 512), interpolation=cv2.INTER_AREA)
            for p in order
        ],
        axis=1,
    )


def small_faces(pics: dict[str, np.ndarray], face: int) -> np.ndarray:
    """A 1280x720 frame holding 8 photos shrunk so each face is ``face`` px wide."""
    import cv2

    rng = np.random.default_rng(0)
    frame = np.full((720, 1280, 3), 110, np.uint8)
    for i in range(8):
        photo = [pics["astronaut"], pics["grace_hopper"]][i % 2]
        width = create_detector("blazeface", tiles="never").detect(photo)[0].box[2]
        size = (round(photo.shape[1] * face / width), round(photo.shape[0] * face / width))
        small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        x, y = 60 + (i % 4) * 300 + int(rng.integers(0, 60)), 80 + (i // 4) * 330 + int(rng.integers(0, 60))
        frame[y : y + small.shape[0], x : x + small.shape[1]] = small[: 720 - y, : 1280 - x]
    return frame


def timeit(fn, repeat: int, rounds: int = 5) -> float:
    """Seconds per call: the best of ``rounds`` rounds of ``repeat`` calls (least disturbed by noise)."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def peak_macs_per_s(kind: str, threads: int = 2, side: int = 1024, rounds: int = 10) -> float:
    """Multiply-accumulates per second of one big matrix product in ONNX Runtime on ``threads``
    threads: ``int8`` (MatMulInteger, uint8 x int8 weights in [-64, 63] like the shipped
    models') or ``float`` (MatMul float32)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "int8":
        a = rng.integers(0, 256, (side, side), dtype=np.uint8)
        b = rng.integers(-64, 64, (side, side), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        a = rng.standard_normal((side, side), dtype=np.float32)
        b = rng.standard_normal((side, side), dtype=np.float32)
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "peak",
        [helper.make_tensor_value_info("a", a_type, [side, side])],
        [helper.make_tensor_value_info("y", y_type, [side, side])],
        [numpy_helper.from_array(b, "b")],
    )
    return side**3 / _seconds_a_run(graph, {"a": a}, threads, rounds)


def _seconds_a_run(graph, feed: dict[str, np.ndarray], threads: int, rounds: int) -> float:
    """Best seconds of one ONNX Runtime run of a one-node ``graph`` on ``threads`` threads."""
    import onnxruntime as ort
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return timeit(lambda: session.run(None, feed), 1, rounds)


def conv_peak_macs_per_s(
    threads: int = 2, n: int = 16, channels: int = 256, side: int = 24, rounds: int = 10
) -> float:
    """Multiply-accumulates per second of one big integer convolution in ONNX Runtime on
    ``threads`` threads: QLinearConv, 3x3, ``channels`` -> ``channels`` on ``n`` x ``side`` x
    ``side``, uint8 activations and per-channel int8 weights in [-64, 63] like the shipped
    models'. It runs the kernels the models' convolutions run (on a CPU with AMX, the matrix
    product of :func:`peak_macs_per_s` uses AMX and these kernels do not)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, channels, side, side), dtype=np.uint8)
    constants = {
        "x_scale": np.array(0.02, np.float32),
        "x_zero": np.array(0, np.uint8),
        "w": rng.integers(-64, 64, (channels, channels, 3, 3), dtype=np.int8),
        "w_scale": np.full(channels, 0.01, np.float32),
        "w_zero": np.zeros(channels, np.int8),
        "y_scale": np.array(0.05, np.float32),
        "y_zero": np.array(0, np.uint8),
        "bias": np.zeros(channels, np.int32),
    }
    node = helper.make_node("QLinearConv", ["x", *constants], ["y"], pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    graph = helper.make_graph(
        [node],
        "conv_peak",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        [numpy_helper.from_array(v, k) for k, v in constants.items()],
    )
    return n * side * side * channels * channels * 9 / _seconds_a_run(graph, {"x": x}, threads, rounds)


def model_numerics(name: str) -> tuple[str, int]:
    """("int8" or "float", MACs a face) of a shipped model, from its card (an ensemble: its members')."""
    from ferkit.card import ModelCard
    from ferkit.runtime.catalog import member_path, resolve_model

    path = resolve_model(name)
    card = ModelCard.read(path)
    if card.members:
        parts = [ModelCard.read(member_path(path, m)) for m in card.members]
        kinds = {"int8" if "int8" in (c.get("quantization") or "") else "float" for c in parts}
        return ("int8" if kinds == {"int8"} else "mixed"), sum(int(c.get("macs") or 0) for c in parts)
    return ("int8" if "int8" in (card.get("quantization") or "") else "float"), int(card.get("macs") or 0)


def peer_seconds(args, mode: str, source: str, count: int) -> float | None:
    """Seconds an image for the ``fer`` package: ``bench/_peer_predict.py MODE SOURCE - COUNT``
    in the peers' Python (``--peer-python``); None where that Python is missing or the run
    failed (said on stdout)."""
    if not Path(args.peer_python).exists():
        return None
    proc = subprocess.run(
        [args.peer_python, str(HERE / "_peer_predict.py"), mode, source, "-", str(count)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(f"fer package: failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    return float(proc.stdout.split("SECONDS")[-1])


SECTIONS = ("classifiers", "detectors", "folder", "stream", "groups", "photos")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--passes", type=int, default=3, help="detectors: timing passes, ferkit then fer; best of each"
    )
    parser.add_argument("--peer-python", default=os.path.expanduser("~/.cache/ferkit/peers-venv/bin/python"))
    parser.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="parts to run (default: all)"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (1024, 48, 48), dtype=np.uint8)
    from ferkit.utils import cpu_description

    print(f"CPU: {cpu_description()}, cores: {os.cpu_count()}, 2 threads")
    if "classifiers" in args.sections:
        peaks = {kind: peak_macs_per_s(kind) for kind in ("int8", "float")}
        conv_peak = conv_peak_macs_per_s()
        print(
            "peak (ONNX Runtime, 1024^3 matrix product, 2 threads): "
            f"int8 {peaks['int8'] / 1e9:,.0f} G MAC/s, "
            f"float32 {peaks['float'] / 1e9:,.0f} G MAC/s; int8 convolution (QLinearConv 3x3 256->256, "
            f"16x24x24): {conv_peak / 1e9:,.0f} G MAC/s\n\n## Classifier (ONNX Runtime)\n"
        )
        print(
            "| model | numerics | MMACs a face | faces/s batch 1 | faces/s batch 64 "
            "| share of peak (batch 64) | share of the int8 convolution peak |"
        )
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for name in shipped_models():
            clf = load_model(name)
            one = (
                timeit(
                    lambda clf=clf: [clf.predict_proba(faces[i : i + 1]) for i in range(64)],
                    max(1, args.repeat // 4),
                )
                / 64
            )
            batched = timeit(
                lambda clf=clf: clf.predict_proba(faces, batch_size=64), max(1, args.repeat // 4)
            ) / len(faces)
            kind, macs = model_numerics(name)
            peak = peaks["int8" if kind == "int8" else "float"]
            share = f"{macs / batched / peak:.0%}" if macs else ""
            conv_share = f"{macs / batched / conv_peak:.0%}" if macs and kind == "int8" else ""
            print(
                f"| {name} | {kind} | {macs / 1e6:,.0f} | {1 / one:,.0f} | {1 / batched:,.0f} "
                f"| {share} | {conv_share} |"
            )

    pics = photos()
    frames = [frame_640x480(pics["astronaut"]), frame_640x480(pics["grace_hopper"])]
    if "detectors" in args.sections:
        print("\n## Detectors on 640x480 frames\n")
        print(f"(default detector 'auto' is {create_detector('auto').name} here)\n")
        detectors = {}
        for det_name in [d for d in list_detectors() if d not in ("none", "auto")]:
            try:
                detectors[det_name] = create_detector(det_name)
            except Exception as exc:  # an optional detector that is not installed
                print(f"{det_name}: not available: {exc}")
        recognizers = {name: Recognizer("default", detector=d) for name, d in detectors.items()}
        # Each figure is its best over --passes passes, every pass timing ferkit and then fer:
        # a slow spell of the machine (other tenants) then costs both sides, not one.
        ms, e2e, fer_seconds = {}, {}, None
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp, "frames.npy"), np.stack(frames))
            for _ in range(args.passes):
                for name, detector in detectors.items():
                    one = timeit(lambda d=detector: [d.detect(f) for f in frames], args.repeat) / len(frames)
                    ms[name] = min(ms.get(name, one), one)
                    rec = recognizers[name]
                    per_image = timeit(lambda r=rec: [r.recognize(f) for f in frames], args.repeat) / len(
                        frames
                    )
                    e2e[name] = min(e2e.get(name, per_image), per_image)
                seconds = peer_seconds(args, "fer-e2e", str(Path(tmp, "frames.npy")), args.repeat)
                if seconds:
                    fer_seconds = min(fer_seconds or seconds, seconds)
        print("| detector | ms / image | end-to-end images/s (default model, flip TTA) |")
        print("| --- | ---: | ---: |")
        for name in detectors:
            print(f"| {name} | {ms[name] * 1000:.1f} | {1 / e2e[name]:,.1f} |")
        if fer_seconds:
            print(f"| fer package (its Haar + mini-Xception) | | {1 / fer_seconds:,.1f} |")
            for name, seconds in e2e.items():
                print(f"\nferkit {name} end-to-end / fer: {fer_seconds / seconds:.1f}x")

    if "folder" in args.sections:
        folder_throughput(frames, args)
    if "stream" in args.sections:
        stream_throughput(frames)

    if "groups" in args.sections:
        print("\n## Group photos and small faces (faces found / ms per image)\n")
        scenes = {
            "collage 1973x512, 4 faces": collage(pics),
            "1280x720, 8 faces of 24 px": small_faces(pics, 24),
        }
        print("| detector | " + " | ".join(scenes) + " |")
        print("| --- |" + " ---: |" * len(scenes))
        candidates = [("blazeface", {"tiles": t}) for t in ("never", "auto", "always")]
        candidates += [(d, {}) for d in ("hog", "haar") if _available(d)]
        for det_name, kw in candidates:
            detector = create_detector(det_name, min_size=15, **kw)
            cells = []
            for scene in scenes.values():
                ms = timeit(lambda d=detector, s=scene: d.detect(s), max(1, args.repeat // 4)) * 1000
                cells.append(f"{len(detector.detect(scene))} / {ms:.1f}")
            label = det_name + (f" tiles={kw['tiles']}" if kw else "")
            print(f"| {label} | " + " | ".join(cells) + " |")

    if "photos" in args.sections:
        print("\n## Photos that ship in packages\n")
        rec_by = {
            d: Recognizer("default", detector=d)
            for d in list_detectors()
            if d not in ("none", "auto") and _available(d)
        }
        for name, photo in pics.items():
            for det_name, rec in rec_by.items():
                found = rec.recognize(photo)
                desc = "; ".join(f"{f.box} {f.label} {f.confidence:.0%}" for f in found) or "no face"
                print(f"- {name} ({photo.shape[1]}x{photo.shape[0]}), {det_name}: {desc}")


def folder_throughput(frames: list[np.ndarray], args, n_files: int = 200, rounds: int = 3) -> None:
    """Images/s over a folder of 640x480 JPEG files, reading included: ``predict_files`` (what
    ``ferkit predict FOLDER`` runs) one image at a time and with its default workers, and fer
    reading the same files with OpenCV, in the same run; each the best of ``rounds`` passes."""
    import cv2

    from ferkit.runtime.batch import auto_workers, predict_files

    print("\n## A folder of 640x480 JPEG files, reading included (default model, flip TTA)\n")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(n_files):
            paths.append(str(Path(tmp, f"frame{i:04d}.jpg")))
            cv2.imwrite(paths[-1], cv2.cvtColor(frames[i % len(frames)], cv2.COLOR_RGB2BGR))
        rec = Recognizer("default")
        print("| pipeline | images/s |")
        print("| --- | ---: |")
        rates = {}
        for workers in sorted({1, auto_workers(rec)}):
            best = min(_timed_list(predict_files(paths, rec, workers=workers)) for _ in range(rounds))
            rate = rates[workers] = n_files / best  # the best of the rounds, as everywhere here
            print(f"| ferkit predict_files, {workers} worker(s) | {rate:,.1f} |")
        fer_seconds = peer_seconds(args, "fer-files", tmp, rounds)
    if fer_seconds:
        fer_ips = 1 / fer_seconds
        print(f"| fer package (cv2.imread + detect_emotions) | {fer_ips:,.1f} |")
        for workers, rate in rates.items():
            print(f"\nferkit folder, {workers} worker(s) / fer: {rate / fer_ips:.1f}x")


def stream_throughput(frames: list[np.ndarray], n_frames: int = 400, rounds: int = 3) -> None:
    """Frames/s of a video's frames in order through ``process_frames`` (what ``ferkit video``
    runs), detection on every frame, default model with flip: one detection worker and the
    default for a file; each the best of ``rounds`` passes over ``n_frames`` in-memory frames."""
    from ferkit.runtime.batch import auto_workers
    from ferkit.runtime.video import process_frames

    print("\n## A video's 640x480 frames in order (process_frames, detection on every frame)\n")
    print("| detection workers | frames/s |")
    print("| --- | ---: |")
    rec = Recognizer("default")
    stream = [(i, i / 25, frames[i % len(frames)]) for i in range(n_frames)]
    for workers in sorted({1, auto_workers(rec)}):
        best = min(_timed_list(process_frames(iter(stream), rec, workers=workers)) for _ in range(rounds))
        print(f"| {workers} | {n_frames / best:,.1f} |")


def _timed_list(results) -> float:
    start = time.perf_counter()
    for _ in results:
        pass
    return time.perf_counter() - start


def _available(name: str) -> bool:
    try:
        create_detector(name)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
