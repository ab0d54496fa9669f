"""ferkit: facial expression recognition — data, training, evaluation and fast CPU inference.

Usage::

    import ferkit
    faces = ferkit.analyze("photo.jpg")                  # one call: detect + recognise
    rec = ferkit.Recognizer("fast")                      # the caller owns it; reuse it
    for face in rec("photo.jpg"):                        # a path, bytes, a PIL image or an array
        print(face.box, face.label, face.probs["happy"])
    ds = ferkit.load_dataset("fer2013.tar.gz")
    ferkit.list_models()                                 # the models that ship: ["accurate", ...]
    model = ferkit.load_model("fast")                    # or .onnx, ensemble .json, run folder, .pt
    model.card.metrics["PrivateTest"]["accuracy"]        # its card (ferkit.ModelCard)

Importing ferkit is cheap and never imports torch: the names above are imported on first
use (module ``__getattr__``), and training modules import torch themselves.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> (module, attribute): the small front door, resolved lazily.
_EXPORTS = {
    "Recognizer": ("ferkit.runtime.recognize", "Recognizer"),
    "Face": ("ferkit.runtime.recognize", "Face"),
    "load_dataset": ("ferkit.data.load", "load_dataset"),
    "list_models": ("ferkit.runtime.catalog", "shipped_models"),
    "load_model": ("ferkit.runtime.classifier", "load_model"),
    "ModelCard": ("ferkit.card", "ModelCard"),
    "ModelError": ("ferkit.errors", "ModelError"),
    "FerkitError": ("ferkit.errors", "FerkitError"),
    "DataError": ("ferkit.errors", "DataError"),
}

__all__ = [
    "DataError",
    "Face",
    "FerkitError",
    "ModelCard",
    "ModelError",
    "Recognizer",
    "__version__",
    "analyze",
    "list_models",
    "load_dataset",
    "load_model",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load on first use
    from ferkit.card import ModelCard
    from ferkit.data.load import load_dataset
    from ferkit.errors import DataError, FerkitError, ModelError
    from ferkit.runtime.catalog import shipped_models as list_models
    from ferkit.runtime.classifier import load_model
    from ferkit.runtime.recognize import Face, Recognizer


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'ferkit' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # next time a plain lookup
    return value


def analyze(image: Any, *, model: str = "default", detector: str = "auto", **options: Any) -> list:
    """Faces and their expressions in one image (a path, bytes, a PIL image or an array).

    Loads the model and detector for this one call; for many images make a
    :class:`Recognizer` once and call it instead.
    """
    from ferkit.runtime.recognize import Recognizer

    return Recognizer(model, detector=detector, **options).recognize(image)
