"""Translate Training-split source faces into synthetic target-class faces.

Usage::

    out = generate("runs/cyclegan-neutral-disgust", data="fer2013.tar.gz", n=3000, out="synthetic.npz")
    # synthetic.npz: images (N, 48, 48) uint8, labels (N,) = the target's index, label_names, source_index

Only the Training split is used (never PublicTest/PrivateTest faces, so a model trained on
the output is still evaluated on unseen people). When ``n`` exceeds the number of source
faces, the extra ones are horizontally flipped copies translated again. ``out`` ending in
``.npz`` writes one archive (``ferkit train --extra-data`` reads it); any other path writes
a folder ``out/<target>/00000.png`` ... that ``load_dataset`` reads as a labelled folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ferkit.errors import FerkitError
from ferkit.gan.networks import ResnetGenerator
from ferkit.gan.train import GAN_KIND, domain_images, to_uint8, to_unit
from ferkit.train.checkpoint import load_checkpoint
from ferkit.utils import atomic_path


@dataclass
class GenerateResult:
    out: Path
    count: int
    target: str
    label: int


def load_generator(checkpoint: str | os.PathLike, direction: str = "ab") -> tuple[ResnetGenerator, dict]:
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "last.pt"
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") != GAN_KIND:
        raise FerkitError(f"{path}: not a CycleGAN checkpoint")
    cfg = ckpt["config"]
    g = ResnetGenerator(1, cfg["ngf"], cfg["n_blocks"])
    g.load_state_dict(ckpt[f"g_{direction}"])
    g.eval()
    return g, ckpt


@torch.no_grad()
def generate(
    checkpoint: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    n: int = 3000,
    out: str | os.PathLike = "synthetic.npz",
    batch_size: int = 256,
    seed: int = 0,
    dataset=None,
) -> GenerateResult:
    if n < 1:
        raise FerkitError(f"--n must be >= 1, got {n}")
    generator, ckpt = load_generator(checkpoint)
    cfg = ckpt["config"]
    if dataset is None:
        from ferkit.data import load_dataset

        source_path = data or cfg["data"]
        if not source_path:
            raise FerkitError("no data: pass --data (the dataset the CycleGAN was trained on)")
        dataset = load_dataset(source_path)
    train_split = dataset.split_for("train") or "train"
    faces = domain_images(dataset, cfg["source"], train_split)
    target_index = dataset.label_set.index(cfg["target"])
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(faces)) for _ in range(-(-n // len(faces)))])[:n]
    flipped = np.arange(n) >= len(faces)  # second and later passes: mirrored faces
    images = np.empty((n, *faces.shape[1:]), np.uint8)
    for start in range(0, n, batch_size):
        sl = slice(start, min(start + batch_size, n))
        batch = faces[order[sl]].copy()
        batch[flipped[sl]] = batch[flipped[sl]][:, :, ::-1]
        x = to_unit(torch.from_numpy(batch).unsqueeze(1))
        images[sl] = to_uint8(generator(x))
    labels = np.full(n, target_index, np.int64)
    out = Path(out)
    if out.suffix == ".npz":
        with atomic_path(out) as tmp:
            np.savez_compressed(
                tmp,
                images=images,
                labels=labels,
                label_names=np.array(dataset.label_set.names),
                source_index=order,
            )
    else:
        _write_folder(out, images, cfg["target"])
    return GenerateResult(out, n, cfg["target"], int(target_index))


def _write_folder(out: Path, images: np.ndarray, target: str) -> None:
    import cv2

    with atomic_path(out, is_dir=True) as tmp:
        folder = tmp / target
        folder.mkdir(parents=True)
        for i, image in enumerate(images):
            if not cv2.imwrite(str(folder / f"{i:05d}.png"), image):
                raise FerkitError(f"{folder}: could not write image {i}")
