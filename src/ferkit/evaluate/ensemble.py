"""Ensembles of classifiers: mean of probabilities, optionally weighted (weights fitted on validation).

Usage::

    w = fit_weights([p_val_a, p_val_b], val_labels)      # on PublicTest, never the test split
    probs = combine([p_test_a, p_test_b], w)
"""

from __future__ import annotations

import numpy as np


def combine(probs: list[np.ndarray], weights: np.ndarray | None = None) -> np.ndarray:
    stack = np.stack(probs)  # (M, N, K)
    if weights is None:
        return stack.mean(0)
    weights = np.asarray(weights, np.float64)
    return np.tensordot(weights / weights.sum(), stack, axes=1)


def fit_weights(probs: list[np.ndarray], labels: np.ndarray, steps: int = 300, lr: float = 0.5) -> np.ndarray:
    """Simplex weights minimising the ensemble's log-loss (exponentiated gradient descent)."""
    stack = np.stack(probs).astype(np.float64)  # (M, N, K)
    labels = np.asarray(labels)
    p_true = stack[:, np.arange(len(labels)), labels]  # (M, N): each member's prob of the truth
    w = np.full(len(probs), 1.0 / len(probs))
    for _ in range(steps):
        mix = np.clip(w @ p_true, 1e-12, None)  # (N,)
        grad = -(p_true / mix).mean(1)  # d(NLL)/dw
        w = w * np.exp(-lr * grad)
        w /= w.sum()
    return w


def build_ensemble_card(
    members: list[str],
    data,
    out,
    *,
    tta: str = "flip",
    fit_split: str = "PublicTest",
    test_split: str = "PrivateTest",
) -> dict:
    """Write an ensemble card (``.json``) for ONNX members: weights fitted on ``fit_split``.

    The weights minimise the log-loss of the members' ``tta`` probabilities on ``fit_split``
    (never the test split). The new ensemble is then evaluated on ``test_split`` with and
    without ``tta`` by the same code as ``ferkit eval``, and those figures go into the card.
    """
    import json
    import os
    import platform
    from pathlib import Path

    from ferkit.data import FaceDataset, load_dataset
    from ferkit.errors import FerkitError
    from ferkit.evaluate.run import evaluate_models
    from ferkit.export import metrics_from_eval
    from ferkit.runtime.classifier import OnnxClassifier
    from ferkit.runtime.models import resolve_model
    from ferkit.runtime.tta import predict_tta
    from ferkit.utils import atomic_path

    if len(members) < 2:
        raise FerkitError("an ensemble needs at least two members")
    if fit_split == test_split:
        raise FerkitError(f"ensemble weights are fitted on {fit_split}; evaluate on another split")
    out = Path(out)
    clfs, paths = [], [resolve_model(m) for m in members]
    for m, path in zip(members, paths, strict=True):
        if path.suffix != ".onnx":
            raise FerkitError(f"{m}: ensemble members are ONNX models (shipped names or .onnx files)")
        clfs.append(OnnxClassifier(path))
    labels = clfs[0].labels
    for m, clf in zip(members, clfs, strict=True):
        if clf.labels != labels:
            raise FerkitError(f"{m}: predicts {list(clf.labels)}, the first member {list(labels)}")
    ds = data if isinstance(data, FaceDataset) else load_dataset(data)
    fit = ds.pick(fit_split)
    weights = fit_weights([predict_tta(c, fit.images, tta) for c in clfs], fit.labels)
    # Members named by path are stored relative to the card when they sit beside it.
    names = [
        os.path.relpath(p, out.parent) if Path(m).suffix == ".onnx" else m
        for m, p in zip(members, paths, strict=True)
    ]
    cards = [c.card.extra for c in clfs]
    card = {
        "ferkit_format": 1,
        "kind": "ensemble",
        "architecture": "ensemble(" + ", ".join(str(c.get("architecture", "?")) for c in cards) + ")",
        "members": names,
        "member_weights": [round(float(w), 6) for w in weights],
        "labels": list(labels),
        "input_size": max(c.input_size for c in clfs),
        "color": "gray",
        "normalization": "each member's own (applied in its graph)",
        "tta": tta,
        "recipe": {
            "members": names,
            "weights": f"log-loss-optimal simplex weights on {fit_split} with {tta} TTA",
            "member_recipes": [c.get("recipe", {}) for c in cards],
        },
        "epochs": {n: c.get("epochs") for n, c in zip(names, cards, strict=True)},
        "train_seconds": sum(int(float(c.get("train_seconds") or 0)) for c in cards),
        "hardware": "; ".join(dict.fromkeys(str(c.get("hardware", "")) for c in cards))
        or platform.processor(),
        "parameters": sum(int(c.get("parameters") or 0) for c in cards),
        "macs": sum(int(c.get("macs") or 0) for c in cards),
        "metrics": {},
    }
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(card, indent=2))
    metrics: dict = {}
    for t in dict.fromkeys(["none", tta]):
        result = evaluate_models([str(out)], ds, split=test_split, tta=t)
        metrics.update(metrics_from_eval(result.to_dict()))
    card["metrics"] = metrics
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(card, indent=2))
    return card
