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

import base64
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.errors import DataError

OPSET = 18
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


@dataclass
class Converted:
    model: Any  # onnx.ModelProto
    format: str  # "graph-model" or "layers-model"
    inputs: list[tuple[str, list[int | None]]]  # ONNX input name, shape (None: any)
    outputs: list[str]
    ops: dict[str, int] = field(default_factory=dict)  # TF ops or Keras layer classes used
    metadata: dict[str, Any] = field(default_factory=dict)  # generatedBy, convertedBy, ...
    tf_outputs: list[str] = field(default_factory=list)  # the same outputs' names in TF.js


class _Builder:
    """An ONNX graph under construction: nodes, initializers, unique names."""

    def __init__(self, source: str):
        self.source = source
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = set()

    def name(self, hint: str) -> str:
        base = "".join(c if c.isalnum() or c in "_./-" else "_" for c in hint) or "t"
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def const(self, value: np.ndarray, hint: str = "const") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def ints(self, values, hint: str = "shape") -> str:
        return self.const(np.asarray(values, np.int64).reshape(-1), hint)

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs) -> str:
        from onnx import helper

        out = self.name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(f"node/{hint}"), **attrs))
        return out

    # layout-wrapped NHWC operations ---------------------------------------------------------
    def nchw(self, x: str, hint: str, op_type: str, inputs: list[str], **attrs) -> str:
        """``op_type`` (an NCHW ONNX op) applied to the NHWC tensor ``x``: transposes around it."""
        t = self.op("Transpose", [x], f"{hint}/nchw", perm=NHWC_TO_NCHW)
        y = self.op(op_type, [t, *inputs], f"{hint}/{op_type.lower()}", **attrs)
        return self.op("Transpose", [y], hint, perm=NCHW_TO_NHWC)

    def conv(
        self,
        x: str,
        kernel: np.ndarray,
        bias: np.ndarray | None,
        hint: str,
        *,
        strides=(1, 1),
        dilations=(1, 1),
        padding: str = "VALID",
        explicit: list[int] | None = None,
        depthwise: bool = False,
    ) -> str:
        """TF conv2d (kernel HWIO) or depthwise conv2d (kernel HW C multiplier) on NHWC ``x``."""
        kernel = np.asarray(kernel, np.float32)
        if kernel.ndim != 4:
            raise DataError(self.source, f"{hint}: a 4-d convolution kernel expected, got {kernel.shape}")
        kh, kw, cin, cout = kernel.shape
        if depthwise:  # output channel c * multiplier + m, one group per input channel
            weight = kernel.reshape(kh, kw, cin * cout).transpose(2, 0, 1)[:, None]
            group, out_channels = cin, cin * cout
        else:
            weight, group, out_channels = kernel.transpose(3, 2, 0, 1), 1, cout
        inputs = [self.const(weight, f"{hint}/weight")]
        if bias is not None:
            bias = np.asarray(bias, np.float32).reshape(-1)
            if bias.size != out_channels:
                raise DataError(self.source, f"{hint}: {bias.size} biases for {out_channels} channels")
            inputs.append(self.const(bias, f"{hint}/bias"))
        attrs: dict[str, Any] = dict(
            kernel_shape=[kh, kw], strides=list(strides), dilations=list(dilations), group=group
        )
        attrs.update(_padding(self.source, hint, padding, explicit))
        return self.nchw(x, hint, "Conv", inputs, **attrs)

    def pool(self, x: str, kind: str, size, strides, padding: str, hint: str) -> str:
        attrs: dict[str, Any] = dict(kernel_shape=list(size), strides=list(strides))
        attrs.update(_padding(self.source, hint, padding, None))
        if kind == "AveragePool":
            attrs["count_include_pad"] = 0  # TF averages over the real pixels only
        return self.nchw(x, hint, kind, [], **attrs)

    def finish(
        self, inputs: list[tuple[str, list[int | None]]], outputs: list[tuple[str, str]]
    ) -> tuple[Any, list[str]]:
        """The checked model: ``inputs`` (name, shape), and each ``(value, hint)`` of ``outputs``
        as a named graph output; returns the model and the output names."""
        names = [self.op("Identity", [value], hint) for value, hint in outputs]
        graph = helper_graph(self.nodes, inputs, names, self.initializers)
        return _model(graph), names

    def scale_shift(self, x: str, scale: np.ndarray, shift: np.ndarray, hint: str) -> str:
        """``x * scale + shift`` over the last axis (a folded batch normalisation)."""
        y = self.op("Mul", [x, self.const(np.asarray(scale, np.float32), f"{hint}/scale")], f"{hint}/mul")
        return self.op("Add", [y, self.const(np.asarray(shift, np.float32), f"{hint}/shift")], hint)

    def activation(self, x: str, kind: str, hint: str, alpha: Any = None) -> str:
        """A TF activation by its op name (Relu, Relu6, Prelu, ...) or its Keras name."""
        kind = _ACTIVATION_ALIASES.get(kind, kind)
        if kind in ("linear", "Identity", None, ""):
            return x
        if kind == "Relu6":
            return self.op(
                "Clip", [x, self.const(np.float32(0), "zero"), self.const(np.float32(6), "six")], hint
            )
        if kind == "Prelu":
            return self.op("PRelu", [x, self.const(np.asarray(alpha, np.float32), f"{hint}/alpha")], hint)
        if kind == "LeakyRelu":
            return self.op("LeakyRelu", [x], hint, alpha=float(0.2 if alpha is None else alpha))
        if kind == "Softmax":
            return self.op("Softmax", [x], hint, axis=-1)
        if kind == "Swish":
            return self.op("Mul", [x, self.op("Sigmoid", [x], f"{hint}/sigmoid")], hint)
        if kind == "HardSigmoid":  # Keras: clip(0.2 x + 0.5, 0, 1)
            return self.op("HardSigmoid", [x], hint, alpha=0.2, beta=0.5)
        if kind in _UNARY:
            return self.op(_UNARY[kind], [x], hint)
        raise DataError(self.source, f"{hint}: activation {kind!r} is not supported")


