"""TF.js graph models (``"format": "graph-model"``, from ``tensorflowjs_converter``) as ONNX:
the GraphDef's nodes translated one by one, from the outputs back (``ferkit.importers.tfjs_onnx``).

Usage::

    converted = graph_model("human/models/emotion.json", data, read_tfjs_weights(path))
"""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

import numpy as np

from ferkit.errors import DataError
from ferkit.importers.tfjs_build import (
    BINARY_OPS,
    REDUCE_OPS,
    UNARY_OPS,
    Converted,
    GraphBuilder,
    fold_batch_norm,
    tfjs_meta,
)


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


def graph_model(source: str, data: dict, weights: dict[str, np.ndarray]) -> Converted:

    topology = data["modelTopology"]
    nodes = {n["name"]: n for n in topology.get("node", [])}
    if topology.get("library", {}).get("function"):
        raise DataError(source, "graph functions (control flow) are not supported")
    b = GraphBuilder(source)
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
    return Converted(model, "graph-model", graph_inputs, outputs, dict(ops), tfjs_meta(data), wanted)


def _fused_activation(b: GraphBuilder, y: str, rest: list[str], args: list, attr: dict, name: str) -> str:
    """The activation a fused op ends with, if any: PReLU takes its alpha as the last argument,
    LeakyRelu from the ``leakyrelu_alpha`` attribute."""
    if not rest:
        return y
    alpha = args[-1] if rest[0] == "Prelu" else _attr_scalar(attr, "leakyrelu_alpha", 0.2)
    return b.activation(y, rest[0], f"{name}/act", alpha)


def _graph_node(b: GraphBuilder, node: dict, tensor, const_of) -> str:
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
            s, bias = fold_batch_norm(*args[:4], _attr_scalar(attr, "epsilon", 1e-3))
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
        s, shift = fold_batch_norm(*stats, _attr_scalar(attr, "epsilon", 1e-3))
        return b.scale_shift(tensor(refs[0]), s, shift, name)
    if op in BINARY_OPS:
        return b.op(BINARY_OPS[op], [tensor(refs[0]), tensor(refs[1])], name)
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
    if op in ("Relu6", "Softmax") or op in UNARY_OPS:
        return b.activation(tensor(refs[0]), op, name)
    if op == "LogSoftmax":
        return b.op("LogSoftmax", [tensor(refs[0])], name, axis=-1)
    if op in REDUCE_OPS:
        axes = np.asarray(const_of(refs[1], "axes", node)).reshape(-1)
        keep = int(bool(_attr_scalar(attr, "keep_dims", False)))
        return b.op(REDUCE_OPS[op], [tensor(refs[0]), b.ints(axes, f"{name}/axes")], name, keepdims=keep)
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
