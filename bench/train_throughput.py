"""Training throughput of every registered model on this machine: fp32 vs the fast mode.

Usage::

    python bench/train_throughput.py [--data PATH] [--batches 12] [--batch-size 128]

End to end per step: index a batch of uint8 faces, vectorised augmentation, forward,
backward, SGD step. "fast" is bf16 autocast + channels_last on a CPU with bf16
instructions (AMP on CUDA). Prints img/s per model and mode, and seconds per FER-2013
epoch (28,709 images), with the CPU and what ``--precision auto`` picks on it (bf16 only
where the CPU has avx512_bf16 or AMX; emulated bf16 is slower than fp32).
"""

from __future__ import annotations

import argparse
import time

import torch

from ferkit.data import load_dataset
from ferkit.models import create_model, list_models
from ferkit.train.config import TrainConfig
from ferkit.train.data import TrainData, _to_split
from ferkit.train.device import resolve_device, resolve_precision
from ferkit.train.epoch import train_one_epoch
from ferkit.train.optim import make_optimizer
from ferkit.utils import cpu_description

FER_TRAIN = 28709


def measure(
    model_name: str, data: TrainData, precision: str, channels_last: bool, batches: int, batch_size: int
) -> float:
    device = data.train.images.device
    cfg = TrainConfig(
        model=model_name, batch_size=batch_size, channels_last=channels_last, precision=precision
    )
    torch.manual_seed(0)
    model = create_model(model_name).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model)
    warm = TrainData(_slice(data.train, 2 * batch_size), data.val, None, data.label_set, data.mean, data.std)
    train_one_epoch(model, warm, optimizer, cfg, epoch=0, device=device, precision=precision)  # warm-up
    timed = TrainData(
        _slice(data.train, batches * batch_size), data.val, None, data.label_set, data.mean, data.std
    )
    stats = train_one_epoch(model, timed, optimizer, cfg, epoch=1, device=device, precision=precision)
    return stats.images_per_s


def _slice(split, n):
    return type(split)(split.name, split.images[:n], split.labels[:n], None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/datasets/fer2013/fer2013.tar.gz")
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--models", nargs="*", default=None)
    args = parser.parse_args()
    device = resolve_device("auto")
    ds = load_dataset(args.data).pick("train")
    split = _to_split(ds, "train", device)
    data = TrainData(split, split, None, ds.label_set, 0.5, 0.25)
    fast = "bf16" if device.type == "cpu" else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    print(
        f"device: {device} ({cpu_description() if device.type == 'cpu' else torch.cuda.get_device_name()}), "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch_size}; "
        f"--precision auto picks {resolve_precision('auto', device)} here"
    )
    print(f"| model | fp32 img/s | {fast}+channels_last img/s | speed-up | s / FER-2013 epoch (fast) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in args.models or list_models():
        t0 = time.perf_counter()
        fp32 = measure(name, data, "fp32", False, args.batches, args.batch_size)
        quick = measure(name, data, fast, True, args.batches, args.batch_size)
        print(
            f"| {name} | {fp32:,.0f} | {quick:,.0f} | {quick / fp32:.1f}x | {FER_TRAIN / quick:,.0f} |"
            f"  <!-- {time.perf_counter() - t0:.0f}s -->",
            flush=True,
        )


if __name__ == "__main__":
    main()
