r"""A new classifier head on shipped models' features: a domain or class set in seconds.

Usage::

    report = fit_head(["ferplus"], "data/sfew", "wild.onnx")   # train split: SFEW Train
    report.weight_decay, report.cv_accuracy                    # chosen by 5-fold CV
    load_model("wild.onnx").predict_proba(faces)                # the backbones + the head

    ferkit adapt ferplus --data data/sfew --out wild.onnx

The backbones stay as they ship (int8, frozen); each training face and its mirror image go
through them once, and a multinomial logistic regression (L2, L-BFGS) is fitted on their
joined features, standardised. The standardisation is folded into the head, which is saved
as a tiny ONNX file (features in, probabilities out) whose card names the backbones: the
runtime (``HeadClassifier``) runs them and the head as one model. Unless given, the weight
decay is the one of ``WEIGHT_DECAYS`` with the best 5-fold cross-validated accuracy on the
training split. The folds split faces at random; where the split holds several frames of
one clip or photos of one person, a fold then shares them with the others and the estimate
is optimistic. ``groups``, a regular expression on each file's name, keeps faces whose names
give the same match (its first group, if it has one) in one fold: ``r"^(.+?)_\d"`` groups
SFEW's faces by film (``AlexEmma_000225840_00000024.png``), ``r"^S\d+"`` CK+'s by subject.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError

WEIGHT_DECAYS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
FOLDS = 5


@dataclass
class HeadReport:
    path: Path
    backbones: list[str]
    labels: list[str]
    n_train: int  # faces (each also seen mirrored)
    feature_dim: int
    weight_decay: float
    cv_accuracy: dict[float, float] = field(default_factory=dict)  # weight decay -> CV accuracy
    train_accuracy: float = 0.0
    seconds: float = 0.0
    folds: str = "random"  # how the cross-validation folds were made


def group_folds(names, pattern: str, source: str, folds: int = 5) -> tuple[np.ndarray, int]:
    """Fold of each face such that faces of one group share a fold, and the number of groups.

    A face's group is what ``pattern`` matches in its file name (the first group of the
    match, if the pattern has one). Groups go to folds largest first, each to the fold with
    the fewest faces so far, so that folds come out near equal; deterministic."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise FerkitError(f"--groups {pattern!r}: not a regular expression ({exc})") from exc
    if names is None:
        raise FerkitError(
            f"{source}: --groups needs the images' file names, which only a folder or zip of "
            "images has (not a FER-2013 CSV or a packed file made from one)"
        )
    keys = []
    for name in names:
        base = str(name).rsplit("/", 1)[-1]
        match = regex.search(base)
        if match is None:
            raise FerkitError(f"{source}: {name}: --groups {pattern!r} matches nothing in its file name")
        keys.append(match.group(1) if regex.groups else match.group(0))
    groups, index, sizes = np.unique(np.asarray(keys), return_inverse=True, return_counts=True)
    if len(groups) < folds:
        raise FerkitError(
            f"{source}: --groups {pattern!r} gives {len(groups)} group(s); {folds}-fold "
            f"cross-validation needs at least {folds}"
        )
    fold_of_group, load = np.empty(len(groups), np.int64), np.zeros(folds, np.int64)
    for g in sorted(range(len(groups)), key=lambda g: (-sizes[g], groups[g])):
        fold_of_group[g] = int(np.argmin(load))
        load[fold_of_group[g]] += sizes[g]
    return fold_of_group[index], len(groups)


