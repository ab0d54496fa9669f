"""The pieces every TF.js -> ONNX translation is made of: the graph under construction
(:class:`GraphBuilder`, with TensorFlow's NHWC ops on top of ONNX's NCHW ones), the result
(:class:`Converted`), and the op tables the graph and layers readers share.

Usage::

    b = GraphBuilder("model.json")                     # the source, named in every error
    y = b.conv(x, kernel_hwio, bias, "conv0", padding="SAME")
    model, names = b.finish([("input", [None, 48, 48, 1])], [(y, "logits")])
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


class GraphBuilder:
    """An ONNX graph under construction: nodes, initializers, unique names."""

    def __init__(self, source: str):
        self.source = source
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = set()

    def reserve(self, names) -> None:
        """Names already taken in a graph this builder adds to."""
        self._names |= set(names)

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
        if kind in UNARY_OPS:
            return self.op(UNARY_OPS[kind], [x], hint)
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
UNARY_OPS = {
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
BINARY_OPS = {
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
REDUCE_OPS = {
    "Mean": "ReduceMean",
    "Sum": "ReduceSum",
    "Max": "ReduceMax",
    "Min": "ReduceMin",
    "Prod": "ReduceProd",
}


def fold_batch_norm(scale, offset, mean, var, eps) -> tuple[np.ndarray, np.ndarray]:
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


def tfjs_meta(data: dict) -> dict[str, Any]:
    return {k: data[k] for k in ("generatedBy", "convertedBy", "format") if k in data}