_ACTIVATION_ALIASES = {
    "relu": "Relu",
    "relu6": "Relu6",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "softmax": "Softmax",
    "elu": "Elu",
    "selu": "Selu",
    "softplus": "Softplus",
    "softsign": "Softsign",
    "swish": "Swish",
    "silu": "Swish",
    "hard_sigmoid": "HardSigmoid",
    "hardSigmoid": "HardSigmoid",
    "exponential": "Exp",
}
_UNARY = {
    "Relu": "Relu",
    "Sigmoid": "Sigmoid",
    "Tanh": "Tanh",
    "Elu": "Elu",
    "Selu": "Selu",
    "Softplus": "Softplus",
    "Softsign": "Softsign",
    "Exp": "Exp",
    "Log": "Log",
    "Sqrt": "Sqrt",
    "Abs": "Abs",
    "Neg": "Neg",
    "Floor": "Floor",
    "Ceil": "Ceil",
    "Reciprocal": "Reciprocal",
    "Identity": "Identity",
    "StopGradient": "Identity",
    "Erf": "Erf",
}
_BINARY = {
    "Add": "Add",
    "AddV2": "Add",
    "BiasAdd": "Add",
    "Sub": "Sub",
    "Mul": "Mul",
    "RealDiv": "Div",
    "Div": "Div",
    "Maximum": "Max",
    "Minimum": "Min",
    "Pow": "Pow",
}
_REDUCE = {
    "Mean": "ReduceMean",
    "Sum": "ReduceSum",
    "Max": "ReduceMax",
    "Min": "ReduceMin",
    "Prod": "ReduceProd",
}


def _fold_batch_norm(scale, offset, mean, var, eps) -> tuple[np.ndarray, np.ndarray]:
    """Inference batch normalisation as ``x * s + shift``: ``(s, shift)``."""
    scale, offset, mean, var = (np.asarray(a, np.float32) for a in (scale, offset, mean, var))
    s = scale / np.sqrt(var + np.float32(eps))
    return s, offset - mean * s


def _padding(source: str, hint: str, padding: str, explicit: list[int] | None) -> dict[str, Any]:
    padding = padding.upper()
    if padding == "SAME":
        return {"auto_pad": "SAME_UPPER"}  # TF puts the odd pixel at the end, as SAME_UPPER
    if padding == "VALID":
        return {"auto_pad": "VALID"}
    if padding == "EXPLICIT" and explicit is not None and len(explicit) == 8:
        top, bottom, left, right = explicit[2:6]
        return {"pads": [top, left, bottom, right]}
    raise DataError(source, f"{hint}: padding {padding!r} is not supported")


# --- graph models ----------------------------------------------------------------------------


def _attr_str(attr: dict, key: str, default: str = "") -> str:
    value = attr.get(key, {}).get("s")
    return base64.b64decode(value).decode() if value is not None else default


def _attr_ints(attr: dict, key: str, default=None) -> list[int]:
    values = attr.get(key, {}).get("list", {}).get("i")
    return [int(v) for v in values] if values is not None else list(default or [])


def _attr_strs(attr: dict, key: str) -> list[str]:
    return [base64.b64decode(v).decode() for v in attr.get(key, {}).get("list", {}).get("s", [])]


