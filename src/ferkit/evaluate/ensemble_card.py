"""An ensemble as a model: a JSON card naming ONNX members and weights fitted on validation.

Usage::

    card = build_ensemble_card(["accurate", "fast"], "fer2013.tar.gz", "ensemble.json")
    Recognizer("ensemble.json")        # loads, evaluates and recognises like any single model
"""

from __future__ import annotations

import platform
from dataclasses import replace
from pathlib import Path

from ferkit.card import LICENSE, ModelCard
from ferkit.data import FaceDataset, load_dataset
from ferkit.errors import FerkitError
from ferkit.evaluate.ensemble import fit_weights, select_members
from ferkit.evaluate.run import ModelFaces, card_metrics
from ferkit.runtime.catalog import resolve_model
from ferkit.runtime.classifier import OnnxClassifier
from ferkit.runtime.tta import predict_tta


def _member_name(member: str, path: Path, card_dir: Path) -> str:
    """Shipped names stay names; files in the card's folder (or below) are stored relative to it,
    so the folder can move as a whole; files elsewhere keep their absolute path."""
    if Path(member).suffix != ".onnx":
        return member
    path, card_dir = Path(path).resolve(), Path(card_dir).resolve()
    return path.relative_to(card_dir).as_posix() if path.is_relative_to(card_dir) else str(path)


def build_ensemble_card(
    members: list[str],
    data,
    out,
    *,
    tta: str = "flip",
    fit_split: str = "PublicTest",
    test_split: str = "PrivateTest",
    equal: bool = False,
    select: bool = False,
) -> ModelCard:
    """Write an ensemble card (``.json``) for ONNX members: weights fitted on ``fit_split``.

    The weights minimise the log-loss of the members' ``tta`` probabilities on ``fit_split``
    (never the test split); ``equal`` gives every member the same weight instead (when no
    held-out split is left: members fine-tuned on the only other split fit it too well). With
    ``select``, ``members`` are candidates: forward selection by cross-validated log-loss on
    ``fit_split`` keeps some of them (the card's recipe records each step). The new ensemble
    is then evaluated on ``test_split`` with and without ``tta`` by the same code as ``ferkit
    eval``, and those figures go into the card.
    """

    if len(members) < 2:
        raise FerkitError("an ensemble needs at least two members")
    if select and equal:
        raise FerkitError("choose members by fitted weights (--select) or give them equal weights, not both")
    if fit_split == test_split and not equal:
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
    ds.pick(test_split)  # a missing split fails before any work
    selection = None
    if equal:
        weights = [1.0 / len(clfs)] * len(clfs)
        how = "equal weights"
    else:
        fit = ds.pick(fit_split)
        framed = ModelFaces(data, "fer2013", ds)  # each member at its own size and colour
        probs = [predict_tta(c, framed.faces(c, fit_split), tta) for c in clfs]
        if select:
            chosen, trace = select_members(probs, fit.labels)
            selection = [
                {"members": [members[i] for i in step], "cv_log_loss": round(loss, 5)} for step, loss in trace
            ]
            if len(chosen) < 2:
                raise FerkitError(
                    f"no ensemble of {', '.join(members)} beats {members[chosen[0]]} alone on "
                    f"cross-validated {fit_split} log-loss; use it on its own"
                )
            keep = sorted(chosen)
            members, paths, clfs, probs = ([seq[i] for i in keep] for seq in (members, paths, clfs, probs))
        weights = fit_weights(probs, fit.labels)
        how = f"log-loss-optimal simplex weights on {fit_split} with {tta} TTA"
    names = [_member_name(m, p, out.parent) for m, p in zip(members, paths, strict=True)]
    cards = [c.card for c in clfs]
    card = ModelCard(
        labels=tuple(labels),
        # the runtime crops at the largest size, in colour if any member takes colour
        input_size=max(c.input_size for c in clfs),
        color="rgb" if any(c.card.color == "rgb" for c in clfs) else "gray",
        architecture="ensemble(" + ", ".join(c.architecture or "?" for c in cards) + ")",
        normalization={"note": "each member's own (applied in its graph)"},
        recipe={
            "members": names,
            "weights": how,
            "member_recipes": [c.recipe for c in cards],
            **({"selection": selection} if selection else {}),
        },
        license=cards[0].license or LICENSE,
        kind="ensemble",
        members=tuple(names),
        member_weights=tuple(round(float(w), 6) for w in weights),
        extra={
            "tta": tta,
            "epochs": {n: c.get("epochs") for n, c in zip(names, cards, strict=True)},
            "train_seconds": sum(int(float(c.get("train_seconds") or 0)) for c in cards),
            "hardware": "; ".join(dict.fromkeys(str(c.get("hardware", "")) for c in cards))
            or platform.processor(),
            "parameters": sum(int(c.get("parameters") or 0) for c in cards),
            "macs": sum(int(c.get("macs") or 0) for c in cards),
        },
    )
    card.write_json(out)
    card = replace(card, metrics=card_metrics(out, data, split=test_split, ttas=("none", tta)))
    card.write_json(out)
    return card
