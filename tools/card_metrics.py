"""Write ``ferkit eval`` results into a model's card (the ONNX metadata and the .json beside it).

Usage::

    ferkit eval wild.onnx --data fer2013.tar.gz --out ev_fer            # and --tta flip
    ferkit eval wild.onnx --data sfew --split Val --tta flip --out ev_sfew
    python tools/card_metrics.py wild.onnx ev_fer/eval.json ev_fer_flip/eval.json
    python tools/card_metrics.py wild.onnx ev_sfew/eval.json --prefix SFEW_

Each eval.json's first entry becomes one metrics entry, keyed by split and TTA
(``PrivateTest_tta_flip``); ``--prefix`` names the dataset where the split name alone would
not (``SFEW_Val``). The card also records this CPU (``metrics_cpu``), since int8 figures are
measured numerics. For run folders, ``ferkit export --metrics`` does the same at export.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import onnx

from ferkit.card import ModelCard, metrics_from_eval, save_onnx
from ferkit.utils import cpu_description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a ferkit .onnx file")
    parser.add_argument("evals", type=Path, nargs="+", help="eval.json files from ferkit eval")
    parser.add_argument("--prefix", default="", help="put before each key, e.g. SFEW_")
    args = parser.parse_args()
    card = ModelCard.read(args.model)
    for path in args.evals:
        result = json.loads(path.read_text())
        evaluated = result["entries"][0]["name"]
        if Path(evaluated).name != args.model.name:
            print(f"note: {path} evaluated {evaluated}, not {args.model.name}")
        for key, value in metrics_from_eval(result).items():
            card.metrics[args.prefix + key] = value
            print(f"{args.prefix + key}: accuracy {value['accuracy']:.2%} (n = {value['n']})")
    card.extra["metrics_cpu"] = cpu_description()
    save_onnx(onnx.load(str(args.model)), card, args.model)
    print(f"wrote {args.model} and {args.model.with_suffix('.json')}")


if __name__ == "__main__":
    main()
