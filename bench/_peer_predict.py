"""Helper run *inside the peers' virtualenv* by bench/peers.py (never imports ferkit).

Usage (bench/peers.py does this)::

    PEER_PYTHON bench/_peer_predict.py {fer|what-the-face} faces.npy probs.npy
    PEER_PYTHON bench/_peer_predict.py fer-e2e frames.npy - REPEAT    (seconds a frame)
    PEER_PYTHON bench/_peer_predict.py fer-files FOLDER - ROUNDS      (seconds a file)

Reads (N, 48, 48) uint8 face crops, writes (N, 7) probabilities in FER-2013 order
(angry, disgust, fear, happy, sad, surprise, neutral — both peers use this order) and
prints the seconds spent classifying.
"""

import importlib.util
import os
import sys
import time

import cv2
import numpy as np


def fer_package(faces: np.ndarray) -> np.ndarray:
    from fer.fer import FER  # the package root does not re-export it in 25.x

    detector = FER()  # its default path: the bundled mini-Xception (quantised TFLite)
    x = np.stack([cv2.resize(f, (64, 64)) for f in faces]).astype(np.float32)  # fer resizes crops to 64
    x = (x / 255.0 - 0.5) * 2.0  # fer's preprocessing (v2)
    return np.asarray(detector._classify_emotions(x), np.float32)


def what_the_face(faces: np.ndarray) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    # Load its network module by path: the package's own inference module imports
    # torchvision, which does not load with this CPU-only torch. Same weights, same
    # preprocessing as its transform (48x48 grey, ToTensor = /255).
    import what_the_face_classification as pkg  # noqa: F401  (only to find the folder)

    folder = os.path.dirname(pkg.__file__)
    spec = importlib.util.spec_from_file_location("wtf_model", os.path.join(folder, "model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    side = 48
    for _ in range(3):  # its calc_latent_dim(): 3x3 conv (no padding) then 2x2 max-pool, three times
        side = (side - 3 + 1) // 2
    latent = side * side * 112
    net = module.SimpleConvolutionalNetwork(
        3, [[1, 28], [28, 56], [56, 112]], [3, 3, 3], [0, 0, 0], 304, latent
    )
    net.load_state_dict(torch.load(os.path.join(folder, "active_model.pth"), map_location="cpu"))
    net.eval()
    with torch.no_grad():
        x = torch.from_numpy(faces).float().unsqueeze(1) / 255.0
        return torch.cat([F.softmax(net(x[i : i + 256]), 1) for i in range(0, len(x), 256)]).numpy()


def fer_end_to_end(frames: np.ndarray, repeat: int) -> float:
    """Seconds per frame of fer's own pipeline (its Haar detector + classifier)."""
    from fer.fer import FER

    detector = FER()
    bgr = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
    detector.detect_emotions(bgr[0])  # warm-up
    best = float("inf")
    for _ in range(5):  # best of 5 rounds, as bench/recognition.py does for ferkit
        start = time.perf_counter()
        for _ in range(repeat):
            for f in bgr:
                detector.detect_emotions(f)
        best = min(best, (time.perf_counter() - start) / (repeat * len(bgr)))
    return best


def fer_files(folder: str, rounds: int) -> float:
    """Seconds per file of fer on a folder of photos: read each (OpenCV) and run its pipeline."""
    from fer.fer import FER

    detector = FER()
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder))
    detector.detect_emotions(cv2.imread(paths[0]))  # warm-up
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for path in paths:
            detector.detect_emotions(cv2.imread(path))
        best = min(best, (time.perf_counter() - start) / len(paths))
    return best


if __name__ == "__main__":
    which, src, dst = sys.argv[1:4]
    if which == "fer-files":  # src: a folder of photos; dst unused; then the rounds
        print(f"SECONDS {fer_files(src, int(sys.argv[4])):.6f}")
        sys.exit(0)
    if which == "fer-e2e":
        print(f"SECONDS {fer_end_to_end(np.load(src), int(sys.argv[4])):.6f}")
        sys.exit(0)
    faces = np.load(src)
    start = time.perf_counter()
    probs = {"fer": fer_package, "what-the-face": what_the_face}[which](faces)
    seconds = time.perf_counter() - start
    np.save(dst, probs)
    print(f"SECONDS {seconds:.6f}")
