"""Start training from a shipped model or any ferkit ``.onnx`` file: its weights as a state dict.

Usage::

    card = ModelCard.read(resolve_model("accurate"))
    model = create_model(card.architecture, **card.model_args)
    model.load_state_dict(onnx_state_dict("accurate.onnx", model))

ferkit's ONNX files keep the trained tensors as initializers named after the PyTorch
parameters (``model.<name>``). Export folds each BatchNorm into the convolution before it
(weight scaled, bias named ``<conv>.weight_bias``); int8 files store weights and biases
quantised (``*_quantized`` with ``*_scale`` / ``*_zero_point``, per output channel). Here
they are dequantised, and each folded BatchNorm comes back as an identity-initialised one
carrying the folded bias (weight 1, running mean 0, running variance 1 - eps), so the torch
model computes what the ONNX file computes (up to int8 rounding of the activations).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from ferkit.card import ModelCard
from ferkit.errors import ModelError


def _float_initializers(path: str | os.PathLike) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises DecodeError and others for bad files
        raise ModelError(f"{path}: not a readable ONNX file ({exc})") from exc
    raw = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    out = {k: v for k, v in raw.items() if v.dtype.kind == "f"}
    for name, q in raw.items():
        if not name.endswith("_quantized"):
            continue
        base = name.removesuffix("_quantized")
        scale = raw.get(f"{base}_scale", raw.get(f"{name}_scale"))
        zero = raw.get(f"{base}_zero_point", raw.get(f"{name}_zero_point"))
        if scale is None:
            continue
        zero = np.zeros_like(scale) if zero is None else zero
        shape = (-1,) + (1,) * (q.ndim - 1) if scale.ndim == 1 else ()  # per output channel
        out[base] = ((q.astype(np.float32) - zero.reshape(shape)) * scale.reshape(shape)).astype(np.float32)
    return out


def onnx_state_dict(path: str | os.PathLike, model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict filled from a ferkit ONNX file (the card's architecture)."""
    weights = _float_initializers(path)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modules = list(model.named_modules())
    found = 0
    for i, (name, module) in enumerate(modules):
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        weight = weights.get(f"model.{name}.weight")
        if weight is None:
            continue
        if weight.shape != tuple(module.weight.shape) and weight.T.shape == tuple(module.weight.shape):
            weight = weight.T  # a Linear exported as MatMul stores W^T
        if weight.shape != tuple(module.weight.shape):
            raise ModelError(
                f"{path}: {name}.weight is {weight.shape}, the architecture wants "
                f"{tuple(module.weight.shape)} (another architecture or model_args?)"
            )
        state[f"{name}.weight"] = torch.from_numpy(np.array(weight, np.float32))
        found += 1
        if (bias := weights.get(f"model.{name}.bias")) is not None:
            state[f"{name}.bias"] = torch.from_numpy(bias.copy())
        folded = weights.get(f"model.{name}.weight_bias")
        if folded is None:
            continue
        norm = next(
            (
                (n, m)
                for n, m in modules[i + 1 :]
                if isinstance(m, nn.BatchNorm2d) and m.num_features == len(folded)
            ),
            None,
        )
        if norm is None:
            raise ModelError(f"{path}: {name} carries a folded BatchNorm bias but no BatchNorm follows it")
        bn_name, bn = norm
        state[f"{bn_name}.weight"] = torch.ones(len(folded))
        state[f"{bn_name}.bias"] = torch.from_numpy(folded.copy())
        state[f"{bn_name}.running_mean"] = torch.zeros(len(folded))
        state[f"{bn_name}.running_var"] = torch.full((len(folded),), 1.0 - bn.eps)
    if found == 0:
        raise ModelError(f"{path}: no weights named after this architecture's layers (not a ferkit model?)")
    return state


def onnx_init_source(spec: str) -> tuple[str, ModelCard] | None:
    """``(path, card)`` when ``--init`` names a shipped model or a ferkit ``.onnx`` file, else None
    (a checkpoint or state dict, loaded by ``finetune.load_init_weights``)."""
    from ferkit.runtime.catalog import resolve_model

    if spec.endswith((".pt", ".pth")) or os.path.isdir(spec):
        return None
    try:
        path = resolve_model(spec)
    except ModelError:
        if spec.endswith((".onnx", ".json")):
            raise
        return None  # not a model name: let the checkpoint loader say what is wrong
    card = ModelCard.read(path)
    if card.kind == "ensemble":
        raise ModelError(f"{spec}: an ensemble has no single network to fine-tune; name one of its members")
    return str(path), card


def load_onnx_init(
    model: nn.Module,
    path: str,
    card: ModelCard,
    labels: tuple[str, ...],
    backbone_only: bool = False,
    in_chans: int = 1,
) -> str:
    """Load an ONNX model's weights into ``model``; the head follows ``labels``: kept, its rows
    reordered to the data's order, or narrowed to the data's classes when the model knows more
    (FER+'s 8 onto 7-class data drops contempt); left at its initial values when the data
    has classes the model never learned. Names match as emotions (``happiness`` = ``happy``).
    Returns a one-line report."""
    from ferkit.labels import emotion_key
    from ferkit.models import create_model
    from ferkit.train.finetune import head_prefix

    head = head_prefix(model) + "."
    card_keys = [emotion_key(n) for n in card.labels]
    data_keys = [emotion_key(n) for n in labels]
    source = model
    if len(card_keys) != len(data_keys):  # read the file into a model with the file's head
        args = {k: v for k, v in card.model_args.items() if k not in ("num_classes", "in_chans")}
        source = create_model(card.architecture, num_classes=len(card_keys), in_chans=in_chans, **args)
    state = onnx_state_dict(path, source)
    fresh = model.state_dict()
    if backbone_only or not set(data_keys) <= set(card_keys):
        state.update({k: fresh[k] for k in state if k.startswith(head)})
        note = "head left at init (" + ("--init_backbone_only" if backbone_only else "other classes") + ")"
    else:
        order = [card_keys.index(k) for k in data_keys]
        for key, value in state.items():
            if key.startswith(head) and value.ndim >= 1 and value.shape[0] == len(card_keys):
                state[key] = value[order].clone()
        dropped = [card.labels[i] for i in range(len(card_keys)) if i not in order]
        if dropped:
            note = f"head narrowed to the data's classes ({', '.join(dropped)} dropped)"
        elif order != sorted(order):
            note = "head rows reordered to the data's classes"
        else:
            note = "head kept (same classes)"
    model.load_state_dict(state)
    return f"{len(state)} tensors from {card.architecture} ({path}); {note}"
