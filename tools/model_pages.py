"""Write the documentation's model pages (docs/models/) from the shipped models' cards.

Usage::

    python tools/model_pages.py --data DATASETS_DIR    # fer2013.tar.gz and fer2013new.csv inside

One page per shipped model: what it is, its input and labels, the training recipe and data,
the metrics per split from its card (accuracy with its 95% interval, macro-F1, balanced
accuracy, calibration error, per-class F1), the CPU those figures were measured on, its
speed on this CPU, its licence, and a confusion-matrix picture drawn from an evaluation run
here (PrivateTest, flip TTA; FER+ test for the FER+ model). Without ``--data`` the pictures
already in docs/models/img are kept and the rest is rewritten. ``docs/models/index.md``
gets the table of all of them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ferkit.card import ModelCard
from ferkit.runtime.catalog import default_model_name, model_bytes, resolve_model, shipped_models
from ferkit.runtime.classifier import load_model
from ferkit.utils import cpu_description

DOCS = Path(__file__).resolve().parents[1] / "docs" / "models"
SPLIT_NAMES = {
    "PrivateTest": "PrivateTest",
    "PrivateTest_tta_flip": "PrivateTest, flip TTA",
    "SFEW_Val": "SFEW 2.0 Val",
    "SFEW_Val_tta_flip": "SFEW 2.0 Val, flip TTA",
}
RECIPE_KEYS = (
    "model",
    "model_args",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "schedule",
    "weight_decay",
    "label_smoothing",
    "ferplus_mode",
    "distill",
    "momentum",
    "nesterov",
    "warmup_epochs",
    "balance",
    "teacher",
    "kd_weight",
    "kd_temperature",
    "init",
    "init_backbone_only",
    "precision",
)


def speed(name: str, rounds: int = 3) -> float:
    """Faces a second in batches of 64 on 2 threads, best of ``rounds`` over 1,024 faces."""
    model = load_model(name)
    faces = np.random.default_rng(0).integers(0, 256, (1024, 48, 48), dtype=np.uint8)
    model.predict_proba(faces[:64])
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        model.predict_proba(faces, batch_size=64)
        best = min(best, time.perf_counter() - start)
    return len(faces) / best


def data_for(card: ModelCard, root: Path) -> tuple[Path, str]:
    """The evaluation data of a model's card figures, and what to call its test split."""
    if card.get("label_set") == "ferplus" or len(card.labels) == 8:
        return root / "fer2013new.csv", "FER+ test"
    return root / "fer2013.tar.gz", "FER-2013 PrivateTest"


def confusion_picture(name: str, data: Path, out: Path) -> None:
    from ferkit.evaluate.plots import plot_confusion
    from ferkit.evaluate.run import evaluate_models

    result = evaluate_models([name], data, split="PrivateTest", tta="flip")
    entry = result.entries[0]
    plot_confusion(
        np.asarray(entry.report.confusion),
        result.labels,
        out,
        title=f"{name}: {entry.report.accuracy:.2%} with flip TTA (n = {entry.report.n:,})",
    )


def _pct(value) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) else "-"


