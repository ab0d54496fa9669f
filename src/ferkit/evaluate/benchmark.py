"""The benchmark table FER projects publish, generated from models rather than typed.

Usage::

    rows = benchmark_rows(["fast", "runs/vgg_fer-x/"], "fer2013.tar.gz")
    write_table(rows, "results")        # results.md + results.csv

Each row: model, initial weights, accuracy (no TTA and flip TTA), macro-F1, parameters,
size, MACs, epochs, training time and hardware, inference ms per face. Published results
of reference projects can be listed beside ours (clearly marked as published, not measured).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from ferkit.data import FaceDataset
from ferkit.evaluate.run import evaluate_models
from ferkit.utils import atomic_path

# Published PrivateTest accuracies of reference FER projects (their papers / READMEs).
REFERENCES: list[dict[str, Any]] = [
    {
        "model": "ResNet-50 fine-tuned from VGGFace2 (published)",
        "initial weights": "VGGFace2",
        "accuracy": 0.7125,
    },
    {"model": "Kaggle 2013 winner (published)", "initial weights": "-", "accuracy": 0.7116},
    {"model": "VGG-16 + Inception ensemble (published)", "initial weights": "ImageNet", "accuracy": 0.652},
    {"model": "Inception-ResNet-v2 (published)", "initial weights": "ImageNet", "accuracy": 0.650},
    {"model": "Xception fine-tuned (published)", "initial weights": "ImageNet", "accuracy": 0.6485},
    {"model": "Inception-v3 (published)", "initial weights": "ImageNet", "accuracy": 0.6386},
    {"model": "self-made CNN (published)", "initial weights": "-", "accuracy": 0.586},
    {
        "model": "fer package mini-Xception (measured by the project's tester)",
        "initial weights": "-",
        "accuracy": 0.658,
    },
]

# Published FER+ test accuracies (majority labels, Barsoum et al. 2016, VGG13-style network).
FERPLUS_REFERENCES: list[dict[str, Any]] = [
    {
        "model": "VGG13, cross-entropy on vote distributions (Barsoum et al. 2016, published)",
        "initial weights": "-",
        "accuracy": 0.850,
    },
    {
        "model": "VGG13, majority-vote labels (Barsoum et al. 2016, published)",
        "initial weights": "-",
        "accuracy": 0.839,
    },
]


def references_for(label_set: str) -> list[dict[str, Any]]:
    """The published results comparable to a table on this label set."""
    return FERPLUS_REFERENCES if label_set == "ferplus" else REFERENCES


COLUMNS = [
    "model",
    "architecture",
    "initial weights",
    "accuracy",
    "accuracy (flip TTA)",
    "macro-F1",
    "parameters",
    "size (MB)",
    "MMACs",
    "epochs",
    "training time",
    "hardware",
    "ms/face",
]


def _size_mb(name: str, card: dict) -> str:
    from ferkit.runtime.catalog import member_path, resolve_model

    try:
        path = resolve_model(name)
        if card.get("kind") == "ensemble":  # its members' files
            sizes = [member_path(path, str(m)).stat().st_size for m in card.get("members", [])]
            return f"{sum(sizes) / 1e6:.2f} (members)"
    except Exception:
        return ""
    return f"{path.stat().st_size / 1e6:.2f}" if path.suffix == ".onnx" else ""


def _short_path(text: str) -> str:
    """A checkpoint path as its run folder and file (home folders say nothing to readers)."""
    parts = Path(text).parts
    return "/".join(parts[-2:]) if len(parts) > 2 else text


def _epochs(value: Any) -> str:
    if isinstance(value, dict):  # an ensemble: each member's
        return " + ".join(str(v) for v in value.values())
    return str(value)


def benchmark_rows(
    models: list[str], data: str | os.PathLike | FaceDataset, split: str = "PrivateTest"
) -> list[dict]:
    rows = []
    for model in models:  # a path, not its faces: a folder of photos is read at each model's size
        plain = evaluate_models([model], data, split=split).entries[0]
        flipped = evaluate_models([model], data, split=split, tta="flip").entries[0]
        card = plain.card
        seconds = float(card.get("train_seconds") or 0)
        rows.append(
            {
                "model": model,
                "architecture": card.get("architecture", ""),
                "initial weights": _short_path(str(card.get("initial_weights", "scratch"))),
                "accuracy": round(plain.report.accuracy, 4),
                "accuracy (flip TTA)": round(flipped.report.accuracy, 4),
                "macro-F1": round(plain.report.macro_f1, 4),
                "parameters": card.get("parameters", ""),
                "size (MB)": _size_mb(model, card),
                "MMACs": f"{int(card['macs']) / 1e6:.1f}" if card.get("macs") else "",
                "epochs": _epochs(card.get("epochs", "")),
                "training time": f"{seconds / 60:.0f} min" if seconds else "",
                "hardware": card.get("hardware", ""),
                "ms/face": round(plain.ms_per_face or 0, 3),
            }
        )
    return rows


def write_table(
    rows: list[dict], stem: str | os.PathLike, references: bool | list[dict] = True
) -> tuple[Path, Path]:
    """Markdown and CSV tables; published reference rows appended (FER-2013's when ``True``)."""
    refs = REFERENCES if references is True else (references or [])
    all_rows = list(rows) + refs
    md = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for row in all_rows:
        cells = []
        for col in COLUMNS:
            value = row.get(col, "")
            cells.append(
                f"{value:.2%}" if col.startswith("accuracy") and isinstance(value, float) else str(value)
            )
        md.append("| " + " | ".join(cells) + " |")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(all_rows)
    stem = Path(stem)
    md_path, csv_path = stem.with_suffix(".md"), stem.with_suffix(".csv")
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(md) + "\n")
    with atomic_path(csv_path) as tmp:
        tmp.write_text(buf.getvalue())
    return md_path, csv_path
