"""TensorFlow.js models (``model.json`` + weight shards) as ONNX graphs, with no TensorFlow.

Usage::

    converted = convert_tfjs("human/models/emotion.json")   # graph or layers model
    converted.model        # onnx.ModelProto: same inputs (NHWC), same outputs, float32
    converted.ops          # {"_FusedConv2D": 9, ...}: what the file uses

Both TF.js formats are read:

* **graph models** (``"format": "graph-model"``, from ``tensorflowjs_converter`` on a
  SavedModel or frozen graph): a TensorFlow GraphDef whose nodes are translated one by one;
* **layers models** (``"format": "layers-model"``, Keras): the layer list, functional or
  sequential, translated layer by layer.

Tensors keep TensorFlow's layout (NHWC) everywhere, so reshapes, reductions, concatenations
and paddings mean what they meant in TensorFlow; each convolution and pooling is wrapped in a
pair of transposes (NHWC -> NCHW -> NHWC), which ONNX Runtime's transpose optimiser cancels
between consecutive layers. Weights are dequantised to float32 (``ferkit.importers.tfjs``).
An op or layer outside the supported set is an error that names it and the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ferkit.errors import DataError
from ferkit.importers.tfjs import read_tfjs_weights
from ferkit.importers.tfjs_build import Converted
from ferkit.importers.tfjs_graph import graph_model
from ferkit.importers.tfjs_layers import layers_model

__all__ = ["Converted", "convert_tfjs"]


def convert_tfjs(model_json: str | os.PathLike) -> Converted:
    """The TF.js graph or layers model at ``model_json`` (with its shards beside it) as ONNX."""
    path = Path(model_json)
    source = str(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(source, f"not a readable TF.js model.json ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("modelTopology"), dict):
        raise DataError(
            source,
            "no modelTopology: a weights manifest alone (the network is defined in its package's code; "
            "face-api's expression model: ferkit import faceapi)",
        )
    weights = read_tfjs_weights(path)
    topology = data["modelTopology"]
    fmt = data.get("format") or ("graph-model" if "node" in topology else "layers-model")
    if fmt == "graph-model" or "node" in topology:
        return graph_model(source, data, weights)
    return layers_model(source, data, weights)