def page(name: str, card: ModelCard, size: int, faces_per_s: float, cpu: str, test_name: str) -> str:
    default = " (the default)" if name == default_model_name() else ""
    lines = [f"# `{name}`{default}", ""]
    if card.kind == "head":
        kind = (
            f"a classifier head on the features of {', '.join(f'`{m}`' for m in card.members)} (as shipped)"
        )
    else:
        kind = "an ensemble" if card.members else f"`{card.architecture}`"
    quant = card.get("quantization") or ("a float32 head" if card.kind == "head" else "float32")
    lines += [
        f"{kind}; {quant.split(' (')[0]}. Use it as `ferkit predict --model {name}` or "
        f'`ferkit.Recognizer("{name}")`.',
        "",
        "| | |",
        "| --- | --- |",
        f"| labels | {', '.join(card.labels)} |",
        f"| input | {card.input_size}x{card.input_size} {card.color} |",
        f"| file size | {size / 1e6:.2f} MB |",
    ]
    if card.kind == "head":
        own = resolve_model(name).stat().st_size
        lines[-1] = (
            f"| file size | {own / 1e6:.2f} MB, and its backbones' {(size - own) / 1e6:.2f} MB (shipped) |"
        )
    if card.get("parameters"):
        lines.append(f"| parameters | {int(card.get('parameters')):,} |")
    macs = card.get("macs")
    if macs:
        lines.append(f"| MACs a face | {int(macs) / 1e6:,.0f} M |")
    lines.append(f"| speed here | {faces_per_s:,.0f} faces/s (batches of 64, 2 threads, {cpu}) |")
    if card.get("epochs"):
        hours = float(card.get("train_seconds") or 0) / 3600
        hardware = card.get("hardware") or "?"
        lines.append(f"| training | {card.get('epochs')} epochs, {hours:.1f} h on {hardware} |")
    lines += ["", "## Metrics", ""]
    lines.append(f"On {test_name}, measured on {card.get('metrics_cpu') or 'an unrecorded CPU'}:")
    lines += [
        "",
        "| evaluation | accuracy | 95% interval | macro-F1 | balanced accuracy | calibration error | faces |",
    ]
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key, m in card.metrics.items():
        ci = m.get("accuracy_ci95") or [None, None]
        lines.append(
            f"| {SPLIT_NAMES.get(key, key)} | {_pct(m.get('accuracy'))} | {_pct(ci[0])} - {_pct(ci[1])} | "
            f"{m.get('macro_f1', 0):.4f} | {_pct(m.get('balanced_accuracy'))} | {m.get('ece', 0):.4f} | "
            f"{m.get('n', '')} |"
        )
    main = "SFEW_Val" if card.kind == "head" and "SFEW_Val" in card.metrics else "PrivateTest"
    f1 = card.metrics.get(main, next(iter(card.metrics.values()), {})).get("per_class_f1") or {}
    flip_f1 = card.metrics.get(f"{main}_tta_flip", {}).get("per_class_f1") or {}
    if f1:
        lines += ["", f"Per-class F1 on {SPLIT_NAMES.get(main, main)}:", ""]
        lines += ["| class | F1 | F1 with flip TTA |", "| --- | ---: | ---: |"]
        for label, value in f1.items():
            flip = f"{flip_f1[label]:.3f}" if label in flip_f1 else "-"
            lines.append(f"| {label} | {value:.3f} | {flip} |")
    confusion = card.metrics.get(f"{main}_tta_flip", {}).get("confusion")
    if confusion:
        lines += ["", f"Confusion matrix on {SPLIT_NAMES.get(main, main)}, flip TTA (rows: true class):", ""]
        lines.append("| true \\ predicted | " + " | ".join(card.labels) + " |")
        lines.append("| --- |" + " ---: |" * len(card.labels))
        for label, row in zip(card.labels, confusion, strict=True):
            lines.append(f"| **{label}** | " + " | ".join(str(v) for v in row) + " |")
    if (DOCS / "img" / f"{name}-confusion.png").exists():
        lines += ["", f"![Confusion matrix of {name}](img/{name}-confusion.png)"]
    if card.kind == "head":
        lines += ["", "## Backbones", ""]
        lines.append(
            "The faces go through these shipped models as they are; the head classifies "
            f"{card.get('head_input') or 'their joined features'}:"
        )
        lines += ["", *(f"- `{m}`" for m in card.members)]
    elif card.members:
        lines += ["", "## Members", "", "| member | weight |", "| --- | ---: |"]
        weights = card.get("weights") or [1 / len(card.members)] * len(card.members)
        for member, weight in zip(card.members, weights, strict=False):
            lines.append(f"| `{member}` | {weight:.3f} |")
    recipe = card.recipe or {}
    if recipe:
        lines += ["", "## Recipe", ""]
        shown = {k: recipe[k] for k in RECIPE_KEYS if recipe.get(k) not in (None, "", [], {})}
        for key in ("data", "pixels", "init", "teacher"):
            if isinstance(shown.get(key), str):
                shown[key] = Path(shown[key]).name  # the file, not where it lay
        data = recipe.get("data")
        if data and card.kind == "head":
            backbones = " ".join(card.members)
            lines.append(
                f"Fitted on `{Path(str(data)).name}` ({recipe.get('split')}) with `ferkit adapt {backbones}`:"
            )
            lines.append("")
            shown = {
                k: recipe[k]
                for k in ("split", "weight_decay", "weight_decay_cv", "augment", "fit")
                if k in recipe
            }
        elif data:
            lines.append(f"Trained on `{Path(str(data)).name}` with `ferkit train`:")
            lines.append("")
        lines += ["```yaml", *(f"{k}: {json.dumps(v)}" for k, v in shown.items()), "```"]
        aug = recipe.get("augment")
        if isinstance(aug, dict) and aug:
            lines += ["", "Augmentation: " + ", ".join(f"{k} {v}" for k, v in aug.items() if v), ""]
    lines += ["", "## Licence", "", card.get("license") or "MIT", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="folder with fer2013.tar.gz and fer2013new.csv")
    parser.add_argument("--only", nargs="*", help="rewrite these models' pages only (the index stays)")
    args = parser.parse_args()
    (DOCS / "img").mkdir(parents=True, exist_ok=True)
    cpu = cpu_description()
    rows = []
    for name in shipped_models():
        if args.only and name not in args.only:
            continue
        path = resolve_model(name)
        card = ModelCard.read(path)
        size = model_bytes(path, card.members)
        data, test_name = data_for(card, args.data) if args.data else (None, data_for(card, Path())[1])
        if card.kind == "head" and "SFEW_Val" in card.metrics:
            test_name += " and SFEW 2.0 Val"
        if data is not None:
            confusion_picture(name, data, DOCS / "img" / f"{name}-confusion.png")
        rate = speed(name)
        (DOCS / f"{name}.md").write_text(page(name, card, size, rate, cpu, test_name))
        plain, flip = card.metrics.get("PrivateTest", {}), card.metrics.get("PrivateTest_tta_flip", {})
        rows.append(
            f"| [`{name}`]({name}.md) | {test_name} | {_pct(plain.get('accuracy'))} | "
            f"{_pct(flip.get('accuracy'))} | {rate:,.0f} | {size / 1e6:.1f} MB |"
        )
        print(f"wrote {DOCS / (name + '.md')}")
    index = [
        "# Shipped models",
        "",
        "Every model below ships inside the package: `ferkit predict --model NAME`, "
        '`ferkit.Recognizer("NAME")`, `ferkit models` lists them. Accuracy is from each card '
        "(the CPU it was measured on is on each page); speed was measured here, in batches of "
        f"64 on 2 threads of {cpu}.",
        "",
        "| model | test set | accuracy | with flip TTA | faces/s | size |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "These pages are written by `python tools/model_pages.py --data DATASETS_DIR` from the cards.",
        "",
    ]
    if not args.only:
        (DOCS / "index.md").write_text("\n".join(index))


if __name__ == "__main__":
    main()
