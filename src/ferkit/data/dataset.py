"""The in-memory dataset every reader returns: images, labels and a split per sample.

Usage::

    ds = ferkit.data.load_dataset("fer2013.tar.gz")
    train = ds.pick("Training")           # or ds.pick("train"): by role
    ds.class_counts()                      # {split: {label: count}}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ferkit.errors import Skipped, SplitError
from ferkit.labels import LabelSet, apply_variant

# Split names readers produce, by the role they play. FER-2013 names first: benchmarks
# train on Training, select on PublicTest and report on PrivateTest.
SPLIT_ROLES: dict[str, tuple[str, ...]] = {
    "train": ("Training", "train", "training"),
    "val": ("PublicTest", "val", "valid", "validation", "dev"),
    "test": ("PrivateTest", "test", "testing"),
}
_SPLIT_ORDER = [name for names in SPLIT_ROLES.values() for name in names]


@dataclass
class FaceDataset:
    """Faces with labels and splits.

    images: (N, H, W) uint8 grey, or (N, H, W, 3) uint8 RGB.
    labels: (N,) int64 indices into ``label_set``.
    splits: (N,) str split name per sample.
    soft_labels: optional (N, C) float32 label distribution (FER+ votes).
    names: optional (N,) str, each image's path inside the dataset (folders and zips of
    images; ``split/label/file.png``), e.g. to keep frames of one clip in one fold.
    """

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    label_set: LabelSet
    source: str = ""
    format: str = ""
    soft_labels: np.ndarray | None = None
    skipped: list[Skipped] = field(default_factory=list)
    names: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if len(self.labels) != n or len(self.splits) != n:
            raise ValueError(
                f"images ({n}), labels ({len(self.labels)}) and splits ({len(self.splits)}) "
                "must have the same length"
            )
        if self.soft_labels is not None and len(self.soft_labels) != n:
            raise ValueError("soft_labels must have one row per image")
        if self.names is not None and len(self.names) != n:
            raise ValueError("names must have one entry per image")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def channels(self) -> int:
        return 1 if self.images.ndim == 3 else int(self.images.shape[3])

    @property
    def split_names(self) -> list[str]:
        present = set(np.unique(self.splits).tolist())
        known = [s for s in _SPLIT_ORDER if s in present]
        return known + sorted(present - set(known))

    def subset(self, index: np.ndarray | Sequence[int]) -> FaceDataset:
        index = np.asarray(index)
        return replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            splits=self.splits[index],
            soft_labels=None if self.soft_labels is None else self.soft_labels[index],
            skipped=list(self.skipped),
            names=None if self.names is None else self.names[index],
        )

    def split_for(self, role: str) -> str | None:
        """The split that plays ``role`` (train / val / test) here, or None (names match in any case)."""
        if role not in SPLIT_ROLES:
            raise SplitError(self.source, f"unknown split role {role!r}; roles are {list(SPLIT_ROLES)}")
        present = {name.lower(): name for name in self.split_names}
        return next((present[n.lower()] for n in SPLIT_ROLES[role] if n.lower() in present), None)

    def pick(self, name: str) -> FaceDataset:
        """The samples of one split, by exact name (``Training``, ``PrivateTest``...) or by role
        (``train``, ``val``, ``test``); a ``SplitError`` lists the splits there are."""
        present = set(self.splits.tolist())
        if name not in present and name in SPLIT_ROLES:
            found = self.split_for(name)
            if found is None:
                raise SplitError(
                    self.source,
                    f"no split for role {name!r} (looked for {', '.join(SPLIT_ROLES[name])}); "
                    f"splits are {', '.join(self.split_names)}",
                )
            name = found
        if name not in present:
            raise SplitError(self.source, f"no split {name!r}; splits are {', '.join(self.split_names)}")
        return self.subset(np.flatnonzero(self.splits == name))

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Per split, the number of samples of each class (every class listed, zeros too)."""
        out: dict[str, dict[str, int]] = {}
        for split in self.split_names:
            counts = np.bincount(self.labels[self.splits == split], minlength=len(self.label_set))
            out[split] = {n: int(c) for n, c in zip(self.label_set.names, counts, strict=True)}
        return out

    def with_variant(self, variant: str) -> FaceDataset:
        """Apply a FER-2013 label variant (``no-disgust``, ``merge-disgust``)."""
        if self.label_set.name != "fer2013":
            raise ValueError(
                f"label variant {variant!r} needs FER-2013 labels, this dataset has {self.label_set.name}"
            )
        keep, labels, label_set = apply_variant(self.labels, variant)
        sub = self.subset(np.flatnonzero(keep))
        sub.labels = labels
        sub.label_set = label_set
        sub.soft_labels = None
        return sub


def assign_splits(dataset: FaceDataset, val: float = 0.1, test: float = 0.1, seed: int = 0) -> FaceDataset:
    """Split an unsplit dataset into train / val / test, stratified by class, reproducibly."""
    rng = np.random.default_rng(seed)
    splits = np.full(len(dataset), "train", dtype="<U16")
    for c in range(len(dataset.label_set)):
        idx = rng.permutation(np.flatnonzero(dataset.labels == c))
        n_val, n_test = int(round(len(idx) * val)), int(round(len(idx) * test))
        splits[idx[:n_val]] = "val"
        splits[idx[n_val : n_val + n_test]] = "test"
    return replace(dataset, splits=splits, skipped=list(dataset.skipped))