def _fit(x: np.ndarray, y: np.ndarray, classes: int, weight_decay: float) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression: ``(W (classes, D), b)`` minimising the mean cross-entropy
    plus ``weight_decay`` * |W|^2, by L-BFGS (deterministic: zero start)."""
    import torch

    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).long()
    w = torch.zeros(classes, x.shape[1], requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, tolerance_grad=1e-6, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w.T + b, yt) + weight_decay * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy()


def _standardise(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return train.mean(0), train.std(0) + 1e-3


def _accuracy(w, b, mu, sd, plain: np.ndarray, mirrored: np.ndarray, y: np.ndarray) -> float:
    """Accuracy with flip TTA: the mean of the face's and its mirror's probabilities."""

    def probs(f):
        z = ((f - mu) / sd) @ w.T + b
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    return float(((probs(plain) + probs(mirrored)).argmax(1) == y).mean())


def head_onnx(w: np.ndarray, b: np.ndarray, mu: np.ndarray, sd: np.ndarray):
    """features (N, D) -> softmax(((f - mu) / sd) W^T + b), the standardisation folded in."""
    from onnx import TensorProto, helper, numpy_helper

    wf = (w / sd).astype(np.float32)  # (classes, D)
    bf = (b - wf @ mu).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["features", "head.weight", "head.bias"], ["logits"], transB=1),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "ferkit_head",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", w.shape[1]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", w.shape[0]])],
        [numpy_helper.from_array(wf, "head.weight"), numpy_helper.from_array(bf, "head.bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="ferkit")
    model.ir_version = 9
    return model


def fit_head(
    backbones: list[str],
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: str = "train",
    weight_decay: float | None = None,
    labels: str | None = None,
    groups: str | None = None,
) -> HeadReport:
    """Fit a head on ``backbones``' features of ``data``'s ``split`` and save it at ``out``
    (``.onnx`` with a card, ``.json`` beside it). ``groups``: cross-validation folds by a
    regular expression on the file names (module docstring)."""
    from ferkit.card import ModelCard, save_onnx
    from ferkit.data import load_dataset
    from ferkit.runtime.catalog import resolve_model
    from ferkit.runtime.classifier import OnnxClassifier, joined_features
    from ferkit.utils import cpu_description

    start = time.perf_counter()
    if not backbones:
        raise FerkitError("give at least one backbone (a shipped model name or a ferkit .onnx file)")
    if weight_decay is not None and weight_decay < 0:
        raise FerkitError(f"--weight-decay must be 0 or more, not {weight_decay}")
    nets = []
    for name in backbones:
        path = resolve_model(name)
        if path.suffix != ".onnx":
            raise FerkitError(f"{name}: a backbone is a single model (.onnx), not an ensemble card")
        nets.append(OnnxClassifier(path, features=True))
    size = max(n.input_size for n in nets)
    color = "rgb" if any(n.card.color == "rgb" for n in nets) else "gray"
    ds = load_dataset(data, size=size, color=color, labels=labels)
    train = ds.pick(split)
    counts = np.bincount(train.labels, minlength=len(ds.label_set.names))
    if len(train) < 2 * FOLDS or (counts > 0).sum() < 2:
        raise FerkitError(f"{data}: {len(train)} training faces in {(counts > 0).sum()} classes: too few")
    if groups is not None:  # checked before the features are computed
        folds, n_groups = group_folds(train.names, groups, str(data), FOLDS)
        how = f"by file-name group ({groups!r}: {n_groups} groups)"
    else:
        folds, how = np.random.default_rng(0).permutation(len(train)) % FOLDS, "random"
    plain = joined_features(nets, train.images)
    mirrored = joined_features(nets, np.ascontiguousarray(train.images[:, :, ::-1]))
    y, classes = train.labels, len(ds.label_set.names)

    cv: dict[float, float] = {}
    if weight_decay is None:
        for wd in WEIGHT_DECAYS:
            right = 0.0
            for k in range(FOLDS):
                fit, held = folds != k, folds == k
                mu, sd = _standardise(plain[fit])
                x = (np.concatenate([plain[fit], mirrored[fit]]) - mu) / sd
                w, b = _fit(x, np.concatenate([y[fit], y[fit]]), classes, wd)
                right += _accuracy(w, b, mu, sd, plain[held], mirrored[held], y[held]) * held.sum()
            cv[wd] = right / len(y)
        weight_decay = max(cv, key=lambda wd: cv[wd])
    mu, sd = _standardise(plain)
    w, b = _fit((np.concatenate([plain, mirrored]) - mu) / sd, np.concatenate([y, y]), classes, weight_decay)
    seconds = time.perf_counter() - start
    card = ModelCard(
        labels=tuple(ds.label_set.names),
        input_size=size,
        color=color,
        architecture="linear head on " + " + ".join(backbones),
        normalization={"applied_in_graph": True, "where": "in each backbone"},
        recipe={
            "data": Path(data).name,  # the dataset, not where it lay
            "split": str(train.splits[0]),  # the split's own name (train -> Train)
            "weight_decay": weight_decay,
            "weight_decay_cv": {str(k): round(v, 4) for k, v in cv.items()},
            "cv_folds": how if cv else None,
            "augment": "each face and its mirror image",
            "fit": "multinomial logistic regression, L2, L-BFGS, standardised features",
        },
        license=(
            f"the head: MIT, fitted on {Path(data).name} (its own terms apply). "
            f"Backbones: {'; '.join(n.card.license for n in nets)}"
        ),
        kind="head",
        members=tuple(backbones),
        extra={
            "input_range": "the backbones' input: float32 pixels in [0, 1]",
            "output": "probabilities (softmax in graph)",
            "head_input": f"the backbones' features joined, {plain.shape[1]} values a face",
            "parameters": int(w.size + b.size),  # the head's own; the backbones' are on their cards
            "macs": int(sum(int(n.card.get("macs") or 0) for n in nets) + w.size),  # backbones + head
            "train_faces": int(len(y)),
            "train_seconds": round(seconds, 1),
            "hardware": cpu_description(),
        },
    )
    out = Path(out)
    save_onnx(head_onnx(w, b, mu, sd), card, out)
    return HeadReport(
        out,
        list(backbones),
        list(ds.label_set.names),
        int(len(y)),
        int(plain.shape[1]),
        float(weight_decay),
        cv,
        _accuracy(w, b, mu, sd, plain, mirrored, y),
        seconds,
        how,
    )