def _attr_scalar(attr: dict, key: str, default: Any = None) -> Any:
    value = attr.get(key, {})
    for kind, cast in (("f", float), ("i", int), ("b", bool)):
        if kind in value:
            return cast(value[kind])
    return default


def _inline_const(node: dict) -> np.ndarray | None:
    """A Const whose value is in the topology (small tensors some converters keep there)."""
    tensor = node.get("attr", {}).get("value", {}).get("tensor")
    if not tensor:
        return None
    dims = [int(d.get("size", 0)) for d in tensor.get("tensorShape", {}).get("dim", [])]
    dtype = {"DT_FLOAT": np.float32, "DT_INT32": np.int32, "DT_INT64": np.int64}.get(tensor.get("dtype"))
    if dtype is None:
        return None
    if "tensorContent" in tensor:
        return np.frombuffer(base64.b64decode(tensor["tensorContent"]), dtype=dtype).reshape(dims)
    for key in ("floatVal", "intVal", "int64Val"):
        if key in tensor:
            values = np.asarray([float(v) for v in tensor[key]], dtype=dtype)
            count = int(np.prod(dims)) if dims else 1
            return (
                np.broadcast_to(values, (count,)).reshape(dims) if values.size == 1 else values.reshape(dims)
            )
    return np.zeros(dims, dtype)


def _input_name(ref: str) -> tuple[str, int]:
    name, _, index = ref.partition(":")
    return name, int(index) if index.isdigit() else 0


def _graph(source: str, data: dict, weights: dict[str, np.ndarray]) -> Converted:

    topology = data["modelTopology"]
    nodes = {n["name"]: n for n in topology.get("node", [])}
    if topology.get("library", {}).get("function"):
        raise DataError(source, "graph functions (control flow) are not supported")
    b = _Builder(source)
    consts: dict[str, np.ndarray] = {}
    values: dict[str, str] = {}  # TF tensor name -> ONNX value name
    ops = Counter(n["op"] for n in nodes.values())

    signature = data.get("signature") or data.get("userDefinedMetadata", {}).get("signature") or {}
    placeholders = [n for n in nodes.values() if n["op"] == "Placeholder"]
    graph_inputs = []
    for node in placeholders:
        dims = node.get("attr", {}).get("shape", {}).get("shape", {}).get("dim", [])
        shape: list[int | None] = [int(d.get("size", -1)) for d in dims]
        shape = [None if d < 0 else d for d in shape]
        name = b.name(node["name"])
        values[node["name"]] = name
        graph_inputs.append((name, shape))
    for node in nodes.values():
        if node["op"] == "Const":
            value = weights.get(node["name"])
            if value is None:
                value = _inline_const(node)
            if value is None:
                raise DataError(source, f"constant {node['name']!r} has no value in the weights or the graph")
            consts[node["name"]] = value

    consumed = {
        _input_name(r)[0] for n in nodes.values() for r in n.get("input", []) if not r.startswith("^")
    }
    if signature.get("outputs"):
        wanted = [_input_name(o.get("name", k))[0] for k, o in signature["outputs"].items()]
    else:
        wanted = [n for n, node in nodes.items() if n not in consumed and node["op"] not in ("Const", "NoOp")]

    def const_of(ref: str, what: str, node: dict) -> np.ndarray:
        name = _input_name(ref)[0]
        while nodes.get(name, {}).get("op") == "Identity" and name not in consts:
            name = _input_name(nodes[name]["input"][0])[0]
        if name not in consts:
            raise DataError(source, f"{node['name']} ({node['op']}): its {what} must be a constant")
        return consts[name]

    def tensor(ref: str) -> str:
        name, index = _input_name(ref)
        if name in consts:
            key = f"const:{name}"
            if key not in values:
                value = consts[name]
                value = value.astype(np.float32) if value.dtype == np.float64 else value
                values[key] = b.const(value, name)
            return values[key]
        if index:
            raise DataError(source, f"{ref}: ops with several outputs are not supported")
        if name not in values:
            visit(name)
        return values[name]

    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in values or name in consts:
            return
        if name not in nodes:
            raise DataError(source, f"the graph refers to {name!r}, which it does not define")
        if name in visiting:
            raise DataError(source, f"{name}: the graph has a cycle")
        visiting.add(name)
        node = nodes[name]
        for ref in node.get("input", []):  # inputs first (depth first, from the outputs)
            if not ref.startswith("^") and _input_name(ref)[0] not in consts:
                visit(_input_name(ref)[0])
        values[name] = _graph_node(b, node, tensor, const_of)
        visiting.discard(name)

    for name in wanted:
        visit(name)
    model, outputs = b.finish(graph_inputs, [(values[name], name) for name in wanted])
    return Converted(model, "graph-model", graph_inputs, outputs, dict(ops), _meta(data), wanted)


