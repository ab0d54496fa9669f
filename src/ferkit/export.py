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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferkit.card import ModelCard
from ferkit.train.checkpoint import card_from_checkpoint, load_checkpoint, model_from_checkpoint
from ferkit.utils import atomic_path

OPSET = 18


class ProbabilityModel(nn.Module):
    """[0, 1] pixels -> normalise -> network -> softmax."""

    def __init__(self, model: nn.Module, mean: float, std: float):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model((x - self.mean) / self.std), dim=1)


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
    import onnx
    import onnxruntime as ort

    ckpt = load_checkpoint(source)
    model = model_from_checkpoint(ckpt).float().eval()
    pre = ckpt["preprocessing"]
    wrapped = ProbabilityModel(model, pre["mean"], pre["std"]).eval()
    chans = 1 if pre["color"] == "gray" else 3
    size = int(pre["input_size"])
    example = torch.rand(2, chans, size, size)
    out = Path(out)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    if not os.environ.get("FERKIT_VERBOSE"):  # "torchvision is not installed. Skipping ..." lines
        exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapped,
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
    proto = program.model_proto
    proto.doc_string = f"ferkit {ckpt['model_name']} facial expression classifier"
    del proto.metadata_props[:]
    card = card_from_checkpoint(ckpt, metrics, model)
    for key, value in card.to_metadata().items():
        proto.metadata_props.add(key=key, value=value)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    card.write_json(out.with_suffix(".json"))  # the same card, readable beside the file
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
    int8_accuracy: float
    split: str


def quantize_int8(
    fp32_path: str | os.PathLike,
    out: str | os.PathLike,
    calibration: np.ndarray,
    eval_images: np.ndarray,
    eval_labels: np.ndarray,
    split: str = "PublicTest",
) -> QuantizeReport:
    """Static int8 quantisation (QDQ, per-channel weights) with ONNX Runtime's tools.

    ``calibration``: uint8 faces (N, H, W) from the training split to fit activation ranges.
    The card travels along; accuracy before and after is measured on ``eval_images``.
    """
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
        )
        model = onnx.load(str(tmp))
        del model.metadata_props[:]
        for entry in onnx.load(str(fp32_path)).metadata_props:
            model.metadata_props.add().CopyFrom(entry)
        model.metadata_props.add(key="quantization", value="int8 static QDQ, per-channel weights")
        onnx.save(model, str(tmp))
    int8 = OnnxClassifier(out)
    acc_fp32 = float((fp32.predict_proba(eval_images).argmax(1) == eval_labels).mean())
    acc_int8 = float((int8.predict_proba(eval_images).argmax(1) == eval_labels).mean())
    return QuantizeReport(out, out.stat().st_size, acc_fp32, acc_int8, split)
