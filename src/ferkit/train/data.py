"""Training data on the device: splits as uint8 tensors, label variants, extra data, batch order.

Usage::

    data = prepare_data(cfg, torch.device("cpu"))     # TrainData(train, val, test, label_set, mean, std)
    for idx in batch_order(len(data.train), 128, epoch_generator(seed, epoch)): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ferkit.data import FaceDataset, load_dataset
from ferkit.data.dataset import assign_splits
from ferkit.data.folder import UNSPLIT
from ferkit.errors import ConfigError, FerkitError
from ferkit.labels import LabelSet
from ferkit.train.config import TrainConfig
from ferkit.utils import atomic_path


@dataclass
class Split:
    """One split as tensors on the device: images (N, C, H, W) uint8, labels (N,), soft (N, K),
    teacher (N, K): a teacher's probabilities for knowledge distillation."""

    name: str
    images: Tensor
    labels: Tensor
    soft: Tensor | None = None
    teacher: Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class TrainData:
    train: Split
    val: Split
    test: Split | None
    label_set: LabelSet
    mean: float
    std: float


def _to_split(ds: FaceDataset, name: str, device: torch.device) -> Split:
    images = torch.from_numpy(np.ascontiguousarray(ds.images))
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2).contiguous()
    soft = None if ds.soft_labels is None else torch.from_numpy(ds.soft_labels).to(device)
    return Split(name, images.to(device), torch.from_numpy(ds.labels).to(device), soft)


def prepare_data(
    cfg: TrainConfig,
    device: torch.device,
    dataset: FaceDataset | None = None,
    run_dir: Path | None = None,
) -> TrainData:
    """Load (cached), apply the label variant, split, and move to the device."""
    ds = dataset or load_dataset(
        cfg.data,
        pixels=cfg.pixels,
        size=cfg.image_size,
        labels="custom" if cfg.labels == "custom" else None,
        show_progress=cfg.progress,
    )
    if cfg.labels == "custom":
        pass  # the folder names are the classes
    elif ds.label_set.name == "fer2013" and cfg.labels != "fer2013":
        ds = ds.with_variant(cfg.labels)
    elif cfg.labels != "fer2013" and ds.label_set.name != "fer2013":
        raise FerkitError(
            f"--labels {cfg.labels} applies to FER-2013 labels; {cfg.data} has {ds.label_set.name}"
        )
    if cfg.ferplus_mode == "soft" and ds.soft_labels is None:
        raise FerkitError(f"ferplus_mode=soft needs FER+ vote distributions; {cfg.data} has none")
    if ds.split_names == [UNSPLIT]:  # a plain <label>/ folder: make a stratified split
        ds = assign_splits(ds, seed=cfg.seed)
    train = ds.pick(cfg.train_split)
    if cfg.limit_train:
        train = train.subset(np.arange(min(cfg.limit_train, len(train))))
    if cfg.extra_data:
        train = _add_extra(train, cfg)
    val = ds.pick(cfg.val_split)
    try:
        test: FaceDataset | None = ds.pick(cfg.test_split)
    except KeyError:
        test = None
    mean, std = _normalization(cfg, train)
    train_split = _to_split(train, "train", device)
    if cfg.teacher:
        from ferkit.train.distill import teacher_targets

        probs = _run_teacher_targets(run_dir, len(train), len(ds.label_set))
        if probs is None:
            probs = teacher_targets(cfg.teacher, train)
            if run_dir is not None:
                with atomic_path(run_dir / TEACHER_FILE) as tmp:
                    np.save(tmp, probs)
        train_split.teacher = torch.from_numpy(probs).to(device)
    return TrainData(
        train_split,
        _to_split(val, "val", device),
        None if test is None else _to_split(test, "test", device),
        ds.label_set,
        round(mean, 4),
        round(std, 4),
    )


TEACHER_FILE = "teacher.npy"


