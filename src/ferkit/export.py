"""Export a trained model to ONNX with its labels, preprocessing, recipe and metrics inside.

Usage::

    report = export_onnx("~/.cache/ferkit/runs/vgg_fer-.../", "vgg_fer.onnx")
    report.max_abs_diff            # ONNX Runtime vs torch on real-looking inputs

The graph takes float32 pixels in [0, 1], shape (batch, C, S, S) with a dynamic batch
axis, and returns class probabilities: normalisation and softmax are inside, so callers
need only numpy. ``metadata_props`` carry the model card (``ferkit.card.ModelCard``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferkit.card import INT4_WEIGHTS, ModelCard, save_onnx
from ferkit.train.checkpoint import card_from_checkpoint, load_checkpoint, model_from_checkpoint
from ferkit.utils import atomic_path

OPSET = 18


class ProbabilityModel(nn.Module):
    """[0, 1] pixels -> normalise -> network -> softmax. ``mean`` is one number, or one per
    channel (an imported network's mean RGB)."""

    def __init__(self, model: nn.Module, mean: float | Sequence[float], std: float):
        super().__init__()
        self.model = model
        if isinstance(mean, (int, float)):
            self.register_buffer("mean", torch.tensor(float(mean)))
        else:
            self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model((x - self.mean) / self.std), dim=1)


