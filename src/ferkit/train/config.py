"""Training configuration: one dataclass of defaults, overridable from YAML and the command line.

Usage::

    cfg = TrainConfig(data="fer2013.tar.gz", model="vgg_fer")
    cfg = load_config("run.yaml", overrides=["epochs=60", "lr=0.05", "model_args.dropout=0.3"])
    save_config(cfg, run_dir / "config.yaml")

Values from the command line are parsed as YAML scalars (numbers, booleans, lists), never
evaluated as code. Unknown keys are errors naming the key and the known ones.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferkit.errors import ConfigError


@dataclass
class AugmentConfig:
    """Vectorised augmentation of uint8 batches (``ferkit.train.augment``)."""

    flip: float = 0.5  # probability of a horizontal flip
    scale: tuple[float, float] = (0.85, 1.15)  # random zoom (resized crop)
    shift: float = 0.1  # max translation, fraction of the side
    rotate: float = 10.0  # max rotation, degrees
    brightness: float = 0.25  # +- fraction
    contrast: float = 0.25  # +- fraction
    erasing: float = 0.25  # probability of one random erased rectangle
    mixup: float = 0.0  # Beta(alpha, alpha) mixup; 0 = off
    cutmix: float = 0.0  # Beta(alpha, alpha) cutmix; 0 = off
    ten_crop: bool = False  # train on random crops of 40 px (the ten-crop protocol), resized back
    # real-photo degradations (film stills, webcams, phone photos); each is a probability per image
    gamma: float = 0.0  # gamma in [1/1.6, 1.6]: under/over-exposed faces
    lighting: float = 0.0  # a linear light gradient across the face (side lighting), +-35%
    lowres: float = 0.0  # downscale to 35-80% of the side and back up (small, soft faces)
    blur: float = 0.0  # Gaussian blur, sigma 0.4-1.5 px at 48 px (scaled with the image)
    noise: float = 0.0  # Gaussian sensor noise, sigma 1-8 grey levels
    jpeg: float = 0.0  # JPEG compression at quality 15-75 (8x8 DCT quantisation, libjpeg tables)


@dataclass
class TrainConfig:
    # data
    data: str = ""
    pixels: str | None = None  # FER-2013 file that FER+ votes join to
    labels: str = (
        "fer2013"  # fer2013 | no-disgust | merge-disgust (FER-2013 variants) | custom (folder names)
    )
    ferplus_mode: str = "majority"  # majority | soft (cross-entropy on the vote distribution)
    image_size: int = 48
    # pixel normalisation: "data" (mean and std of the training pixels) or "MEAN,STD" (pixels
    # in [0, 1]), e.g. the preprocessing an --init network was trained with
    normalize: str = "data"
    train_split: str = "train"  # split roles or names
    val_split: str = "val"
    test_split: str = "test"
    limit_train: int = 0  # use only the first N training samples (quick runs); 0 = all
    extra_data: str | None = None  # extra training images: an .npz (e.g. CycleGAN output) or a dataset
    extra_ratio: float = 1.0  # fraction of the extra images to mix in
    # model
    model: str = "vgg_fer"
    model_args: dict[str, Any] = field(default_factory=dict)
    init: str | None = None  # checkpoint or state dict to start from (fine-tuning)
    init_backbone_only: bool = False  # drop the head of --init (new class set)
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes to freeze
    unfreeze_at: int = 0  # >0: train only the head until this epoch, then everything (two-phase)
    backbone_lr_mult: float = 1.0  # discriminative LR: backbone LR = lr * this
    freeze_bn: bool = False  # BatchNorms keep their statistics and affine weights (small-data fine-tuning)
    # optimisation
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # onecycle | cosine | plateau | constant
    warmup_epochs: float = 1.0  # linear warm-up (cosine / constant)
    label_smoothing: float = 0.0
    balance: str = "none"  # none | weights (class-weighted loss) | sampler (balanced sampling)
    teacher: str | None = None  # distil from this model (shipped name, .onnx, ensemble .json, run)
    kd_weight: float = 0.5  # loss = (1 - kd_weight) * label loss + kd_weight * KD loss
    kd_temperature: float = 4.0
    ema: float = 0.0  # EMA decay of weights (e.g. 0.999); 0 = off
    early_stop: int = 0  # stop after N epochs without a better val accuracy; 0 = off
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # machine
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 on CPU/CUDA when supported) | bf16 | fp16 | fp32
    channels_last: bool = True
    compile: bool = False
    threads: int = 0  # CPU threads; 0 = all cores
    seed: int = 0
    eval_batch_size: int = 512
    # output
    out: str | None = None  # run folder; default ~/.cache/ferkit/runs/<model>-<time>
    name: str | None = None
    progress: bool | None = None  # progress bar; None = when stderr is a terminal


def _field_types(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _coerce(value: Any, current: Any, key: str) -> Any:
    """Fit a parsed value to the type of the default it replaces."""
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config {key}: expected true/false, got {value!r}")
    if isinstance(current, int) and not isinstance(current, bool):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"config {key}: expected an integer, got {value!r}")
    if isinstance(current, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "5e-4" as text
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config {key}: expected a number, got {value!r}")
    if isinstance(current, tuple):
        if isinstance(value, (list, tuple)) and len(value) == len(current):
            return tuple(float(v) for v in value)
        raise ConfigError(f"config {key}: expected a list of {len(current)} numbers, got {value!r}")
    if isinstance(current, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if isinstance(value, list):
            return value
        raise ConfigError(f"config {key}: expected a list, got {value!r}")
    if isinstance(current, dict):
        if isinstance(value, dict):
            return value
        raise ConfigError(f"config {key}: expected a mapping, got {value!r}")
    # str or optional fields: keep None and booleans (``progress``), else text.
    if value is None or (current is None and isinstance(value, bool)):
        return value
    return str(value)


def _apply(obj: Any, values: dict[str, Any], prefix: str = "") -> None:
    fields = _field_types(type(obj))
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key {full!r}; known keys: {known}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config {full}: expected a mapping of {type(current).__name__} keys")
            _apply(current, value, f"{full}.")
        elif key == "model_args" and isinstance(value, dict):
            current.update(value)
        else:
            setattr(obj, key, _coerce(value, current, full))


def parse_override(text: str) -> dict[str, Any]:
    """``"augment.rotate=15"`` -> ``{"augment": {"rotate": 15}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    key = key.strip().lstrip("-").replace("-", "_")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot parse value ({exc})") from exc
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_config(
    path: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    **values: Any,
) -> TrainConfig:
    """Defaults, then the YAML file, then ``key=value`` overrides, then keyword values."""
    cfg = TrainConfig()
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read config ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config file must be a mapping of keys to values")
        _apply(cfg, loaded)
    for text in overrides or []:
        _apply(cfg, parse_override(text))
    _apply(cfg, {k: v for k, v in values.items() if v is not None})
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    choices = {
        "optimizer": ("sgd", "adamw"),
        "schedule": ("onecycle", "cosine", "plateau", "constant"),
        "balance": ("none", "weights", "sampler"),
        "precision": ("auto", "bf16", "fp16", "fp32"),
        "labels": ("fer2013", "no-disgust", "merge-disgust", "custom"),
        "ferplus_mode": ("majority", "soft"),
    }
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"config {key}={getattr(cfg, key)!r}; choose one of {', '.join(allowed)}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise ConfigError("epochs, batch_size and lr must be positive")
    if not 0 <= cfg.kd_weight <= 1 or cfg.kd_temperature <= 0:
        raise ConfigError("kd_weight must be in 0..1 and kd_temperature positive")
    if cfg.teacher and (cfg.augment.mixup or cfg.augment.cutmix):
        raise ConfigError("--teacher cannot be combined with mixup/cutmix (the targets would not match)")


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    data = dataclasses.asdict(cfg)
    data["augment"]["scale"] = list(cfg.augment.scale)
    return data


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    cfg = TrainConfig()
    _apply(cfg, data)
    return cfg


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    from ferkit.utils import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
