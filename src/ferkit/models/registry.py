"""Model registry: factories register themselves by name; models are created by name.

Usage::

    from ferkit.models import create_model, list_models
    net = create_model("vgg_fer", num_classes=7, in_chans=1)

Adding a model is one decorated factory function::

    @register_model
    def my_net(num_classes: int = 7, in_chans: int = 1, **kwargs) -> nn.Module: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ferkit.errors import UnknownNameError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, num_classes: int = 7, in_chans: int = 1, **kwargs: Any) -> nn.Module:
    """Build a registered model; unknown names list the known ones."""
    try:
        factory = _MODELS[name]
    except KeyError:
        raise UnknownNameError("model architecture", name, list_models()) from None
    model = factory(num_classes=num_classes, in_chans=in_chans, **kwargs)
    model.ferkit_args = {"num_classes": num_classes, "in_chans": in_chans, **kwargs}  # type: ignore[attr-defined]
    return model


@dataclass(frozen=True)
class ModelStats:
    name: str
    params: int
    macs: int  # multiply-accumulates of one forward pass at the given input size
    input_size: int

    @property
    def size_mb(self) -> float:
        return self.params * 4 / 1e6


def count_macs(model: nn.Module, input_size: int = 48, in_chans: int = 1) -> int:
    """MACs of convolutions and linear layers for one image (hooks; no extra dependency)."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        kernel = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += out.numel() // out.shape[0] * kernel

    def linear_hook(m: nn.Linear, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() // out.shape[0] * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, input_size, input_size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total


def model_stats(name: str, input_size: int = 48, **kwargs: Any) -> ModelStats:
    model = create_model(name, **kwargs)
    params = sum(p.numel() for p in model.parameters())
    in_chans = kwargs.get("in_chans", 1)
    return ModelStats(name, params, count_macs(model, input_size, in_chans), input_size)
