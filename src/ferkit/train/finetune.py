"""Start a model from other weights: ferkit checkpoints, torchvision/ImageNet state dicts.

Usage::

    report = load_init_weights(model, "resnet18-imagenet.pth", backbone_only=True)
    param_groups = discriminative_param_groups(model, lr=0.01, backbone_lr_mult=0.1)

RGB stems are folded to grey by summing over the colour axis (a grey image equals R=G=B,
so the folded filter gives the same response); kernels of another size are resized;
tensors whose shapes still differ (a head for another class set) are left at their
initial values and listed in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ferkit.train.checkpoint import load_checkpoint


@dataclass
class InitReport:
    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)  # folded RGB->grey or resized kernels
    skipped: list[str] = field(default_factory=list)  # shape mismatch or head dropped
    missing: list[str] = field(default_factory=list)  # model tensors the source lacks

    def summary(self) -> str:
        return (
            f"loaded {len(self.loaded)} tensors ({len(self.adapted)} adapted), "
            f"skipped {len(self.skipped)}, left at init {len(self.missing)}"
        )


def head_prefix(model: nn.Module) -> str:
    return getattr(model, "head_name", "fc")


def _adapt(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | None:
    if src.shape == dst.shape:
        return src
    if src.ndim == 4 and dst.ndim == 4 and src.shape[0] == dst.shape[0]:
        if src.shape[1] != dst.shape[1]:
            if dst.shape[1] == 1:
                src = src.sum(dim=1, keepdim=True)  # RGB -> grey
            else:
                return None
        if src.shape[2:] != dst.shape[2:]:
            # Resize each filter, then shift it so its total response to a flat image (its
            # sum, what a grey patch sees) is exactly what it was.
            resized = F.interpolate(src, size=dst.shape[2:], mode="bilinear", align_corners=False)
            area = dst.shape[2] * dst.shape[3]
            correction = (src.sum(dim=(2, 3), keepdim=True) - resized.sum(dim=(2, 3), keepdim=True)) / area
            src = resized + correction
        return src if src.shape == dst.shape else None
    return None


def fetch_state_dict(url: str) -> dict[str, torch.Tensor]:
    """A state dict from an ``https://`` (or ``file://``) URL, cached under ~/.cache/ferkit/hub.

    Downloads through ``torch.hub.load_state_dict_from_url`` with hash checking: a file named
    ``name-<sha256 prefix>.pth`` (as torchvision's are) must match that prefix.
    """
    from ferkit.errors import FerkitError
    from ferkit.utils import cache_dir

    try:
        state = torch.hub.load_state_dict_from_url(
            url, model_dir=str(cache_dir("hub")), map_location="cpu", check_hash=True, progress=False
        )
    except RuntimeError as exc:  # torch.hub's hash mismatch
        raise FerkitError(f"{url}: {exc}") from exc
    except OSError as exc:  # URLError, HTTPError, no such file
        raise FerkitError(f"{url}: cannot download ({exc})") from exc
    return state.get("model", state) if isinstance(state, dict) else state


def load_init_weights(model: nn.Module, path: str, *, backbone_only: bool = False) -> InitReport:
    """Copy matching tensors from a checkpoint, a state dict file or a URL into ``model``."""
    if path.startswith(("https://", "http://", "file://")):
        state = fetch_state_dict(path)
    else:
        state = load_checkpoint(path)["model"]
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    target = model.state_dict()
    head = head_prefix(model) + "."
    report = InitReport()
    new_state = {}
    for key, dst in target.items():
        if key not in state:
            report.missing.append(key)
            continue
        if backbone_only and key.startswith(head):
            report.skipped.append(key)
            continue
        adapted = _adapt(state[key].to(dst.dtype), dst)
        if adapted is None:
            report.skipped.append(key)
            continue
        if adapted is not state[key]:
            report.adapted.append(key)
        new_state[key] = adapted
        report.loaded.append(key)
    model.load_state_dict(new_state, strict=False)
    return report


def freeze(model: nn.Module, prefixes: list[str]) -> int:
    """Freeze parameters whose names start with any prefix; returns how many were frozen."""
    count = 0
    for name, p in model.named_parameters():
        if any(name.startswith(pref) for pref in prefixes):
            p.requires_grad_(False)
            count += 1
    if prefixes and count == 0:
        names = sorted({n.split(".")[0] for n, _ in model.named_parameters()})
        raise ValueError(f"freeze prefixes {prefixes} match no parameter; top-level names: {names}")
    return count


def param_groups(
    model: nn.Module, lr: float, weight_decay: float, backbone_lr_mult: float = 1.0
) -> list[dict]:
    """Head / backbone groups (discriminative LR); no weight decay on norms and biases."""
    head = head_prefix(model) + "."
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = (name.startswith(head), p.ndim <= 1)
        groups.setdefault(key, []).append(p)
    out = []
    for (is_head, no_decay), params in groups.items():
        group_lr = lr if is_head else lr * backbone_lr_mult
        out.append({"params": params, "lr": group_lr, "weight_decay": 0.0 if no_decay else weight_decay})
    return out
