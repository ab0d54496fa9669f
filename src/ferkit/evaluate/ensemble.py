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
