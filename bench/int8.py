"""int8 versions of the shipped models: size and PrivateTest accuracy against fp32, per model.

Usage::

    python bench/int8.py [--models accurate ferplus fast tiny] [--ship] [--fp32 DIR] [--int4]

Each shipped ONNX model is quantised (static QDQ, per-channel weights; 512 Training faces
calibrate the activations) and both versions are evaluated on PrivateTest, plain and with
flip TTA (FER+ models on the FER+ majority labels). ``--ship`` replaces a shipped fp32
file by its int8 version where int8 costs at most ``--max-drop`` points in both, and
rewrites its card's metrics (ONNX metadata and the JSON beside it) from the int8 run.
A model shipped as int8 already is skipped unless ``--fp32 DIR`` holds its fp32 original
(``DIR/NAME.onnx``: ``ferkit export RUN`` or the file from git history) to quantise again;
a ``DIR/NAME.onnx`` from another training run replaces the shipped model, card and all.
``--int4`` stores the weights as int4 (still run as int8 once loaded; half the file, for the
large networks: full-width ``vgg_fer``), under the same rule.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ferkit.card import ModelCard
from ferkit.data import load_dataset
from ferkit.evaluate.run import card_metrics
from ferkit.export import quantize_int8, rewrite_card
from ferkit.runtime.catalog import WEIGHTS_DIR

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fer2013"


def ship(name: str, own: ModelCard, int8_path: Path, int8_metrics: dict[str, dict]) -> None:
    """Replace weights/NAME.onnx by the quantised file; the card's measured metrics follow it.

    The card is the shipped one when ``own`` (the fp32 file's card) is the same training run,
    else the new model's own: a new run replacing NAME brings its recipe, epochs and time.
    """
    card = ModelCard.read_json(WEIGHTS_DIR / f"{name}.json")
    if (own.recipe, own.get("epochs")) != (card.recipe, card.get("epochs")):
        card = own
    metrics = {k: v for k, v in card.metrics.items() if not k.startswith("PrivateTest")} | int8_metrics

    def shipped(quantised: ModelCard) -> ModelCard:  # the file's card says how it was quantised
        how = quantised.extra["quantization"]
        extra = card.extra | {"quantization": f"{how} (bench/int8.py)"}
        return dataclasses.replace(card, metrics=metrics, extra=extra)

    rewrite_card(int8_path, shipped, WEIGHTS_DIR / f"{name}.json")
    shutil.move(int8_path, WEIGHTS_DIR / f"{name}.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["accurate", "ferplus", "fast", "tiny"])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--max-drop", type=float, default=0.2, help="points of accuracy int8 may cost")
    parser.add_argument("--ship", action="store_true")
    parser.add_argument("--fp32", type=Path, help="folder of fp32 originals of models shipped as int8")
    parser.add_argument("--int4", action="store_true", help="weights stored as int4 (run as int8)")
    args = parser.parse_args()
    fer = load_dataset(args.data / "fer2013.tar.gz")
    train = fer.pick("train")
    calibration = train.images[np.random.default_rng(0).choice(len(train), 512, replace=False)]
    q = "int4" if args.int4 else "int8"
    print(f"| model | fp32 MB | {q} MB | fp32 plain | {q} plain | fp32 flip | {q} flip | shipped |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    scratch = Path(tempfile.mkdtemp())
    for name in args.models:
        fp32_path = WEIGHTS_DIR / f"{name}.onnx"
        if args.fp32 and (args.fp32 / f"{name}.onnx").is_file():
            fp32_path = args.fp32 / f"{name}.onnx"
        elif "quantization" in json.loads((WEIGHTS_DIR / f"{name}.json").read_text()):
            print(f"| {name} | already quantised | | | | | | |")
            continue
        own = ModelCard.read(fp32_path)
        data = args.data / ("fer2013new.csv" if own.get("label_set") == "ferplus" else "fer2013.tar.gz")
        int8_path = scratch / f"{name}.onnx"
        test = load_dataset(data).pick("test")
        quantize_int8(
            fp32_path,
            int8_path,
            calibration,
            test.images[:64],
            test.labels[:64],
            "PrivateTest",
            weight_bits=4 if args.int4 else 8,
        )
        sizes = fp32_path.stat().st_size / 1e6, int8_path.stat().st_size / 1e6
        before, after = card_metrics(fp32_path, data), card_metrics(int8_path, data)
        acc = {k: (before[k]["accuracy"] * 100, after[k]["accuracy"] * 100) for k in before}
        ok = all(b - a <= args.max_drop for b, a in acc.values())
        plain, flip = acc["PrivateTest"], acc["PrivateTest_tta_flip"]
        shipped = "yes" if ok and args.ship else ("within limit" if ok else f"no (> {args.max_drop} pt)")
        if ok and args.ship:
            ship(name, own, int8_path, after)
        print(
            f"| {name} | {sizes[0]:.2f} | {sizes[1]:.2f} | {plain[0]:.2f} | {plain[1]:.2f} | "
            f"{flip[0]:.2f} | {flip[1]:.2f} | {shipped} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
