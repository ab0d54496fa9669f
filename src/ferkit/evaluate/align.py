"""Put a model's probabilities in a dataset's label order, with the with/without-disgust variants.

Usage::

    probs6 = align_probs(probs7, model_labels, FER2013_NO_DISGUST, variant="merge-disgust")
"""

from __future__ import annotations

import numpy as np

from ferkit.errors import LabelMismatchError
from ferkit.labels import LabelSet, emotion_key

_MERGE = {"merge-disgust": {"disgust": "angry"}}
_DROP = {"no-disgust": {"disgust"}}


def align_probs(
    probs: np.ndarray,
    model_labels: tuple[str, ...] | list[str],
    target: LabelSet,
    variant: str = "fer2013",
    source: str = "model",
    ignore: tuple[str, ...] | list[str] = (),
) -> np.ndarray:
    """(N, K_model) -> (N, K_target): columns summed into the target's classes, in its order.

    ``merge-disgust`` adds disgust's probability to angry; ``no-disgust`` drops the disgust
    column and renormalises. A model class the target cannot hold, or a target class the
    model never predicts, is an error naming both label sets. ``ignore`` names model classes
    to drop the same way (e.g. FER+'s contempt on 7-class data); naming a class the model
    does not have is an error too.
    """
    merge = _MERGE.get(variant, {})
    model_keys = {emotion_key(n) for n in model_labels}
    ignored = {emotion_key(n) for n in ignore}
    unknown = sorted(ignored - model_keys)
    if unknown:
        raise LabelMismatchError(
            f"{source} has no class {unknown} to ignore (model labels: {list(model_labels)})"
        )
    drop = _DROP.get(variant, set()) | ignored
    target_keys = [emotion_key(n) for n in target.names]
    out = np.zeros((len(probs), len(target)), np.float64)
    covered = set()
    for j, name in enumerate(model_labels):
        key = emotion_key(name)
        key = merge.get(key, key)
        if key in drop:
            continue
        if key not in target_keys:
            raise LabelMismatchError(
                f"{source} predicts {name!r}, which the evaluation labels {list(target.names)} lack "
                f"(model labels: {list(model_labels)}; --ignore {name} drops it)"
            )
        i = target_keys.index(key)
        out[:, i] += probs[:, j]
        covered.add(i)
    missing = [target.names[i] for i in range(len(target)) if i not in covered]
    if missing:
        raise LabelMismatchError(
            f"{source} cannot predict {missing} of the evaluation labels {list(target.names)} "
            f"(model labels: {list(model_labels)})"
        )
    total = out.sum(1, keepdims=True)
    return (out / np.where(total > 0, total, 1)).astype(np.float32)
