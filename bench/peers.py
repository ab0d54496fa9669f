"""ferkit's models against the FER packages that run offline here, on the same PrivateTest images.

Usage::

    python bench/peers.py MODEL [MODEL ...] [--data fer2013.tar.gz] [--peer-python PATH]

MODEL: anything ``ferkit eval`` takes (shipped name, .onnx, run folder). Peers run in their
own virtualenv (they need TensorFlow / an older torch stack; they are not ferkit
dependencies). Make it once::

    python3 -m venv ~/.cache/ferkit/peers-venv
    ~/.cache/ferkit/peers-venv/bin/pip install fer tensorflow-cpu what-the-face-classification \
        torch==2.13.0 "setuptools<80"
    ~/.cache/ferkit/peers-venv/bin/pip uninstall -y opencv-python opencv-contrib-python
    ~/.cache/ferkit/peers-venv/bin/pip install "opencv-contrib-python<5"   # 5.x has no Haar cascades

Prints accuracy, macro-F1 and ms/face for each, classifying the 48x48 crops directly
(no face detection: every model sees the same faces).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from ferkit.data import load_dataset
from ferkit.evaluate.metrics import classification_report
from ferkit.labels import FER2013
from ferkit.runtime.classifier import load_model

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--data", default="../shared/datasets/fer2013/fer2013.tar.gz")
    parser.add_argument("--split", default="PrivateTest")
    parser.add_argument("--peer-python", default=os.path.expanduser("~/.cache/ferkit/peers-venv/bin/python"))
    args = parser.parse_args()
    test = load_dataset(args.data).pick(args.split)
    rows = []
    for spec in args.models:
        predictor = load_model(spec)
        predictor.predict_proba(test.images[:64])  # warm-up
        start = time.perf_counter()
        probs = predictor.predict_proba(test.images)
        ms = (time.perf_counter() - start) * 1000 / len(test)
        rows.append((f"ferkit {spec}", probs, ms))
    if Path(args.peer_python).exists():
        with tempfile.TemporaryDirectory() as tmp:
            faces = Path(tmp, "faces.npy")
            np.save(faces, test.images)
            for peer in ("fer", "what-the-face"):
                out = Path(tmp, f"{peer}.npy")
                proc = subprocess.run(
                    [args.peer_python, str(HERE / "_peer_predict.py"), peer, str(faces), str(out)],
                    capture_output=True,
                    text=True,
                )
                if proc.returncode != 0:
                    print(f"{peer}: failed: {proc.stderr.strip().splitlines()[-1:]}")
                    continue
                seconds = float(proc.stdout.split("SECONDS")[-1])
                rows.append((f"{peer} (peer)", np.load(out), seconds * 1000 / len(test)))
    else:
        print(f"no peers virtualenv at {args.peer_python}: peers skipped (see this script's docstring)")
    print(f"\n{args.split}: {len(test)} faces\n")
    print("| model | accuracy | macro-F1 | ms/face |")
    print("| --- | ---: | ---: | ---: |")
    for name, probs, ms in rows:
        r = classification_report(test.labels, probs, FER2013.names)
        print(f"| {name} | {r.accuracy:.2%} | {r.macro_f1:.4f} | {ms:.3f} |")


if __name__ == "__main__":
    main()