def _fused_activation(b: _Builder, y: str, rest: list[str], args: list, attr: dict, name: str) -> str:
    """The activation a fused op ends with, if any: PReLU takes its alpha as the last argument,
    LeakyRelu from the ``leakyrelu_alpha`` attribute."""
    if not rest:
        return y
    alpha = args[-1] if rest[0] == "Prelu" else _attr_scalar(attr, "leakyrelu_alpha", 0.2)
    return b.activation(y, rest[0], f"{name}/act", alpha)


def _graph_node(b: _Builder, node: dict, tensor, const_of) -> str:
    op, name, attr = node["op"], node["name"], node.get("attr", {})
    refs = [r for r in node.get("input", []) if not r.startswith("^")]
    fmt = _attr_str(attr, "data_format", "NHWC")
    if fmt not in ("NHWC", ""):
        raise DataError(b.source, f"{name} ({op}): data format {fmt} is not supported (NHWC only)")

    if op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
        kernel = const_of(refs[1], "filter", node)
        strides = _attr_ints(attr, "strides", [1, 1, 1, 1])[1:3]
        dilations = _attr_ints(attr, "dilations", [1, 1, 1, 1])[1:3]
        padding = _attr_str(attr, "padding", "VALID")
        explicit = _attr_ints(attr, "explicit_paddings")
        fused = _attr_strs(attr, "fused_ops")
        args = [const_of(r, "fused argument", node) for r in refs[2:]]
        bias = None
        if fused and fused[0] == "FusedBatchNorm":  # scale, offset, mean, variance
            s, bias = _fold_batch_norm(*args[:4], _attr_scalar(attr, "epsilon", 1e-3))
            kernel = np.asarray(kernel, np.float32) * (
                s if "Depthwise" not in op else s.reshape(kernel.shape[2:])
            )
            rest = fused[1:]
        elif fused and fused[0] == "BiasAdd":
            bias, rest = args[0], fused[1:]
        else:
            rest = fused
        y = b.conv(
            tensor(refs[0]),
            kernel,
            bias,
            name,
            strides=strides,
            dilations=dilations,
            padding=padding,
            explicit=explicit,
            depthwise="Depthwise" in op,
        )
        return _fused_activation(b, y, rest, args, attr, name)
    if op in ("MatMul", "_FusedMatMul"):
        a = tensor(refs[0])
        if _attr_scalar(attr, "transpose_a", False):
            a = b.op("Transpose", [a], f"{name}/a_t", perm=[1, 0])
        weight = np.asarray(const_of(refs[1], "weights", node), np.float32)
        if _attr_scalar(attr, "transpose_b", False):
            weight = weight.T
        y = b.op("MatMul", [a, b.const(weight, f"{name}/weight")], f"{name}/matmul")
        fused = _attr_strs(attr, "fused_ops")
        args = [const_of(r, "fused argument", node) for r in refs[2:]]
        if fused and fused[0] == "BiasAdd":
            y = b.op("Add", [y, b.const(np.asarray(args[0], np.float32), f"{name}/bias")], name)
            fused = fused[1:]
        return _fused_activation(b, y, fused, args, attr, name)
    if op in ("MaxPool", "AvgPool"):
        size = _attr_ints(attr, "ksize", [1, 1, 1, 1])[1:3]
        strides = _attr_ints(attr, "strides", [1, 1, 1, 1])[1:3]
        kind = "MaxPool" if op == "MaxPool" else "AveragePool"
        return b.pool(tensor(refs[0]), kind, size, strides, _attr_str(attr, "padding", "VALID"), name)
    if op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"):
        stats = [const_of(r, "statistics", node) for r in refs[1:5]]
        s, shift = _fold_batch_norm(*stats, _attr_scalar(attr, "epsilon", 1e-3))
        return b.scale_shift(tensor(refs[0]), s, shift, name)
    if op in _BINARY:
        return b.op(_BINARY[op], [tensor(refs[0]), tensor(refs[1])], name)
    if op == "SquaredDifference":
        d = b.op("Sub", [tensor(refs[0]), tensor(refs[1])], f"{name}/sub")
        return b.op("Mul", [d, d], name)
    if op == "AddN":
        return b.op("Sum", [tensor(r) for r in refs], name)
    if op == "Rsqrt":
        return b.op("Reciprocal", [b.op("Sqrt", [tensor(refs[0])], f"{name}/sqrt")], name)
    if op == "Square":
        x = tensor(refs[0])
        return b.op("Mul", [x, x], name)
    if op == "Prelu":
        return b.op("PRelu", [tensor(refs[0]), tensor(refs[1])], name)
    if op == "LeakyRelu":
        return b.activation(tensor(refs[0]), "LeakyRelu", name, _attr_scalar(attr, "alpha", 0.2))
    if op in ("Relu6", "Softmax") or op in _UNARY:
        return b.activation(tensor(refs[0]), op, name)
    if op == "LogSoftmax":
        return b.op("LogSoftmax", [tensor(refs[0])], name, axis=-1)
    if op in _REDUCE:
        axes = np.asarray(const_of(refs[1], "axes", node)).reshape(-1)
        keep = int(bool(_attr_scalar(attr, "keep_dims", False)))
        return b.op(_REDUCE[op], [tensor(refs[0]), b.ints(axes, f"{name}/axes")], name, keepdims=keep)
    if op == "Reshape":
        shape = np.asarray(const_of(refs[1], "shape", node)).reshape(-1)
        return b.op("Reshape", [tensor(refs[0]), b.ints(shape, f"{name}/shape")], name)
    if op == "Squeeze":
        axes = _attr_ints(attr, "squeeze_dims") or _attr_ints(attr, "axis")
        return b.op("Squeeze", [tensor(refs[0]), *([b.ints(axes, f"{name}/axes")] if axes else [])], name)
    if op == "ExpandDims":
        axis = np.asarray(const_of(refs[1], "axis", node)).reshape(-1)
        return b.op("Unsqueeze", [tensor(refs[0]), b.ints(axis, f"{name}/axes")], name)
    if op == "Transpose":
        perm = [int(p) for p in np.asarray(const_of(refs[1], "permutation", node)).reshape(-1)]
        return b.op("Transpose", [tensor(refs[0])], name, perm=perm)
    if op == "ConcatV2":
        axis = int(np.asarray(const_of(refs[-1], "axis", node)).reshape(-1)[0])
        return b.op("Concat", [tensor(r) for r in refs[:-1]], name, axis=axis)
    if op == "Pack":
        axis = int(_attr_scalar(attr, "axis", 0))
        parts = [
            b.op("Unsqueeze", [tensor(r), b.ints([axis], f"{name}/axis")], f"{name}/{k}")
            for k, r in enumerate(refs)
        ]
        return b.op("Concat", parts, name, axis=axis)
    if op in ("Pad", "PadV2", "MirrorPad"):
        pads = np.asarray(const_of(refs[1], "paddings", node), np.int64).reshape(-1, 2)
        inputs = [tensor(refs[0]), b.ints(np.concatenate([pads[:, 0], pads[:, 1]]), f"{name}/pads")]
        mode = "constant"
        if op == "PadV2":
            inputs.append(
                b.const(np.asarray(const_of(refs[2], "value", node), np.float32).reshape(()), f"{name}/value")
            )
        if op == "MirrorPad":
            mode = _attr_str(attr, "mode", "REFLECT").lower()
            if mode != "reflect":
                raise DataError(b.source, f"{name} (MirrorPad): mode {mode.upper()} is not supported")
        return b.op("Pad", inputs, name, mode=mode)
    if op == "Cast":
        return b.op("Cast", [tensor(refs[0])], name, to=1)  # float32: the only dtype carried
    if op == "ClipByValue":
        return b.op("Clip", [tensor(refs[0]), tensor(refs[1]), tensor(refs[2])], name)
    raise DataError(b.source, f"{name}: TF op {op} is not supported by ferkit's TF.js importer")


