"""Where models are found: shipped names (``fast``, ``accurate``, ``default``...) or paths.

Usage::

    path = resolve_model("default")      # the shipped default model's .onnx (or ensemble .json)
    path = resolve_model("my.onnx")
    shipped_models()                     # ['accurate', 'ensemble', 'fast', 'ferplus', 'tiny']

Loading is ``ferkit.runtime.classifier.load_model``.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

from ferkit.card import is_ensemble_card
from ferkit.errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def shipped_models() -> list[str]:
    """Names of the models in the package: ``.onnx`` files and ensemble cards."""
    ensembles = [p.stem for p in WEIGHTS_DIR.glob("*.json") if is_ensemble_card(p)]
    return sorted({p.stem for p in WEIGHTS_DIR.glob("*.onnx")} | set(ensembles))


def default_model_name() -> str:
    """The shipped default (named in weights/default.json), else the only or 'fast' model."""
    chooser = WEIGHTS_DIR / "default.json"
    if chooser.exists():
        return json.loads(chooser.read_text())["model"]
    models = shipped_models()
    if "fast" in models:
        return "fast"
    if len(models) == 1:
        return models[0]
    raise ModelError("no model ships with this install yet: pass a model file (model='path/to/model.onnx')")


def resolve_model(spec: str | os.PathLike) -> Path:
    """A shipped model name or an existing ``.onnx`` path -> the file's path."""
    text = str(spec)
    if text == "default":
        text = default_model_name()
    candidate = WEIGHTS_DIR / f"{text}.onnx"
    if candidate.exists():
        return candidate
    if is_ensemble_card(WEIGHTS_DIR / f"{text}.json"):
        return WEIGHTS_DIR / f"{text}.json"
    path = Path(text).expanduser()
    if path.exists():
        return path
    if path.suffix in (".onnx", ".json"):
        raise ModelError(f"{path}: model file not found")
    shipped = shipped_models()
    close = difflib.get_close_matches(text, shipped, n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ModelError(
        f"{spec}: not a model: no such file, and not a shipped model{hint} (shipped: "
        f"{', '.join(shipped) or 'none yet'}; or give an .onnx, ensemble .json, run folder or .pt)"
    )


def member_path(card_path: str | os.PathLike, member: str) -> Path:
    """An ensemble member's file: an ``.onnx`` path relative to the card where one is there
    (the shipped ensemble's ``members/...``), else a shipped name or a path as given."""
    beside = Path(card_path).parent / str(member)
    if str(member).endswith(".onnx") and beside.is_file():
        return beside
    return resolve_model(member)


def model_bytes(path: str | os.PathLike, members: tuple[str, ...] | list[str] = ()) -> int:
    """Bytes a model takes on disk: its file, plus an ensemble card's member files."""
    return Path(path).stat().st_size + sum(
        member_path(path, m).stat().st_size for m in members if not str(m).endswith(".json")
    )