def onnx_program(module: nn.Module, example: torch.Tensor):
    """``torch.onnx.export`` (dynamo) of a pixels -> probabilities module with a dynamic batch,
    the exporter's log lines and warnings kept quiet unless FERKIT_VERBOSE."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    if not os.environ.get("FERKIT_VERBOSE"):  # "torchvision is not installed. Skipping ..." lines
        exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=["pixels"],
                output_names=["probabilities"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                opset_version=OPSET,
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)


@dataclass
class ExportReport:
    path: Path
    max_abs_diff: float
    size_bytes: int
    card: ModelCard


def export_onnx(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    metrics: dict[str, Any] | None = None,
    check_batch: np.ndarray | None = None,
) -> ExportReport:
    """Export a run folder / checkpoint to ONNX and verify it against torch."""
    import onnxruntime as ort

    ckpt = load_checkpoint(source)
    model = model_from_checkpoint(ckpt).float().eval()
    pre = ckpt["preprocessing"]
    wrapped = ProbabilityModel(model, pre["mean"], pre["std"]).eval()
    chans = 1 if pre["color"] == "gray" else 3
    size = int(pre["input_size"])
    example = torch.rand(2, chans, size, size)
    out = Path(out)
    program = onnx_program(wrapped, example)
    proto = program.model_proto
    proto.doc_string = f"ferkit {ckpt['model_name']} facial expression classifier"
    card = card_from_checkpoint(ckpt, metrics, model)
    save_onnx(proto, card, out)
    # Verify: same inputs through torch and ONNX Runtime.
    if check_batch is None:
        check_batch = np.random.default_rng(0).random((16, chans, size, size), dtype=np.float32)
    with torch.no_grad():
        expected = wrapped(torch.from_numpy(check_batch)).numpy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixels": check_batch})[0]
    return ExportReport(out, float(np.abs(got - expected).max()), out.stat().st_size, card)


@dataclass
class QuantizeReport:
    path: Path
    size_bytes: int
    fp32_accuracy: float
    quantized_accuracy: float
    split: str


def quantize_int8(
    fp32_path: str | os.PathLike,
    out: str | os.PathLike,
    calibration: np.ndarray,
    eval_images: np.ndarray,
    eval_labels: np.ndarray,
    split: str = "PublicTest",
    *,
    weight_bits: int = 8,
) -> QuantizeReport:
    """Static int8 quantisation (QDQ, per-channel weights) with ONNX Runtime's tools.

    ``calibration``: uint8 faces (N, H, W) from the training split to fit activation ranges.
    The card travels along; accuracy before and after is measured on ``eval_images``.

    ``weight_bits=4``: weights of ``INT4_MIN_SIZE`` values or more are rounded to 15 levels
    a channel (``int4_weights``) and stored as int4, about half the file; the biases are
    quantised afterwards, at the int4 weights' scales (``int32_biases``). The computation is still
    int8: ``OnnxClassifier`` widens the int4 weights to int8 when it loads the file, so ONNX
    Runtime runs its int8 kernels (``ferplus``: 3.87 MB instead of 7.14, FER+ accuracy within
    0.1 pt of int8).
    """
    if weight_bits not in (4, 8):
        raise ValueError(f"weight_bits must be 8 or 4, not {weight_bits}")
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ferkit.runtime.classifier import OnnxClassifier

    fp32 = OnnxClassifier(fp32_path)
    batches = [fp32.prepare(calibration[i : i + 64]) for i in range(0, len(calibration), 64)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{fp32.input_name: b} for b in batches])

        def get_next(self):
            return next(self.items, None)

    out = Path(out)
    with atomic_path(out) as tmp, tempfile.TemporaryDirectory() as scratch:
        pre = Path(scratch, "pre.onnx")  # shapes inferred, graph optimised: what quantisation wants
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        # the softmax stays float: quantised, probabilities come in steps of 1/255 and rows
        # sum to ~0.99 (confidence thresholds and ensembles read them)
        softmax = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Softmax"]
        quantize_static(
            str(pre),
            str(tmp),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=softmax,
            extra_options={"QuantizeBias": weight_bits == 8},
        )
        model = onnx.load(str(tmp))
        how = "int8 static QDQ, per-channel weights"
        if saturation_safe_weights(model):
            how += f" ({SAFE_WEIGHT_LEVELS})"
        if weight_bits == 4:
            _int4_weights_in_place(model)
            int32_biases(model)
            how = f"int8 static QDQ, per-channel {INT4_WEIGHTS} (stored 4-bit, run as int8)"
        del model.metadata_props[:]
        for entry in onnx.load(str(fp32_path)).metadata_props:
            model.metadata_props.add().CopyFrom(entry)
        model.metadata_props.add(key="quantization", value=how)
        onnx.save(model, str(tmp))
    int8 = OnnxClassifier(out)
    acc_fp32 = float((fp32.predict_proba(eval_images).argmax(1) == eval_labels).mean())
    acc_int8 = float((int8.predict_proba(eval_images).argmax(1) == eval_labels).mean())
    return QuantizeReport(out, out.stat().st_size, acc_fp32, acc_int8, split)


def rewrite_card(
    path: str | os.PathLike,
    update: Callable[[ModelCard], ModelCard],
    json_path: str | os.PathLike | None = None,
) -> ModelCard:
    """Replace the card in an ONNX file's metadata by ``update(card read from that metadata)``
    (the file is read once and replaced atomically) and write it as JSON beside the file
    (``json_path``, default ``path`` with ``.json``): e.g. a quantised model's own measured
    metrics in place of the fp32 ones it was copied from. Returns the new card."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    card = update(ModelCard.from_onnx(model, str(path)))
    save_onnx(model, card, path, json_path)
    return card


INT4_OPSET = 21  # DequantizeLinear with int4 inputs
# smaller weights (first convolutions, last layer) stay int8: chosen on ferplus, where all
# weights in int4 cost 0.85 pt on FER+ PrivateTest and this rule +0.16 (CHANGELOG.md, 0.1.0)
INT4_MIN_SIZE = 300_000
INT4_CLIP_RATIOS = np.linspace(1.0, 0.5, 26)  # candidate clipping, ratio of the largest weight