# --- layers models ---------------------------------------------------------------------------


def _layers(source: str, data: dict, weights: dict[str, np.ndarray]) -> Converted:
    topology = data["modelTopology"]
    model = topology.get("model_config", topology)
    config = model.get("config", {})
    layers = config.get("layers", config) if isinstance(config, dict) else config
    if not isinstance(layers, list) or not layers:
        raise DataError(source, "no layers in the layers model's topology")
    b = _Builder(source)
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
    return Converted(model, "layers-model", graph_inputs, outputs, dict(ops), _meta(data), names)


def _pair(value, default=1) -> list[int]:
    if value is None:
        return [default, default]
    return [int(value), int(value)] if isinstance(value, (int, float)) else [int(v) for v in value]


def _layer(b: _Builder, cls: str, cfg: dict, name: str, inputs: list[str], weight) -> str:
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
        s, shift = _fold_batch_norm(gamma, beta, mean, var, cfg.get("epsilon", 1e-3))
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


# --- shared ----------------------------------------------------------------------------------


def helper_graph(nodes, inputs, outputs, initializers):
    """A float32 GraphProto; output shapes are filled in by ``_model``."""
    from onnx import TensorProto, helper

    return helper.make_graph(
        nodes,
        "tfjs",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializers,
    )


def _model(graph):
    """A checked model; each output's shape from ONNX shape inference (unknown sizes named)."""
    from onnx import checker, helper, shape_inference

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ferkit")
    model.ir_version = 9
    inferred = shape_inference.infer_shapes(model)
    known = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.output]}
    for output in model.graph.output:
        value = known.get(output.name)
        if value is not None and value.type.tensor_type.HasField("shape"):
            output.type.CopyFrom(value.type)
        else:
            output.type.tensor_type.shape.SetInParent()  # rank unknown: an empty shape field
    for output in model.graph.output:
        for k, dim in enumerate(output.type.tensor_type.shape.dim):
            if not dim.HasField("dim_value") and not dim.dim_param:
                dim.dim_param = f"{output.name}_dim{k}"
    checker.check_model(model)
    return model


