"""The model card: what a ferkit model says about itself, with one reader and one writer.

Usage::

    card = ModelCard.read("model.onnx")           # .onnx (its metadata), ensemble .json, card .json
    card.labels, card.input_size, card.color      # what the runtime needs
    card.get("train_seconds")                     # anything else the card carries
    card.write_json("model.json")                 # the JSON that ships beside an .onnx

One card, four homes, same keys: an ``.onnx`` file's ``metadata_props`` (strings, nested
values as JSON: ``to_metadata``/``from_metadata``), the ``.json`` beside a shipped ``.onnx``
(decoded), an ensemble's ``.json`` (``kind: ensemble`` with ``members`` and
``member_weights``), and a training checkpoint (``ferkit.export.card_from_checkpoint``).
Torch-free: evaluation, ensembles, the app and Ray read cards without it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ferkit.errors import ModelError

CARD_FORMAT = 1
# in a card's "quantization" line: the file stores int4 weights that load as int8
INT4_WEIGHTS = "int4 weights"
LICENSE = (
    "ferkit's weights: MIT. Trained on FER-2013 (licensed for research use) and FER+ labels "
    "(Microsoft's terms): see the README's Data licence."
)


@dataclass(frozen=True)
class ModelCard:
    labels: tuple[str, ...]
    input_size: int = 48
    color: str = "gray"  # "gray" or "rgb": the channels the model takes
    architecture: str = ""
    model_args: dict[str, Any] = field(default_factory=dict)
    normalization: dict[str, Any] = field(default_factory=dict)  # mean, std (applied in the graph)
    recipe: dict[str, Any] = field(default_factory=dict)  # the training config
    metrics: dict[str, Any] = field(default_factory=dict)  # split[_tta_mode] -> accuracy, F1, ...
    license: str = ""
    kind: str = "model"  # or "ensemble"
    members: tuple[str, ...] = ()  # ensemble: shipped names or .onnx paths relative to the card
    member_weights: tuple[float, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # epochs, hardware, parameters, macs, ...

    def get(self, key: str, default: Any = None) -> Any:
        """A field or an extra by name (``card.get("epochs")``)."""
        if key in _FIELDS:
            return getattr(self, key)
        return self.extra.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data: typed fields first, then the extras."""
        out: dict[str, Any] = {"ferkit_format": CARD_FORMAT}
        for name in _FIELDS:
            value = getattr(self, name)
            if name in ("members", "member_weights") and not value:
                continue
            out[name] = list(value) if isinstance(value, tuple) else value
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "card") -> ModelCard:
        if not isinstance(data, dict) or "labels" not in data:
            raise ModelError(f"{source}: no 'labels' in the model card: not a ferkit model")
        try:
            typed = {name: data[name] for name in _FIELDS if name in data}
            typed["labels"] = tuple(str(x) for x in typed["labels"])
            typed["input_size"] = int(typed.get("input_size", 48))
            for name in ("members", "member_weights"):
                if name in typed:
                    typed[name] = tuple(typed[name])
            for name in ("model_args", "normalization", "recipe", "metrics"):
                if not isinstance(typed.get(name, {}), dict):
                    typed[name] = {"value": typed[name]}  # older cards: a note in place of a dict
            extra = {k: v for k, v in data.items() if k not in _FIELDS and k != "ferkit_format"}
            return cls(**typed, extra=extra)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"{source}: malformed model card ({exc})") from exc

    def to_metadata(self) -> dict[str, str]:
        """String key/values for ONNX ``metadata_props`` (nested values as JSON)."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str = "model") -> ModelCard:
        return cls.from_dict({k: _maybe_json(v) for k, v in meta.items()}, source)

    def write_json(self, path: str | os.PathLike) -> Path:
        from ferkit.utils import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> ModelCard:
        """The card of an ``.onnx`` file (its own metadata) or of a ``.json`` card.

        The ``.json`` beside an ``.onnx`` file is a copy for people to read: a file replaced
        without its twin would otherwise be described by another model's card, so the file's
        metadata, which the runtime uses too, is what counts. Only the file is parsed (no
        inference session: 0.5-4.4 ms for a shipped model, against 3.6-11 ms to open one).
        Shipped names resolve first: ``ModelCard.read(resolve_model("fast"))``.
        """
        path = Path(path)
        if path.suffix == ".json":
            return cls.read_json(path)
        import onnx

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf's DecodeError, OSError, ...
            raise ModelError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from exc
        if not proto.HasField("graph"):  # an empty file parses as an empty ModelProto
            raise ModelError(f"{path}: not a loadable ONNX model (no graph in the file)")
        return cls.from_onnx(proto, str(path))

    @classmethod
    def from_onnx(cls, proto: Any, source: str = "model") -> ModelCard:
        """The card in a loaded ONNX ``ModelProto``'s ``metadata_props``."""
        return cls.from_metadata({p.key: p.value for p in proto.metadata_props}, source)

    @classmethod
    def read_json(cls, path: str | os.PathLike) -> ModelCard:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ModelError(f"{path}: model card not found") from exc
        except (ValueError, OSError) as exc:
            raise ModelError(f"{path}: not a JSON model card ({exc})") from exc
        return cls.from_dict(data, str(path))