def int4_weights(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int4 for one weight tensor, output channels first: ``(q, scale)`` with ``q``
    in [-7, 7] (int8 array) and one float scale per output channel, ``weight ~ q * scale``.

    Each channel's scale is the one of ``INT4_CLIP_RATIOS`` x its largest magnitude / 7 with
    the least squared error: with 15 levels, clipping a few outliers buys finer steps for all
    the other weights (ratio 1, no clipping, is among the candidates, so never worse)."""
    w = np.asarray(weight, np.float32)
    flat = w.reshape(len(w), -1)
    amax = np.abs(flat).max(axis=1)
    best_scale = np.where(amax > 0, amax / 7, 1.0).astype(np.float32)
    best_err = np.full(len(w), np.inf, np.float32)
    for ratio in INT4_CLIP_RATIOS:
        scale = np.where(amax > 0, amax * ratio / 7, 1.0).astype(np.float32)[:, None]
        err = ((np.clip(np.rint(flat / scale), -7, 7) * scale - flat) ** 2).sum(axis=1)
        better = err < best_err
        best_err[better], best_scale[better] = err[better], scale[better, 0]
    q = np.clip(np.rint(w / best_scale.reshape(-1, *[1] * (w.ndim - 1))), -7, 7).astype(np.int8)
    return q, best_scale


def _int4_weights_in_place(model) -> None:
    """Each large int8 weight of a QDQ graph (``DequantizeLinear`` of an int8 initializer,
    one scale per output channel) re-rounded to int4 and stored as an INT4 initializer."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        source = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if source is None or source.data_type != TensorProto.INT8:
            continue
        if np.prod(source.dims) < INT4_MIN_SIZE:
            continue
        q8 = numpy_helper.to_array(source).astype(np.float32)
        scale = numpy_helper.to_array(inits[node.input[1]])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if axis != 0 or scale.shape != (len(q8),):  # not one scale per output channel (MatMul): int8
            continue
        q4, scale4 = int4_weights(q8 * scale.reshape(-1, *[1] * (q8.ndim - 1)))
        source.CopyFrom(_int4_tensor(node.input[0], q4))
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(scale4, node.input[1]))
        if len(node.input) > 2 and node.input[2] in inits:  # the zero point: 0, as int4
            inits[node.input[2]].CopyFrom(_int4_tensor(node.input[2], np.zeros(len(q8), np.int8)))
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, INT4_OPSET)


def int32_biases(model) -> int:
    """Store, in place, each float bias of a quantised layer (a Conv or Gemm whose input and
    weight are dequantised int8) as int32 at scale input scale x weight scale, rounded as
    ONNX Runtime rounds it when it fuses the layer into an integer kernel. Then the reference
    numerics (no graph fusion) add the same bias as the fused kernel: with float biases the
    two disagreed on 0.75% of PrivateTest answers (``accurate``), with int32 ones on 0.03%,
    and the fused session's outputs do not change. Returns the number of biases changed."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    dequantise = []
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3 or node.input[2] not in inits:
            continue
        x, w = producer.get(node.input[0]), producer.get(node.input[1])
        if x is None or w is None or not x.op_type == w.op_type == "DequantizeLinear":
            continue
        name = node.input[2]
        bias = numpy_helper.to_array(inits[name]).astype(np.float32)
        scale = numpy_helper.to_array(inits[x.input[1]]).astype(np.float32)
        scale = (scale * numpy_helper.to_array(inits[w.input[1]]).astype(np.float32)) * np.ones_like(bias)
        q = np.rint(bias / scale).astype(np.int32)
        graph.initializer.remove(inits[name])
        names = [f"{name}_quantized", f"{name}_scale"]  # no zero point: 0 is the default
        for tensor, value in zip(names, (q, scale), strict=True):
            graph.initializer.append(numpy_helper.from_array(value, tensor))
        dequantise.append(
            helper.make_node("DequantizeLinear", names, [name], name=f"{name}_DequantizeLinear", axis=0)
        )
    for i, node in enumerate(dequantise):  # initializers' consumers first keeps the graph sorted
        graph.node.insert(i, node)
    return len(dequantise)


def _int4_tensor(name: str, q: np.ndarray):
    """An ONNX INT4 initializer: two values a byte, the first in the low nibble."""
    from onnx import TensorProto, helper

    nibbles = (q.reshape(-1).astype(np.int16) & 0xF).astype(np.uint8)
    if len(nibbles) % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    packed = nibbles[0::2] | (nibbles[1::2] << 4)
    return helper.make_tensor(name, TensorProto.INT4, q.shape, packed.tobytes(), raw=True)


# ONNX Runtime's u8s8 kernels on CPUs without VNNI (AVX2, AVX-512 without VNNI) sum pairs of
# uint8 x int8 products in int16 (VPMADDUBSW), which saturates: with weights up to 127 the
# fused session answered 13% of PrivateTest faces differently on an AVX2 CPU. Weights in
# [-64, 63] keep every pair within int16 (255 x 64 x 2 = 32,640), so each CPU computes the
# same integer sums as the reference numerics; the u8s8 kernels (and their speed) stay.
SAFE_WEIGHT_MAX = 64
SAFE_WEIGHT_LEVELS = "7-bit weights in [-64, 63]: no int16 saturation without VNNI"


def saturating_weights(model) -> list[str]:
    """Names of int8 weights of a QDQ graph that can saturate u8s8 kernels without VNNI."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        source = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if (
            source is not None
            and source.data_type == TensorProto.INT8
            and np.abs(numpy_helper.to_array(source).astype(np.int16)).max() > SAFE_WEIGHT_MAX
        ):
            found.append(source.name)
    return found