def _meta(data: dict) -> dict[str, Any]:
    return {k: data[k] for k in ("generatedBy", "convertedBy", "format") if k in data}


def convert_tfjs(model_json: str | os.PathLike) -> Converted:
    """The TF.js graph or layers model at ``model_json`` (with its shards beside it) as ONNX."""
    from ferkit.importers.tfjs import read_tfjs_weights

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
        return _graph(source, data, weights)
    return _layers(source, data, weights)


# --- import: source, reference check, ferkit model -------------------------------------------

TFJS_MODULES_ENV = "FERKIT_TFJS_MODULES"  # a node_modules folder holding @tensorflow/tfjs


@dataclass
class TfjsImport:
    path: Path
    format: str
    inputs: list[tuple[str, list[int | None]]]  # of the TF.js model (NHWC)
    outputs: list[str]
    ops: dict[str, int]
    source: dict[str, str]  # package, version, model, file, sha256, license
    reference: str  # what the conversion was checked against, or why it was not
    max_abs_diff: float | None  # ONNX Runtime vs TensorFlow.js on the check input
    expression_model: bool  # a ferkit model with a card (labels given), else a plain conversion


def _model_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.json")):
        if path.name == "package.json" or path.stat().st_size > 50_000_000:
            continue
        try:
            head = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if isinstance(head, dict) and isinstance(head.get("modelTopology"), dict):
            found.append(path)
    return found


def _pick(root: Path, model: str | None, source: Path) -> Path:
    candidates = _model_files(root)
    if model is not None:
        chosen = [p for p in candidates if p.stem == model or p.name == model]
        if not chosen:
            names = ", ".join(p.stem for p in candidates) or "none"
            raise DataError(str(source), f"no TF.js model {model!r} in it (models: {names})")
        return chosen[0]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        hint = ""
        if any(root.rglob("*weights_manifest.json")):
            hint = " (weights manifests only, networks defined in code; face-api's: ferkit import faceapi)"
        raise DataError(str(source), f"no TF.js model.json (with a modelTopology) in it{hint}")
    names = ", ".join(p.stem for p in candidates)
    raise DataError(str(source), f"{len(candidates)} TF.js models in it; choose one with --model ({names})")


def _shards(model_json: Path) -> list[Path]:
    data = json.loads(model_json.read_text())
    return [
        model_json.parent / p for group in data.get("weightsManifest", []) for p in group.get("paths", [])
    ]


def tfjs_modules() -> Path | None:
    """A node_modules folder with @tensorflow/tfjs: $FERKIT_TFJS_MODULES, else the one
    ``tools/fetch_npm_weights.sh`` installs (~/.cache/ferkit/tfjs/node_modules)."""
    env = os.environ.get(TFJS_MODULES_ENV)
    candidates = [Path(env)] if env else [Path.home() / ".cache" / "ferkit" / "tfjs" / "node_modules"]
    for folder in candidates:
        if (folder / "@tensorflow" / "tfjs" / "package.json").is_file():
            return folder
    return None


def tfjs_missing() -> str | None:
    """Why TensorFlow.js cannot be run here (None: node and @tensorflow/tfjs are both found)."""
    import shutil

    if tfjs_modules() is None:
        return f"no TensorFlow.js (set {TFJS_MODULES_ENV} or run tools/fetch_npm_weights.sh)"
    if shutil.which("node") is None:
        return "node is not installed"
    return None


