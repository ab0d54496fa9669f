"""Unsupervised domain adaptation by BatchNorm statistics (AdaBN, Li et al. 2016) on SFEW.

Usage::

    python bench/adapt_bn.py [--models fast accurate] [--sfew DIR] [--fer2013 FILE] [--alpha 1 0.5]

A shipped model's weights come back as a torch network (BatchNorms folded into the
convolutions come back as identity BatchNorms, ``ferkit.train.onnx_init``). Each BatchNorm
input is measured on 5,000 FER-2013 Training faces (the source domain) and then
re-normalised to the statistics of SFEW Train's faces (the target domain: their images only,
no labels), so that on the target it has the source's mean and variance. ``--alpha``
blends target and source statistics (1 = all target). Printed: SFEW Val and FER-2013
PrivateTest accuracy (flip TTA, torch fp32) before and after. SFEW Val is never seen.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ferkit.card import ModelCard
from ferkit.data import load_dataset
from ferkit.models import create_model
from ferkit.runtime.catalog import resolve_model
from ferkit.train.epoch import normalise, predict_split
from ferkit.train.onnx_init import onnx_state_dict

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CPU = torch.device("cpu")


def network(name: str) -> tuple[nn.Module, float, float]:
    path = resolve_model(name)
    card = ModelCard.read(path)
    model = create_model(card.architecture, **card.model_args)
    model.load_state_dict(onnx_state_dict(path, model))
    return model.eval(), card.normalization["mean"], card.normalization["std"]


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, mean: float, std: float) -> float:
    """PrivateTest-style accuracy (%) with flip TTA, through the training loop's predictor."""
    probs = predict_split(
        model, torch.from_numpy(images)[:, None], mean, std, CPU, tta="flip", channels_last=False
    )
    return 100 * float((probs.argmax(1).numpy() == labels).mean())


def input_statistics(model: nn.Module, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and variance of every BatchNorm's input over ``x`` (model unchanged)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    sums = {m: [0.0, 0.0, 0] for m in norms}

    def hook(module, inputs, _):
        v = inputs[0].double()
        s = sums[module]
        s[0] = s[0] + v.sum((0, 2, 3))
        s[1] = s[1] + (v * v).sum((0, 2, 3))
        s[2] += v.shape[0] * v.shape[2] * v.shape[3]

    handles = [m.register_forward_hook(hook) for m in norms]
    with torch.no_grad():
        for i in range(0, len(x), 500):
            model(x[i : i + 500])
    for h in handles:
        h.remove()
    out = []
    for m in norms:
        total, squares, n = sums[m]
        mu = total / n
        out.append((mu.float(), (squares / n - mu * mu).float()))
    return out


def adapt(model: nn.Module, source: list, target_x: torch.Tensor, alpha: float) -> nn.Module:
    """A copy whose BatchNorms map the target's statistics onto the source's."""
    adapted = copy.deepcopy(model)
    norms = [m for m in adapted.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm, (mu, var) in zip(norms, source, strict=True):
        # Identity BatchNorm (+ folded bias) on the source: scale and shift back to its statistics.
        norm.weight.data = torch.sqrt(var + norm.eps)
        norm.bias.data = norm.bias.data + mu
        norm.reset_running_stats()
        norm.momentum = None  # running statistics = the plain average over the target batches
    adapted.train()
    with torch.no_grad():
        adapted(torch.cat([target_x, torch.flip(target_x, [3])]))
    adapted.eval()
    for norm, (mu, var) in zip(norms, source, strict=True):
        norm.running_mean = alpha * norm.running_mean + (1 - alpha) * mu
        norm.running_var = alpha * norm.running_var + (1 - alpha) * var
    return adapted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["fast", "accurate"])
    parser.add_argument("--sfew", type=Path, default=SHARED / "sfew")
    parser.add_argument("--fer2013", type=Path, default=SHARED / "fer2013" / "fer2013.tar.gz")
    parser.add_argument("--alpha", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sfew, fer = load_dataset(args.sfew), load_dataset(args.fer2013)
    train, val = sfew.pick("Train"), sfew.pick("Val")
    private = fer.pick("PrivateTest")
    pool = fer.pick("Training").images
    source_images = pool[np.random.default_rng(0).choice(len(pool), 5000, replace=False)]
    print("| model | BatchNorm statistics | SFEW Val (flip) | FER-2013 PrivateTest (flip) |")
    print("| --- | --- | ---: | ---: |")
    for name in args.models:
        model, mean, std = network(name)

        def tensor(images, mean=mean, std=std):
            return normalise(torch.from_numpy(images).float()[:, None] / 255, mean, std)

        def row(label, m, name=name, mean=mean, std=std):
            sfew_acc = accuracy(m, val.images, val.labels, mean, std)
            fer_acc = accuracy(m, private.images, private.labels, mean, std)
            print(f"| {name} | {label} | {sfew_acc:.2f}% | {fer_acc:.2f}% |", flush=True)

        row("as shipped", model)
        source = input_statistics(model, tensor(source_images))
        row("re-estimated on FER-2013 Training (check)", adapt(model, source, tensor(source_images), 1.0))
        for alpha in args.alpha:
            row(f"SFEW Train, alpha {alpha:g}", adapt(model, source, tensor(train.images), alpha))


if __name__ == "__main__":
    main()
