"""Transfer-learning backbones on this machine: training speed at their input sizes, and a short
from-scratch run on a FER-2013 subset.

Usage::

    python bench/transfer.py [--data fer2013.tar.gz] [--sizes 48 96] [--subset 4000] [--epochs 3]

For resnet50, vgg16_bn, mobilenet_v2 and efficientnet_b0 (torchvision's layouts, grey input):
parameters and MMACs at each size, training img/s (bf16 + channels_last on CPU, batch 32),
seconds per FER-2013 epoch, then ``ferkit train`` for ``--epochs`` on the first ``--subset``
Training faces at 48x48 and the PrivateTest accuracy it reaches. No pretrained weights are
reachable on this machine (no internet), so these runs start from scratch: they measure
cost, not what ImageNet initialisation would give (``--init imagenet`` on a connected
machine loads torchvision's weights).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from ferkit.data import load_dataset
from ferkit.models import create_model, model_stats
from ferkit.train import fit, load_config
from ferkit.train.config import TrainConfig
from ferkit.train.data import Split, TrainData
from ferkit.train.epoch import train_one_epoch
from ferkit.train.optim import make_optimizer

BACKBONES = ("mobilenet_v2", "efficientnet_b0", "resnet50", "vgg16_bn")
FER_TRAIN = 28709


def throughput(name: str, train, size: int, batches: int) -> float:
    """Training img/s (bf16 + channels_last on CPU) at ``size`` px, after a warm-up."""
    import cv2

    n = 32 * batches + 64
    images = train.images[:n]
    faces = images if size == images.shape[1] else np.stack([cv2.resize(f, (size, size)) for f in images])
    x = torch.from_numpy(faces).unsqueeze(1)
    y = torch.from_numpy(train.labels[:n])
    cfg = TrainConfig(model=name, batch_size=32, channels_last=True, precision="bf16", image_size=size)
    model = create_model(name).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model)
    device = torch.device("cpu")

    def data(n: int) -> TrainData:
        split = Split("train", x[:n], y[:n], None)
        return TrainData(split, split, None, train.label_set, 0.5, 0.25)

    train_one_epoch(model, data(64), optimizer, cfg, epoch=0, device=device, precision="bf16")
    stats = train_one_epoch(
        model, data(32 * batches), optimizer, cfg, epoch=1, device=device, precision="bf16"
    )
    return stats.images_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/datasets/fer2013/fer2013.tar.gz")
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 96])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--subset", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(BACKBONES))
    args = parser.parse_args()
    ds = load_dataset(args.data)
    train = ds.pick("Training")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 + channels_last, batch 32\n")
    print("| backbone | parameters | size | MMACs | train img/s | s / FER-2013 epoch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.models:
        for size in args.sizes:
            stats = model_stats(name, input_size=size)
            rate = throughput(name, train, size, args.batches)
            print(
                f"| {name} | {stats.params:,} | {size} | {stats.macs / 1e6:,.0f} | {rate:,.0f} | "
                f"{FER_TRAIN / rate:,.0f} |"
            )
    print(
        f"\nFrom scratch, {args.subset} Training faces, {args.epochs} epochs at 48x48 "
        "(no ImageNet weights here):\n"
    )
    print("| backbone | wall s | PrivateTest accuracy |")
    print("| --- | ---: | ---: |")
    training = np.flatnonzero(ds.splits == "Training")[: args.subset]
    keep = np.concatenate([training, np.flatnonzero(ds.splits != "Training")])
    subset = ds.subset(keep)
    for name in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_config(
                data="<memory>",
                model=name,
                epochs=args.epochs,
                batch_size=64,
                lr=0.05,
                out=tmp,
                progress=False,
            )
            start = time.perf_counter()
            result = fit(cfg, dataset=subset)
            print(f"| {name} | {time.perf_counter() - start:,.0f} | {result.test_accuracy:.2%} |")


if __name__ == "__main__":
    main()
