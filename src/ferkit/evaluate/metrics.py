"""Classification metrics from labels and probabilities (numpy only: no torch, no sklearn).

Usage::

    report = classification_report(labels, probs, label_names)
    report.accuracy, report.macro_f1, report.per_class["happy"].f1
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationReport:
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    top2_accuracy: float
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels, np.int64)
    preds = np.asarray(preds, np.int64)
    return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def classification_report(
    labels: np.ndarray, probs: np.ndarray, label_names: list[str] | tuple[str, ...]
) -> ClassificationReport:
    """Accuracy, balanced accuracy, macro-F1, top-2 and per-class P/R/F1/support.

    A class never predicted has precision 0 (not NaN); a class with no samples has recall 0
    and is left out of the balanced accuracy.
    """
    labels = np.asarray(labels, np.int64)
    probs = np.asarray(probs, np.float64)
    k = len(label_names)
    if probs.ndim != 2 or probs.shape[1] != k:
        raise ValueError(
            f"probabilities have shape {probs.shape}, expected (N, {k}) for labels {list(label_names)}"
        )
    preds = probs.argmax(1)
    cm = confusion_matrix(labels, preds, k)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(0).astype(np.float64)
    support = cm.sum(1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    top2 = np.argsort(-probs, axis=1)[:, :2]
    present = support > 0
    return ClassificationReport(
        accuracy=float(tp.sum() / max(len(labels), 1)),
        balanced_accuracy=float(recall[present].mean()) if present.any() else 0.0,
        macro_f1=float(f1.mean()),
        top2_accuracy=float((top2 == labels[:, None]).any(1).mean()) if len(labels) else 0.0,
        per_class={
            name: ClassMetrics(float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
            for i, name in enumerate(label_names)
        },
        confusion=cm.tolist(),
        n=int(len(labels)),
    )


def expected_calibration_error(
    labels: np.ndarray, probs: np.ndarray, bins: int = 15
) -> tuple[float, list[dict]]:
    """ECE (confidence vs accuracy, equal-width bins) and the per-bin table of a reliability diagram."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    table, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            acc, mean_conf = float(correct[in_bin].mean()), float(conf[in_bin].mean())
            ece += in_bin.mean() * abs(acc - mean_conf)
            table.append(
                {
                    "low": float(lo),
                    "high": float(hi),
                    "count": int(in_bin.sum()),
                    "accuracy": acc,
                    "confidence": mean_conf,
                }
            )
    return float(ece), table


def bootstrap_accuracy_ci(
    labels: np.ndarray, preds: np.ndarray, n: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of accuracy (resampling test images)."""
    correct = (np.asarray(labels) == np.asarray(preds)).astype(np.float64)
    if len(correct) == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = np.empty(n)
    for start in range(0, n, 250):  # chunks keep memory small for big test sets
        k = min(250, n - start)
        idx = rng.integers(0, len(correct), size=(k, len(correct)))
        means[start : start + k] = correct[idx].mean(1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))
