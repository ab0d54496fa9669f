"""TF.js layers models (``"format": "layers-model"``, Keras) as ONNX: the layer list,
functional or sequential, translated layer by layer (``ferkit.importers.tfjs_onnx``).

Usage::

    converted = layers_model("model.json", data, read_tfjs_weights(path))
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ferkit.errors import DataError
from ferkit.importers.tfjs_build import Converted, GraphBuilder, fold_batch_norm, tfjs_meta


def layers_model(source: str, data: dict, weights: dict[str, np.ndarray]) -> Converted:
    topology = data["modelTopology"]
    model = topology.get("model_config", topology)
    config = model.get("config", {})
    layers = config.get("layers", config) if isinstance(config, dict) else config
    if not isinstance(layers, list) or not layers:
        raise DataError(source, "no layers in the layers model's topology")
    b = GraphBuilder(source)
    ops = Counter(layer["class_name"] for layer in layers)
    weights = {k.split(":")[0]: v for k, v in weights.items()}
    sequential = model.get("class_name") == "Sequential" or not any(
        layer.get("inbound_nodes") for layer in layers
    )
    values: dict[str, str] = {}
    graph_inputs: list[tuple[str, list[int | None]]] = []

    def weight(layer: dict, key: str) -> np.ndarray:
        lname = layer["config"].get("name", layer.get("name"))
        for full in (f"{lname}/{key}", *[n for n in weights if n.endswith(f"/{lname}/{key}")]):
            if full in weights:
                return weights[full]
        raise DataError(source, f"layer {lname!r}: weight {key!r} is not in the weights manifest")

    def add_input(name: str, shape: list) -> str:
        dims = [None if d is None or int(d) < 0 else int(d) for d in shape]
        onnx_name = b.name(name)
        graph_inputs.append((onnx_name, dims))
        return onnx_name

    previous = None
    for layer in layers:
        cls, cfg = layer["class_name"], layer.get("config", {})
        lname = cfg.get("name", layer.get("name", cls))
        if cls == "InputLayer":
            shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
            values[lname] = previous = add_input(lname, shape)
            continue
        if sequential:
            if previous is None:  # the first layer carries the input shape
                shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
                if shape is None:
                    raise DataError(source, f"layer {lname!r}: no input shape for the model")
                previous = add_input("input", shape)
            inputs = [previous]
        else:
            inbound = layer.get("inbound_nodes") or []
            if len(inbound) != 1:
                raise DataError(
                    source, f"layer {lname!r}: shared layers ({len(inbound)} calls) are not supported"
                )
            refs = inbound[0]
            if isinstance(refs, dict):  # Keras 3 style
                raise DataError(source, f"layer {lname!r}: Keras 3 topologies are not supported")
            inputs = [values[r[0]] for r in refs]
        values[lname] = previous = _layer(b, cls, cfg, lname, inputs, lambda key, _l=layer: weight(_l, key))

    names = [o[0] for o in config.get("output_layers", [])] if not sequential else []
    outputs_tf = [values[n] for n in names] or [previous]
    model, outputs = b.finish(graph_inputs, [(v, f"output_{k}") for k, v in enumerate(outputs_tf)])
    return Converted(model, "layers-model", graph_inputs, outputs, dict(ops), tfjs_meta(data), names)


def _pair(value, default=1) -> list[int]:
    if value is None:
        return [default, default]
    return [int(value), int(value)] if isinstance(value, (int, float)) else [int(v) for v in value]


def _layer(b: GraphBuilder, cls: str, cfg: dict, name: str, inputs: list[str], weight) -> str:
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise DataError(b.source, f"layer {name!r}: channels_first is not supported")
    x = inputs[0]
    act = cfg.get("activation")
    if cls in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        bias = weight("bias") if cfg.get("use_bias", True) else None
        common = dict(
            strides=_pair(cfg.get("strides")),
            dilations=_pair(cfg.get("dilation_rate")),
            padding=cfg.get("padding", "valid"),
        )
        if cls == "Conv2D":
            y = b.conv(x, weight("kernel"), bias, name, **common)
        elif cls == "DepthwiseConv2D":
            y = b.conv(x, weight("depthwise_kernel"), bias, name, depthwise=True, **common)
        else:
            y = b.conv(x, weight("depthwise_kernel"), None, f"{name}/depthwise", depthwise=True, **common)
            y = b.conv(y, weight("pointwise_kernel"), bias, name)
        return b.activation(y, act, f"{name}/act")
    if cls == "Dense":
        y = b.op(
            "MatMul",
            [x, b.const(np.asarray(weight("kernel"), np.float32), f"{name}/kernel")],
            f"{name}/matmul",
        )
        if cfg.get("use_bias", True):
            y = b.op("Add", [y, b.const(np.asarray(weight("bias"), np.float32), f"{name}/bias")], name)
        return b.activation(y, act, f"{name}/act")
    if cls == "BatchNormalization":
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) else axis
        if axis not in (-1, 3):
            raise DataError(
                b.source, f"layer {name!r}: batch normalisation over axis {axis} is not supported"
            )
        mean, var = weight("moving_mean"), weight("moving_variance")
        gamma = weight("gamma") if cfg.get("scale", True) else np.ones_like(mean)
        beta = weight("beta") if cfg.get("center", True) else np.zeros_like(mean)
        s, shift = fold_batch_norm(gamma, beta, mean, var, cfg.get("epsilon", 1e-3))
        return b.scale_shift(x, s, shift, name)
    if cls == "Activation":
        return b.activation(x, act, name)
    if cls == "ReLU":
        if cfg.get("threshold", 0) or cfg.get("negative_slope", 0):
            raise DataError(b.source, f"layer {name!r}: ReLU with a threshold or slope is not supported")
        top = cfg.get("max_value")
        if top is None:
            return b.activation(x, "Relu", name)
        return b.op(
            "Clip", [x, b.const(np.float32(0), "zero"), b.const(np.float32(top), f"{name}/max")], name
        )
    if cls == "LeakyReLU":
        return b.activation(x, "LeakyRelu", name, cfg.get("alpha", 0.3))
    if cls == "PReLU":
        return b.activation(x, "Prelu", name, weight("alpha"))
    if cls == "ELU":
        return b.op("Elu", [x], name, alpha=float(cfg.get("alpha", 1.0)))
    if cls == "Softmax":
        return b.op("Softmax", [x], name, axis=int(cfg.get("axis", -1)))
    if cls in ("MaxPooling2D", "AveragePooling2D"):
        size = _pair(cfg.get("pool_size"), 2)
        strides = _pair(cfg.get("strides")) if cfg.get("strides") is not None else size
        kind = "MaxPool" if cls == "MaxPooling2D" else "AveragePool"
        return b.pool(x, kind, size, strides, cfg.get("padding", "valid"), name)
    if cls in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        kind = "ReduceMean" if cls == "GlobalAveragePooling2D" else "ReduceMax"
        return b.op(
            kind, [x, b.ints([1, 2], f"{name}/axes")], name, keepdims=int(bool(cfg.get("keepdims", False)))
        )
    if cls == "Flatten":
        return b.op("Flatten", [x], name, axis=1)
    if cls == "Reshape":
        return b.op("Reshape", [x, b.ints([0, *cfg["target_shape"]], f"{name}/shape")], name)
    if cls in ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout"):
        return x
    if cls == "ZeroPadding2D":
        pad = cfg.get("padding", 1)
        if isinstance(pad, (int, float)):
            (top, bottom), (left, right) = (pad, pad), (pad, pad)
        elif isinstance(pad[0], (int, float)):
            (top, bottom), (left, right) = (pad[0], pad[0]), (pad[1], pad[1])
        else:
            (top, bottom), (left, right) = pad
        pads = b.ints([0, top, left, 0, 0, bottom, right, 0], f"{name}/pads")
        return b.op("Pad", [x, pads], name, mode="constant")
    if cls in ("Add", "Multiply", "Maximum", "Minimum", "Average", "Subtract"):
        onnx_op = {"Add": "Sum", "Multiply": "Mul", "Maximum": "Max", "Minimum": "Min", "Average": "Mean"}
        if cls == "Subtract":
            return b.op("Sub", inputs, name)
        if cls == "Multiply" and len(inputs) > 2:
            y = inputs[0]
            for k, other in enumerate(inputs[1:]):
                y = b.op("Mul", [y, other], f"{name}/{k}")
            return y
        return b.op(onnx_op[cls], inputs, name)
    if cls == "Concatenate":
        return b.op("Concat", inputs, name, axis=int(cfg.get("axis", -1)))
    if cls == "Rescaling":
        y = b.op("Mul", [x, b.const(np.float32(cfg.get("scale", 1.0)), f"{name}/scale")], f"{name}/mul")
        return b.op("Add", [y, b.const(np.float32(cfg.get("offset", 0.0)), f"{name}/offset")], name)
    raise DataError(
        b.source, f"layer {name!r}: Keras layer {cls} is not supported by ferkit's TF.js importer"
    )