_FIELDS = tuple(f.name for f in fields(ModelCard) if f.name != "extra")


def is_ensemble_card(path: str | os.PathLike) -> bool:
    """Is ``path`` a JSON card of ``kind: ensemble``? (False for anything unreadable.)"""
    path = Path(path)
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("kind") == "ensemble"
    except (ValueError, AttributeError, OSError):
        return False


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def metrics_from_eval(eval_json: dict[str, Any]) -> dict[str, Any]:
    """Card metrics from one ``ferkit eval`` result (its first entry), keyed by split and TTA."""
    entry = eval_json["entries"][0]
    report = entry["report"]
    key = f"{eval_json['split']}" + ("" if eval_json["tta"] == "none" else f"_tta_{eval_json['tta']}")
    if eval_json.get("variant", "fer2013") != "fer2013":
        key += f"_{eval_json['variant']}"
    return {
        key: {
            "accuracy": report["accuracy"],
            "accuracy_ci95": entry["accuracy_ci95"],
            "macro_f1": report["macro_f1"],
            "balanced_accuracy": report["balanced_accuracy"],
            "ece": entry["ece"],
            "per_class_f1": {name: m["f1"] for name, m in report["per_class"].items()},
            "confusion": report["confusion"],  # rows: true class, columns: predicted
            "n": report["n"],
        }
    }


def save_onnx(proto: Any, card: ModelCard, path: Path, json_path: str | os.PathLike | None = None) -> None:
    """``card`` as the ONNX model's whole metadata, the file written atomically, and the same
    card as JSON beside it (``json_path``, default ``path`` with ``.json``) for people to read."""
    import onnx

    from ferkit.utils import atomic_path

    del proto.metadata_props[:]
    for key, value in card.to_metadata().items():
        proto.metadata_props.add(key=key, value=value)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    card.write_json(json_path or path.with_suffix(".json"))


COMPACT_MIN_SIZE = 1024  # smaller tensors (biases, scales) stay as they are: no bytes worth saving


def compact_weights(model, *, min_size: int = COMPACT_MIN_SIZE) -> dict[str, int]:
    """Store ``model``'s float32 weight tensors in fewer bytes without changing a value, each
    behind a node that ONNX Runtime folds when it loads the model (the session then computes
    on the same float32 weights as before, at the same speed, with bit-for-bit the same
    outputs):

    - a tensor of at most 256 distinct values (weights that were stored quantised, as
      TensorFlow.js's uint8 files are) becomes uint8 indices into a float32 table of its
      values, behind a ``Cast`` and a ``Gather``: a quarter of the bytes;
    - a tensor whose every value is a float16 exactly (weights that were float16, as
      MediaPipe's BlazeFace files are) becomes float16 behind a ``Cast``: half.

    Tensors under ``min_size`` values, and any other, stay float32. Returns how many tensors
    took each form: ``{"table": n, "float16": m}``."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inputs = {i.name for i in graph.input}
    nodes, extra, counts = [], [], {"table": 0, "float16": 0}
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT or init.name in inputs:
            continue
        values = numpy_helper.to_array(init)
        if values.size < min_size:
            continue
        name = init.name
        table, index = np.unique(values, return_inverse=True)
        if len(table) <= 256:
            index = index.reshape(values.shape).astype(np.uint8)
            init.CopyFrom(numpy_helper.from_array(index, f"{name}_index"))
            extra.append(numpy_helper.from_array(table.astype(np.float32), f"{name}_table"))
            # Gather wants int32/int64 indices: the uint8 ones are cast first (folded too)
            wide = f"{name}_index32"
            nodes.append(helper.make_node("Cast", [f"{name}_index"], [wide], to=TensorProto.INT32))
            nodes.append(helper.make_node("Gather", [f"{name}_table", wide], [name], axis=0))
            counts["table"] += 1
            continue
        half = values.astype(np.float16)
        if np.all(np.isfinite(half)) and np.array_equal(half.astype(np.float32), values):
            init.CopyFrom(numpy_helper.from_array(half, f"{name}_float16"))
            nodes.append(helper.make_node("Cast", [f"{name}_float16"], [name], to=TensorProto.FLOAT))
            counts["float16"] += 1
    graph.initializer.extend(extra)
    for node in reversed(nodes):  # before every node, so the graph stays in topological order
        graph.node.insert(0, node)
    return counts
