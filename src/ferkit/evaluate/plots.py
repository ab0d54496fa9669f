"""Pictures of an evaluation: confusion-matrix heatmaps and reliability diagrams (matplotlib).

Usage::

    plot_confusion(cm, labels, "confusion.png", title="vgg_fer, PrivateTest")
    plot_reliability({"vgg_fer": bins_table}, "reliability.png")
"""

from __future__ import annotations

import os

import numpy as np

from ferkit.utils import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray, labels: list[str], path: str | os.PathLike, title: str = "") -> None:
    """Counts and row-normalised (recall per class) side by side."""
    plt = _plt()
    cm = np.asarray(cm)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6))
    for ax, mat, fmt, name in ((axes[0], cm, "d", "counts"), (axes[1], norm, ".2f", "row-normalised")):
        im = ax.imshow(mat, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name)
        top = mat.max() if mat.size else 1
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(
                    j,
                    i,
                    format(mat[i, j], fmt),
                    ha="center",
                    va="center",
                    color="white" if mat[i, j] > top * 0.6 else "black",
                    fontsize=8,
                )
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_reliability(
    tables: dict[str, list[dict]], path: str | os.PathLike, title: str = "Reliability"
) -> None:
    """Accuracy against confidence per bin, one line per model; the diagonal is perfect calibration."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5.2))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for name, table in tables.items():
        ax.plot([b["confidence"] for b in table], [b["accuracy"] for b in table], marker="o", label=name)
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