def saturation_safe_weights(model) -> int:
    """Re-round, in place, each int8 weight of a QDQ graph that exceeds [-64, 63] to 7 bits
    (one scale per output channel, or one per tensor), and each int32 bias that goes with
    it (bias scale = input scale x weight scale, as ONNX Runtime's fused kernels expect)
    so the bias keeps its value. Int4-stored weights (|q| <= 7) are already safe. Returns
    the number of weights changed."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    unsafe = set(saturating_weights(model))
    changed = 0
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in unsafe:
            continue
        source, scale_init = inits[node.input[0]], inits[node.input[1]]
        q = numpy_helper.to_array(source).astype(np.float64)
        scale = numpy_helper.to_array(scale_init).astype(np.float64)
        if scale.ndim == 0:
            ratio = np.float64(max(np.abs(q).max(), 1) / (SAFE_WEIGHT_MAX - 1))
            per_row = ratio
        else:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if axis != 0 or scale.shape != (len(q),):
                raise ValueError(f"{source.name}: scales along axis {axis} are not handled")
            ratio = np.maximum(np.abs(q).reshape(len(q), -1).max(axis=1), 1) / (SAFE_WEIGHT_MAX - 1)
            per_row = ratio.reshape(-1, *[1] * (q.ndim - 1))
        q7 = np.clip(np.rint(q / per_row), -SAFE_WEIGHT_MAX, SAFE_WEIGHT_MAX - 1).astype(np.int8)
        source.CopyFrom(numpy_helper.from_array(q7, source.name))
        scale_init.CopyFrom(numpy_helper.from_array((scale * ratio).astype(np.float32), scale_init.name))
        for user in consumers.get(node.output[0], []):
            bias_dq = producer.get(user.input[2]) if len(user.input) > 2 else None
            if bias_dq is None or bias_dq.op_type != "DequantizeLinear":
                continue
            bias, bias_scale = inits.get(bias_dq.input[0]), inits.get(bias_dq.input[1])
            if bias is None or bias_scale is None or bias.data_type != TensorProto.INT32:
                continue
            old_scale = numpy_helper.to_array(bias_scale).astype(np.float64)
            new_scale = old_scale * ratio
            value = numpy_helper.to_array(bias).astype(np.float64) * old_scale
            bias.CopyFrom(numpy_helper.from_array(np.rint(value / new_scale).astype(np.int32), bias.name))
            bias_scale.CopyFrom(numpy_helper.from_array(new_scale.astype(np.float32), bias_scale.name))
        changed += 1
    return changed
