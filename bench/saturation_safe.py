"""Make the shipped int8 models give the same answers on every x86 CPU, and re-measure them.

Usage::

    python bench/saturation_safe.py [--models fast tiny accurate ferplus members/half_kd_s1 ...]

Each shipped QDQ file whose int8 weights exceed [-64, 63] is re-rounded to 7-bit weights
(``ferkit.export.saturation_safe_weights``: without VNNI, ONNX Runtime's u8s8 kernels
saturate in int16 on larger weights), written in place with its card, and its PrivateTest
figures (plain and flip; FER+ models on FER+ labels) are measured again and written to its
card with the CPU they were measured on. Float biases of quantised layers (int4-stored files)
are stored as int32, rounded as ONNX Runtime's fused kernels round them
(``ferkit.export.int32_biases``), so the reference numerics add the same biases as the fused
session. Prints, per model: the figures before and after, and the share of PrivateTest
answers on which the optimised session agrees with the reference numerics (no graph fusion).
The ensemble card is re-measured afterwards with ``--ensemble``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ferkit.card import ModelCard, save_onnx
from ferkit.data import load_dataset
from ferkit.evaluate.run import card_metrics
from ferkit.export import SAFE_WEIGHT_LEVELS, int32_biases, saturation_safe_weights
from ferkit.runtime.catalog import WEIGHTS_DIR
from ferkit.runtime.classifier import OnnxClassifier
from ferkit.utils import cpu_description

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fer2013"
MODELS = [
    "fast",
    "tiny",
    "accurate",
    "ferplus",
    "members/half_kd_s1",
    "members/half_vgg_s1",
    "members/accurate_p180",
]


def figures(metrics: dict[str, dict]) -> str:
    plain, flip = metrics["PrivateTest"]["accuracy"], metrics["PrivateTest_tta_flip"]["accuracy"]
    return f"{plain:.2%} / {flip:.2%}"


def main() -> None:
    import onnx

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--ensemble", action="store_true", help="re-measure ensemble.json too")
    args = parser.parse_args()
    cpu = cpu_description()
    print(f"CPU: {cpu}")
    faces = load_dataset(args.data / "fer2013.tar.gz").pick("test").images
    print("| model | 7-bit weights | int32 biases | before plain / flip | after plain / flip | agreement |")
    print("| --- | ---: | ---: | --- | --- | ---: |")
    for name in args.models:
        path = WEIGHTS_DIR / f"{name}.onnx"
        model = onnx.load(str(path))
        card = ModelCard.from_onnx(model, str(path))
        data = args.data / ("fer2013new.csv" if card.get("label_set") == "ferplus" else "fer2013.tar.gz")
        before = card.metrics
        changed = saturation_safe_weights(model)
        if changed:
            extra = dict(card.extra)
            extra["quantization"] = f"{extra.get('quantization', 'int8')}; {SAFE_WEIGHT_LEVELS}"
            card = dataclasses.replace(card, extra=extra)
        biases = int32_biases(model)
        if changed or biases:
            save_onnx(model, card, path)
        after = card_metrics(path, data)
        extra = dict(card.extra) | {"metrics_cpu": cpu}
        card = dataclasses.replace(card, metrics=after, extra=extra)
        save_onnx(model, card, path)
        clf = OnnxClassifier(path, threads=2)
        optimised = clf.predict_proba(faces, batch_size=64).argmax(1)
        agreement = (optimised == clf.reference_proba(faces).argmax(1)).mean()
        row = [name, changed, biases, figures(before) if before else "-", figures(after), f"{agreement:.4f}"]
        print("| " + " | ".join(map(str, row)) + " |", flush=True)
    if args.ensemble:
        path = WEIGHTS_DIR / "ensemble.json"
        card = ModelCard.read_json(path)
        after = card_metrics("ensemble", args.data / "fer2013.tar.gz")
        before = card.metrics
        card = dataclasses.replace(card, metrics=after, extra=dict(card.extra) | {"metrics_cpu": cpu})
        card.write_json(path)
        print(f"| ensemble | - | - | {figures(before)} | {figures(after)} | - |")


if __name__ == "__main__":
    main()