def tfjs_outputs(
    model_json: Path, x: np.ndarray, outputs: list[str], timeout: float = 600
) -> list[np.ndarray]:
    """TensorFlow.js's own outputs for ``x`` (NHWC float32), run by node (tfjs_reference.mjs)."""
    import shutil
    import subprocess
    import tempfile

    missing = tfjs_missing()
    if missing:
        raise DataError(str(model_json), f"TensorFlow.js cannot run: {missing}")
    node, modules = shutil.which("node"), tfjs_modules()
    script = Path(__file__).with_name("tfjs_reference.mjs")
    with tempfile.TemporaryDirectory() as tmp:
        np.ascontiguousarray(x, "<f4").tofile(Path(tmp) / "input.bin")
        shape = ",".join(str(d) for d in x.shape)
        cmd = [node, str(script), str(model_json), str(Path(tmp) / "input.bin"), shape, tmp, *outputs]
        env = dict(os.environ, NODE_PATH=str(modules))
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            tail = [line for line in lines if "Error" in line][:1] or lines[-3:]
            raise DataError(str(model_json), f"TensorFlow.js failed on it: {' / '.join(tail)}")
        shapes = json.loads((Path(tmp) / "outputs.json").read_text())
        return [
            np.fromfile(Path(tmp) / f"out_{k}.bin", "<f4").reshape(s["shape"]) for k, s in enumerate(shapes)
        ]


def check_input(converted: Converted, batch: int = 2, seed: int = 0) -> np.ndarray:
    """The input the conversion is checked on: uniform in [-1, 1] (what normalised images span),
    ``batch`` images unless the model fixes its batch."""
    (_, shape), *rest = converted.inputs
    if rest:
        raise DataError("model", "models with several inputs are not supported")
    dims = [batch if k == 0 and d is None else d for k, d in enumerate(shape)]
    if any(d is None for d in dims):
        raise DataError("model", f"its input shape {shape} leaves sizes other than the batch open")
    return np.random.default_rng(seed).uniform(-1, 1, dims).astype(np.float32)


def compare_with_tfjs(converted: Converted, model_json: Path) -> tuple[str, float | None]:
    """``(what it was checked against, max |ONNX - TF.js|)``; ``(why not, None)`` without TF.js."""
    import onnxruntime as ort

    missing = tfjs_missing()
    if missing:
        return f"not checked: {missing}", None
    x = check_input(converted)
    names = converted.tf_outputs if converted.format == "graph-model" else []
    expected = tfjs_outputs(model_json, x, names)
    session = ort.InferenceSession(converted.model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {converted.inputs[0][0]: x})
    if len(got) != len(expected):
        raise DataError(str(model_json), f"{len(got)} outputs converted, TensorFlow.js gives {len(expected)}")
    diff = 0.0
    for k, (a, e) in enumerate(zip(got, expected, strict=True)):
        if a.size != e.size:
            raise DataError(
                str(model_json), f"output {k}: shape {a.shape} converted, {e.shape} in TensorFlow.js"
            )
        diff = max(diff, float(np.abs(a.reshape(e.shape) - e).max()))
    version = json.loads((tfjs_modules() / "@tensorflow" / "tfjs" / "package.json").read_text())["version"]
    return f"TensorFlow.js {version} (CPU backend), {x.shape[0]} inputs uniform in [-1, 1]", diff


def as_expression_model(
    converted: Converted, labels: tuple[str, ...], mean: list[float], std: list[float], softmax: bool
):
    """The converted graph as a ferkit model: input ``pixels`` (batch, C, S, S) in [0, 1],
    ``(pixels - mean) / std`` and the move to NHWC inside, output ``probabilities``."""
    import onnx
    from onnx import TensorProto, helper

    (name, shape), *rest = converted.inputs
    if rest or len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] not in (1, 3):
        raise DataError(
            "model", f"input {shape}: a ferkit model takes one square image input (N, S, S, 1 or 3)"
        )
    size, channels = int(shape[1]), int(shape[3])
    model = onnx.ModelProto()
    model.CopyFrom(converted.model)
    g = model.graph
    b = _Builder("model")
    b._names |= {n.name for n in g.initializer} | {o for n in g.node for o in n.output} | {name}
    m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, np.float32).reshape(-1, 1, 1)
    if m.shape[0] not in (1, channels) or s.shape[0] not in (1, channels):
        raise DataError("model", f"mean/std: one value or {channels} (the input's channels)")
    centred = b.op("Sub", ["pixels", b.const(m, "pixels/mean")], "pixels/centred")
    scaled = b.op("Div", [centred, b.const(s, "pixels/std")], "pixels/scaled")
    first = helper.make_node("Transpose", [scaled], [name], perm=NCHW_TO_NHWC, name=b.name("node/to_nhwc"))
    logits = converted.outputs[0]
    probs = helper.make_node(
        "Softmax" if softmax else "Identity",
        [logits],
        ["probabilities"],
        name=b.name("node/probabilities"),
        **({"axis": -1} if softmax else {}),
    )
    nodes = [*b.nodes, first, *g.node, probs]
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(b.initializers)
    del g.input[:]
    g.input.append(
        helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", channels, size, size])
    )
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(labels)]))
    onnx.checker.check_model(model)
    return model, size, channels


