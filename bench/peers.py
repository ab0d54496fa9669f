"""ferkit's models against the FER packages that run offline here, on the same PrivateTest images.

Usage::

    python bench/peers.py MODEL [MODEL ...] [--data fer2013.tar.gz] [--peer-python PATH]
        [--faceapi ~/.cache/ferkit/npm/vladmandic-face-api-1.7.15.tgz]
        [--human ~/.cache/ferkit/npm/vladmandic-human-3.3.6.tgz]

MODEL: anything ``ferkit eval`` takes (shipped name, .onnx, run folder). Peers run in their
own virtualenv (they need TensorFlow / an older torch stack; they are not ferkit
dependencies). Make it once::

    python3 -m venv ~/.cache/ferkit/peers-venv
    ~/.cache/ferkit/peers-venv/bin/pip install fer tensorflow-cpu what-the-face-classification \
        torch==2.13.0 "setuptools<80"
    ~/.cache/ferkit/peers-venv/bin/pip uninstall -y opencv-python opencv-contrib-python
    ~/.cache/ferkit/peers-venv/bin/pip install "opencv-contrib-python<5"   # 5.x has no Haar cascades

``--faceapi`` adds face-api's expression network (npm ``@vladmandic/face-api``, fetched by
``tools/fetch_npm_weights.sh``), imported by ``ferkit import faceapi`` into a temporary ONNX
file and run by ONNX Runtime like a ferkit model (its 112x112 RGB input is filled from the
same grey crops). ``--human`` adds the emotion network of npm ``@vladmandic/human`` (a
mini-Xception from oarriaga/face_classification, 64x64 grey in [-1, 1]), converted by
``ferkit import tfjs`` and checked against TensorFlow.js where it is installed.

Prints accuracy, macro-F1 and ms/face for each, classifying the crops directly (no face
detection: every model sees the same faces); each model's classes are matched to the
dataset's by emotion name.
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
from ferkit.evaluate.align import align_probs
from ferkit.evaluate.metrics import classification_report
from ferkit.evaluate.run import ModelFaces
from ferkit.runtime.classifier import load_model

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--data", default="../shared/datasets/fer2013/fer2013.tar.gz")
    parser.add_argument("--split", default="PrivateTest")
    parser.add_argument("--peer-python", default=os.path.expanduser("~/.cache/ferkit/peers-venv/bin/python"))
    parser.add_argument("--faceapi", help="face-api's npm tarball: add its expression network as a peer")
    parser.add_argument("--human", help="@vladmandic/human's npm tarball: add its emotion network as a peer")
    args = parser.parse_args()
    ds = load_dataset(args.data)
    test = ds.pick(args.split)
    rows = []
    specs = [(f"ferkit {spec}", spec) for spec in args.models]
    work = tempfile.TemporaryDirectory()
    if args.faceapi:
        from ferkit.importers.faceapi import import_faceapi_expression

        report = import_faceapi_expression(args.faceapi, Path(work.name, "faceapi.onnx"))
        specs.append((f"face-api expression {report.source['version']} (peer)", str(report.path)))
    if args.human:
        from ferkit.importers.tfjs_import import import_tfjs
        from ferkit.labels import FER2013

        out = Path(work.name, "human_emotion.onnx")
        report = import_tfjs(args.human, out, model="emotion", labels=FER2013.names, mean=[0.5], std=[0.5])
        specs.append((f"human emotion {report.source['version']} (peer)", str(report.path)))
    framed = ModelFaces(args.data, "fer2013", ds)  # each network at its own size and colour
    for name, spec in specs:
        predictor = load_model(spec)
        faces = framed.faces(predictor, args.split)
        predictor.predict_proba(faces[:64])  # warm-up
        start = time.perf_counter()
        raw = predictor.predict_proba(faces)
        ms = (time.perf_counter() - start) * 1000 / len(test)
        probs = align_probs(raw, predictor.labels, ds.label_set, "fer2013", source=name)
        rows.append((name, probs, ms))
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
        r = classification_report(test.labels, probs, ds.label_set.names)
        print(f"| {name} | {r.accuracy:.2%} | {r.macro_f1:.4f} | {ms:.3f} |")


if __name__ == "__main__":
    main()