def _normalization(cfg, train: FaceDataset) -> tuple[float, float]:
    """(mean, std) for pixels in [0, 1]: the training pixels', or ``cfg.normalize`` "MEAN,STD"."""
    if cfg.normalize == "data":
        pixels = train.images.astype(np.float32) / 255.0
        return float(pixels.mean()), float(pixels.std())
    try:
        mean, std = (float(v) for v in str(cfg.normalize).split(","))
    except ValueError:
        raise ConfigError(
            f"normalize: {cfg.normalize!r} is not 'data' or 'MEAN,STD' (e.g. 0.45,1.0)"
        ) from None
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise ConfigError(f"normalize: std must be a positive number, got {cfg.normalize!r}")
    return mean, std


def _run_teacher_targets(run_dir: Path | None, n: int, k: int) -> np.ndarray | None:
    """The teacher's targets kept in the run folder: a resumed run distils from exactly what it
    started with, even when the teacher's files were re-made or removed in between."""
    path = None if run_dir is None else Path(run_dir) / TEACHER_FILE
    if path is None or not path.is_file():
        return None
    probs = np.load(path)
    return probs if probs.shape == (n, k) else None  # another training set: made again


def _add_extra(train: FaceDataset, cfg: TrainConfig) -> FaceDataset:
    """Mix in extra labelled images: an .npz with images + labels (e.g. CycleGAN output), or the
    training split of any dataset ``load_dataset`` reads (e.g. FER-2013 while fine-tuning on a
    small set, so the model keeps what it knew), its classes matched to the data's by emotion."""
    path = Path(cfg.extra_data or "")
    if path.suffix == ".npz":
        images, labels = _extra_npz(path, train)
    else:
        images, labels = _extra_dataset(path, train)
    n = int(round(len(images) * cfg.extra_ratio))
    rng = np.random.default_rng(cfg.seed)
    pick = rng.permutation(len(images))[:n]
    return FaceDataset(
        np.concatenate([train.images, images[pick]]),
        np.concatenate([train.labels, labels[pick]]),
        np.concatenate([train.splits, np.full(n, "extra")]),
        train.label_set,
        source=f"{train.source} + {path}",
    )


def _extra_npz(path: Path, train: FaceDataset) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as z:
            images, labels = z["images"], z["labels"].astype(np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise FerkitError(f"{path}: extra data must be an .npz with 'images' and 'labels' ({exc})") from exc
    if images.shape[1:] != train.images.shape[1:]:
        raise FerkitError(
            f"{path}: extra images are {images.shape[1:]}, training images {train.images.shape[1:]}"
        )
    if labels.min() < 0 or labels.max() >= len(train.label_set):
        raise FerkitError(f"{path}: labels outside 0..{len(train.label_set) - 1}")
    return images, labels


def _extra_dataset(path: Path, train: FaceDataset) -> tuple[np.ndarray, np.ndarray]:
    from ferkit.labels import emotion_key

    color = "rgb" if train.images.ndim == 4 and train.images.shape[-1] == 3 else "gray"
    extra = load_dataset(path, size=train.images.shape[1], color=color).pick("train")
    ours = [emotion_key(n) for n in train.label_set.names]
    theirs = [emotion_key(n) for n in extra.label_set.names]
    mapping = np.array([ours.index(k) if k in ours else -1 for k in theirs])
    labels = mapping[extra.labels]
    keep = labels >= 0
    if not keep.any():
        raise FerkitError(
            f"{path}: none of its classes {list(extra.label_set.names)} "
            f"are the data's {list(train.label_set.names)}"
        )
    return extra.images[keep], labels[keep]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def batch_order(n: int, batch_size: int, gen: torch.Generator, weights: Tensor | None = None) -> list[Tensor]:
    """Shuffled (or class-balanced, with replacement) index batches; the last partial one kept if > 1."""
    order = (
        torch.multinomial(weights, n, replacement=True, generator=gen)
        if weights is not None
        else torch.randperm(n, generator=gen)
    )
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2:  # BatchNorm needs two samples
        batches.pop()
    return batches


def class_weights(labels: Tensor, num_classes: int) -> Tensor:
    counts = torch.bincount(labels.cpu(), minlength=num_classes).float().clamp(min=1)
    return counts.sum() / (num_classes * counts)