def import_tfjs(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str | None = None,
    labels: tuple[str, ...] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    softmax: bool = False,
    check: bool = True,
) -> TfjsImport:
    """A TF.js model from ``source`` (a model.json, a folder, or an npm tarball; ``model``
    picks one by name where there are several) to ONNX at ``out``, checked against
    TensorFlow.js when it is installed (``check``).

    With ``labels`` it becomes a ferkit expression model (``ferkit predict --model OUT``): the
    graph takes [0, 1] pixels and computes ``(pixels - mean) / std`` itself (the range the
    network was trained on; e.g. mean 0.5, std 0.5 for [-1, 1]); ``softmax`` adds one where
    the network ends in logits. Without labels the graph is the network as it is (NHWC)."""
    from ferkit.card import ModelCard, compact_weights, save_onnx
    from ferkit.importers.npm import package_info, sha256_file, sha256_files, unpacked
    from ferkit.labels import canonical_emotion

    source, out = Path(source), Path(out)
    if not source.exists():
        raise DataError(str(source), "no such file or folder")
    if labels is not None:
        unknown = [name for name in labels if canonical_emotion(name) is None]
        if unknown:
            raise DataError("--labels", f"not an expression ferkit knows: {', '.join(unknown)}")

    def convert(model_json: Path, info: dict) -> TfjsImport:
        converted = convert_tfjs(model_json)
        reference, diff = (
            compare_with_tfjs(converted, model_json) if check else ("not checked (--no-check)", None)
        )
        info |= {"model": model_json.stem, **{k: str(v) for k, v in converted.metadata.items()}}
        if labels is None:
            import onnx

            from ferkit.utils import atomic_path

            proto = converted.model
            for key, value in (("source", json.dumps(info)), ("tfjs_reference", reference)):
                proto.metadata_props.add(key=key, value=value)
            compact_weights(proto)  # TF.js's uint8 or float16 weights stay that small
            with atomic_path(out) as tmp:
                onnx.save(proto, str(tmp))
        else:
            classes = _last_dim(converted)
            if classes is not None and len(labels) != classes:
                raise DataError("--labels", f"{len(labels)} labels for a network with {classes} outputs")
            proto, size, channels = as_expression_model(
                converted, labels, mean or [0.0], std or [1.0], softmax
            )
            card = ModelCard(
                labels=tuple(labels),
                input_size=size,
                color="gray" if channels == 1 else "rgb",
                architecture=f"tfjs:{model_json.stem}",
                normalization={
                    "mean": list(mean or [0.0]),
                    "std": list(std or [1.0]),
                    "applied_in_graph": True,
                },
                license=f"{info['license']} ({info['package']} {info['version']}: {info['license_text']})",
                extra={
                    "source": {
                        k: info[k] for k in ("package", "version", "model", "file", "sha256", "license")
                    }
                    | {k: info[k] for k in ("generatedBy", "convertedBy") if k in info},
                    "input_range": f"float32 pixels in [0, 1], shape (batch, {channels}, {size}, {size})",
                    "output": "probabilities" + (" (softmax added)" if softmax else ""),
                    "tfjs_reference": reference,
                    "parameters": int(sum(np.prod(t.dims) for t in proto.graph.initializer)),
                },
            )
            compact_weights(proto)  # after the parameters are counted
            save_onnx(proto, card, out)
        return TfjsImport(
            out,
            converted.format,
            converted.inputs,
            converted.outputs,
            converted.ops,
            info,
            reference,
            diff,
            labels is not None,
        )

    if source.is_file() and source.name.endswith((".tgz", ".tar.gz")):
        with unpacked(source, lambda name: name.endswith((".json", ".bin"))) as tmp:
            chosen = _pick(tmp, model, source)
            info = package_info(chosen.parent)
            info["sha256"], info["file"] = sha256_file(source), source.name
            return convert(chosen, info)
    chosen = source if source.is_file() else _pick(source, model, source)
    info = package_info(chosen.parent)
    shards = _shards(chosen)
    info["sha256"], info["file"] = sha256_files([chosen, *shards]), f"{chosen.name} + {len(shards)} shard(s)"
    return convert(chosen, info)


def _last_dim(converted: Converted) -> int | None:
    dims = converted.model.graph.output[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value) if dims and dims[-1].HasField("dim_value") else None
