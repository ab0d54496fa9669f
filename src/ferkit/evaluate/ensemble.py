"""Ensembles of classifiers: mean of probabilities, optionally weighted (weights fitted on validation).

Usage::

    w = fit_weights([p_val_a, p_val_b], val_labels)      # on PublicTest, never the test split
    probs = combine([p_test_a, p_test_b], w)
    chosen, trace = select_members([p_val_a, p_val_b, p_val_c], val_labels)  # which to keep

Weights fitted on a split always lower that split's log-loss as members are added (a weight can
be 0), so members are chosen by *cross-validated* log-loss on it: weights fitted on k-1 folds,
scored on the fold left out.
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


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    p = np.asarray(probs, np.float64)[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def cv_log_loss(probs: list[np.ndarray], labels: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Held-out log-loss of the fitted ensemble: weights fitted on k-1 folds, scored on the k-th."""
    labels = np.asarray(labels)
    if len(probs) == 1:
        return log_loss(probs[0], labels)
    order = np.random.default_rng(seed).permutation(len(labels))
    total = 0.0
    for held in np.array_split(order, folds):
        train = np.setdiff1d(order, held)
        w = fit_weights([p[train] for p in probs], labels[train])
        total += log_loss(combine([p[held] for p in probs], w), labels[held]) * len(held)
    return total / len(labels)


def select_members(
    probs: list[np.ndarray], labels: np.ndarray, folds: int = 5, min_gain: float = 1e-4
) -> tuple[list[int], list[tuple[list[int], float]]]:
    """Forward selection (Caruana et al. 2004) by cross-validated log-loss.

    Starts from the best single member and adds, one at a time, the member that lowers the
    held-out log-loss most; stops when none lowers it by ``min_gain``. Returns the chosen indices
    and the trace: each step's members and their cross-validated log-loss.
    """
    if len(probs) < 2:
        raise ValueError("selection needs at least two candidates")
    remaining = list(range(len(probs)))
    scores = {i: cv_log_loss([probs[i]], labels) for i in remaining}
    chosen = [min(scores, key=scores.get)]
    remaining.remove(chosen[0])
    trace = [(list(chosen), scores[chosen[0]])]
    while remaining:
        tries = {i: cv_log_loss([probs[j] for j in chosen + [i]], labels, folds) for i in remaining}
        best = min(tries, key=tries.get)
        if tries[best] > trace[-1][1] - min_gain:
            break
        chosen.append(best)
        remaining.remove(best)
        trace.append((list(chosen), tries[best]))
    return chosen, trace
