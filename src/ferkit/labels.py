"""Emotion label sets, their order, and the mappings between them.

Usage::

    from ferkit.labels import FER2013, FERPLUS, get_label_set, remap
    FER2013.names            # ('angry', 'disgust', ..., 'neutral')
    remap(labels, FERPLUS, FER2013)   # contempt -> -1 (no equivalent)

Every label set names its classes in the order its dataset uses, and each class has a
*canonical* emotion key (``angry``, ``happy``, ...) so that sets written with other words
(FER+'s ``anger``/``happiness``, RAF-DB's numbers) map onto each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferkit.errors import UnknownNameError

# Canonical emotion keys and the spellings users and datasets use for them.
_ALIASES: dict[str, str] = {
    "angry": "angry",
    "anger": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "scared": "fear",
    "afraid": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "calm": "neutral",
    "contempt": "contempt",
}


def canonical_emotion(name: str) -> str | None:
    """Return the canonical key for an emotion spelling, or None if it is not an emotion."""
    return _ALIASES.get(name.strip().lower())


def emotion_key(name: str) -> str:
    """What two label sets match classes by: the canonical emotion (``happiness`` -> ``happy``),
    else the name itself, lower-cased (custom classes)."""
    return canonical_emotion(name) or name.strip().lower()


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of class names.

    ``names`` are the spellings of the source dataset, in its index order; ``number_base``
    is the number of the first class where a dataset numbers its classes (RAF-DB: 1).
    """

    name: str
    names: tuple[str, ...]
    number_base: int = 0

    def __len__(self) -> int:
        return len(self.names)

    @property
    def canonical(self) -> tuple[str | None, ...]:
        return tuple(canonical_emotion(n) for n in self.names)

    def index(self, label: str | int) -> int:
        """Index of a class given by name (any alias) or by the dataset's own number.

        Raises ``KeyError`` with the known names when the label is not in this set.
        """
        if isinstance(label, (int, np.integer)):
            i = int(label) - self.number_base
            if 0 <= i < len(self.names):
                return i
            raise KeyError(f"label number {label} is outside {self.name} ({self.describe()})")
        text = str(label).strip()
        if text.lstrip("-").isdigit():
            return self.index(int(text))
        lowered = text.lower()
        for i, n in enumerate(self.names):
            if n.lower() == lowered:
                return i
        key = canonical_emotion(lowered)
        if key is not None and key in self.canonical:
            return self.canonical.index(key)
        raise KeyError(f"unknown label {text!r} for label set {self.name} ({self.describe()})")

    def describe(self) -> str:
        return ", ".join(f"{i + self.number_base}={n}" for i, n in enumerate(self.names))


FER2013 = LabelSet("fer2013", ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"))
FERPLUS = LabelSet(
    "ferplus",
    ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"),
)
RAFDB = LabelSet(
    "rafdb",
    ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"),
    number_base=1,
)
FER2013_NO_DISGUST = LabelSet("no-disgust", ("angry", "fear", "happy", "sad", "surprise", "neutral"))

_REGISTRY: dict[str, LabelSet] = {s.name: s for s in (FER2013, FERPLUS, RAFDB, FER2013_NO_DISGUST)}

# Variants of the FER-2013 label set that published benchmarks report.
LABEL_VARIANTS: tuple[str, ...] = ("fer2013", "no-disgust", "merge-disgust")


def get_label_set(name: str) -> LabelSet:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("label set", name, _REGISTRY) from None


def mapping(src: LabelSet, dst: LabelSet) -> np.ndarray:
    """Index table ``m`` with ``m[i]`` = index in ``dst`` of ``src`` class ``i``, or -1."""
    dst_canon = dst.canonical
    table = np.full(len(src), -1, dtype=np.int64)
    for i, key in enumerate(src.canonical):
        if key is not None and key in dst_canon:
            table[i] = dst_canon.index(key)
    return table


def remap(labels: np.ndarray, src: LabelSet, dst: LabelSet) -> np.ndarray:
    """Map label indices from ``src`` to ``dst``; classes without an equivalent become -1."""
    labels = np.asarray(labels, dtype=np.int64)
    return mapping(src, dst)[labels]


def apply_variant(labels: np.ndarray, variant: str) -> tuple[np.ndarray, np.ndarray, LabelSet]:
    """Apply a FER-2013 label variant.

    Returns ``(keep_mask, new_labels, label_set)``: ``new_labels`` are indices into
    ``label_set`` for the samples where ``keep_mask`` is True.

    - ``fer2013``: unchanged, 7 classes.
    - ``no-disgust``: disgust samples dropped, 6 classes.
    - ``merge-disgust``: disgust counted as angry, 6 classes.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if variant == "fer2013":
        return np.ones(len(labels), bool), labels.copy(), FER2013
    disgust, angry = FER2013.index("disgust"), FER2013.index("angry")
    if variant == "no-disgust":
        keep = labels != disgust
    elif variant == "merge-disgust":
        keep = np.ones(len(labels), bool)
        labels = np.where(labels == disgust, angry, labels)
    else:
        raise ValueError(f"unknown label variant {variant!r}; choose one of {LABEL_VARIANTS}")
    return keep, remap(labels[keep], FER2013, FER2013_NO_DISGUST), FER2013_NO_DISGUST
