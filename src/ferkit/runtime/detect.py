"""Face detectors behind one small interface, chosen by name (numpy + OpenCV only).

Usage::

    detector = create_detector("haar", min_neighbors=6)
    detections = detector.detect(image)      # image: uint8 grey (H, W) or RGB (H, W, 3)

Detectors:
- ``auto`` (default): ``blazeface``; ``haar`` only if BlazeFace's model files are missing.
- ``haar``: OpenCV's frontal-face cascade (ships with opencv-python-headless 4.x); works
  offline on any install. Knobs: ``scale_factor``, ``min_neighbors``, ``min_size``; eye
  centres from OpenCV's eye cascade become landmarks for optional alignment.
- ``hog``: dlib's HOG detector (``pip install "ferkit[detect]"``): more robust, ~30 ms at 640x480.
- ``blazeface``: MediaPipe BlazeFace on ONNX Runtime, shipped with ferkit
  (``ferkit.runtime.blazeface``): fast, finds small faces by tiling, 6 keypoints (eyes, nose,
  mouth, ears). Options: ``model`` (full/short), ``tiles`` (auto/always/never), ``min_score``.
- ``blazeface-short``: BlazeFace's short-range model, for faces near the camera (webcams,
  selfies): on such faces in 640x480 frames it finds more of them than ``blazeface`` in less
  than half the time (``bench/near_faces.py``); far and small faces it misses.
- ``none``: the input already is a face crop (like FER-2013 images): one box, the whole image.

Images larger than ``max_side`` are downscaled for detection and boxes mapped back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from ferkit.errors import FerkitError, UnknownNameError


@dataclass(frozen=True)
class Detection:
    box: tuple[int, int, int, int]  # x, y, width, height in the input image's pixels
    score: float
    landmarks: np.ndarray | None = None  # (K, 2) x, y; for haar: left eye, right eye (image left/right)
    # Found only by a look at part of the image (BlazeFace's tiles or close-up look), not by its
    # look at the whole: ``detect(..., small_faces=False)`` would likely miss it.
    tiled: bool = False


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...


_DETECTORS: dict[str, Callable[..., FaceDetector]] = {}


def register_detector(name: str):
    def wrap(factory):
        _DETECTORS[name] = factory
        return factory

    return wrap


# Detectors that ferkit.runtime.blazeface registers when it is first imported.
BLAZEFACE_DETECTORS = ("blazeface", "blazeface-short")


def list_detectors() -> list[str]:
    return sorted({*_DETECTORS, *BLAZEFACE_DETECTORS, "auto"})


def is_blazeface(name: str) -> bool:
    """Whether the detector called ``name`` is BlazeFace (``auto`` is, where its files are)."""
    return name == "auto" or name in BLAZEFACE_DETECTORS


def create_detector(name: str = "auto", **kwargs) -> FaceDetector:
    """A detector by name; ``auto`` is BlazeFace (Haar where its model files are missing)."""
    if name == "auto":
        try:
            return create_detector("blazeface", **kwargs)
        except FerkitError:
            return create_detector("haar", **{k: v for k, v in kwargs.items() if k == "min_size"})
    if name in BLAZEFACE_DETECTORS and name not in _DETECTORS:
        import ferkit.runtime.blazeface  # noqa: F401  (the detector plug-in registers itself)
    try:
        factory = _DETECTORS[name]
    except KeyError:
        raise UnknownNameError("face detector", name, list_detectors()) from None
    return factory(**kwargs)


def to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _downscale(gray: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    side = max(gray.shape[:2])
    if side <= max_side:
        return gray, 1.0
    scale = max_side / side
    small = cv2.resize(
        gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)), interpolation=cv2.INTER_AREA
    )
    return small, scale


def _cascade(name: str) -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FerkitError(
            f"OpenCV's {name} is missing ({path}); opencv-python-headless 4.x ships it (5.x does not)"
        )
    return cascade


@register_detector("haar")
class HaarDetector:
    """OpenCV's Viola-Jones frontal-face cascade; score = the cascade's level weight."""

    name = "haar"

    def __init__(
        self,
        scale_factor: float = 1.2,  # 1.1 finds a few more faces at 1.8x the time (67 vs 38 ms, 640x480)
        min_neighbors: int = 5,
        min_size: int = 30,
        max_side: int = 960,
        eyes: bool = True,
    ):
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self.max_side = max_side
        self.faces = _cascade("haarcascade_frontalface_default.xml")
        self.eyes = _cascade("haarcascade_eye.xml") if eyes else None

    def detect(self, image: np.ndarray) -> list[Detection]:
        gray = to_gray(image)
        small, scale = _downscale(gray, self.max_side)
        small = cv2.equalizeHist(small)
        min_size = max(8, int(self.min_size * scale))
        boxes, _, weights = self.faces.detectMultiScale3(
            small,
            self.scale_factor,
            self.min_neighbors,
            minSize=(min_size, min_size),
            outputRejectLevels=True,
        )
        out = []
        for (x, y, w, h), weight in zip(boxes, np.asarray(weights).reshape(-1), strict=True):
            box = tuple(int(round(v / scale)) for v in (x, y, w, h))
            out.append(Detection(box, float(weight), self._eyes(gray, box)))  # type: ignore[arg-type]
        out.sort(key=lambda d: -d.box[2] * d.box[3])
        return out

    def _eyes(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
        """Two eye centres in the upper half of the face, or None if not both are found."""
        if self.eyes is None:
            return None
        x, y, w, h = box
        roi = gray[y : y + h // 2, x : x + w]
        if roi.size == 0:
            return None
        found = self.eyes.detectMultiScale(roi, 1.1, 5, minSize=(max(4, w // 10), max(4, w // 10)))
        if len(found) < 2:
            return None
        found = sorted(found, key=lambda e: -e[2] * e[3])[:2]
        centres = sorted(((x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in found), key=lambda c: c[0])
        if abs(centres[1][0] - centres[0][0]) < w * 0.2:  # both on one eye
            return None
        return np.array(centres, np.float32)


@register_detector("none")
class WholeImage:
    """No detection: the image is one face crop."""

    name = "none"

    def __init__(self, **_: object):
        pass

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        return [Detection((0, 0, int(w), int(h)), 1.0, None)]


@register_detector("hog")
class HogDetector:
    """dlib's HOG + linear SVM frontal-face detector (``pip install "ferkit[detect]"``: dlib-bin).

    No model file to download; more robust than Haar to lighting, slower on big images.
    ``upsample`` > 0 finds smaller faces at 4x the cost per step. Score: the SVM margin.
    """

    name = "hog"

    def __init__(self, upsample: int = 0, threshold: float = 0.0, max_side: int = 960, min_size: int = 0):
        try:
            import dlib
        except ImportError as exc:
            raise FerkitError(
                "the 'hog' detector needs dlib: pip install \"ferkit[detect]\" (dlib-bin)"
            ) from exc
        self.detector = dlib.get_frontal_face_detector()
        self.upsample, self.threshold, self.max_side, self.min_size = upsample, threshold, max_side, min_size

    def detect(self, image: np.ndarray) -> list[Detection]:
        gray = to_gray(image)
        small, scale = _downscale(gray, self.max_side)
        rects, scores, _ = self.detector.run(small, self.upsample, self.threshold)
        out = []
        h, w = gray.shape[:2]
        for rect, score in zip(rects, scores, strict=True):
            x0, y0 = max(0, rect.left()), max(0, rect.top())
            x1, y1 = min(small.shape[1], rect.right()), min(small.shape[0], rect.bottom())
            box = tuple(int(round(v / scale)) for v in (x0, y0, x1 - x0, y1 - y0))
            if box[2] >= self.min_size:
                out.append(Detection(box, float(score)))  # type: ignore[arg-type]
        out.sort(key=lambda d: -d.box[2] * d.box[3])
        return out
