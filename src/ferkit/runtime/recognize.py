"""Face detection + expression classification on images: typed results, batched inference.

Usage::

    from ferkit.runtime.recognize import Recognizer
    rec = Recognizer("model.onnx")              # detector "auto", mirror TTA (tta="none" to skip)
    faces = rec.recognize(image)              # list[Face]; image uint8 RGB or grey
    faces[0].label, faces[0].probs["happy"]
    per_image = rec.recognize_batch(images)   # every face of every image in one model call

Needs numpy, OpenCV and ONNX Runtime only; importing it never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ferkit.errors import UnknownNameError
from ferkit.framing import CROP_MARGIN, DETECTOR_MARGIN, frame_eyes, frame_face
from ferkit.imageio import to_rgb
from ferkit.runtime.classifier import EnsembleClassifier, OnnxClassifier, load_model
from ferkit.runtime.detect import Detection, FaceDetector, create_detector, is_blazeface, to_gray
from ferkit.runtime.tta import check_tta, predict_tta


@dataclass(frozen=True)
class Face:
    """One recognised face: where it is, how sure the detector is, and the expression.

    In video, faces are tracked: ``id`` names the track, ``detected`` is False on frames where
    the tracker predicted the box, and ``probs`` are smoothed over time.
    """

    box: tuple[int, int, int, int]  # x, y, width, height
    score: float
    probs: dict[str, float]
    label: str
    landmarks: np.ndarray | None = field(default=None, repr=False)
    id: int | None = None
    detected: bool = True

    @property
    def confidence(self) -> float:
        return self.probs[self.label]

    def to_dict(self, digits: int | None = None) -> dict:
        """The face as a JSON record (the API, JSON Lines); ``digits`` rounds the numbers."""
        r = (lambda v: round(float(v), digits)) if digits is not None else float
        out: dict = {"box": [int(v) for v in self.box], "score": r(self.score), "label": self.label}
        out["probs"] = {k: r(v) for k, v in self.probs.items()}
        if self.id is not None:
            out.update(id=self.id, detected=self.detected)
        if self.landmarks is not None:
            out["landmarks"] = self.landmarks.round(1).tolist()
        return out

    def row(self, labels: Sequence[str]) -> dict:
        """The face as one flat table row (CSV, Parquet): box, score, label, one column per class."""
        x, y, w, h = (int(v) for v in self.box)
        out: dict = {"x": x, "y": y, "w": w, "h": h, "score": float(self.score), "label": self.label}
        if self.id is not None:
            out.update(id=self.id, detected=int(self.detected))
        out.update({name: float(self.probs[name]) for name in labels})
        return out


ALIGN_MODES = ("none", "level", "eyes")


def check_align(align: bool | str | None) -> str:
    """``none``, ``level`` (eyes rotated level) or ``eyes`` (eyes where FER-2013's sit); ``True``
    and ``False`` (the older flag) mean ``level`` and ``none``."""
    if align is None or align is False:
        return "none"
    if align is True:
        return "level"
    if align not in ALIGN_MODES:
        raise UnknownNameError("alignment", str(align), ALIGN_MODES)
    return str(align)


def crop_face(
    image: np.ndarray,
    detection: Detection,
    size: int,
    margin: float = DETECTOR_MARGIN,
    align: bool | str = False,
) -> np.ndarray:
    """Grey ``size``x``size`` model input for a detection, framed by ``ferkit.framing``.

    ``margin`` widens the box on every side (a fraction of its side). With two eye landmarks,
    ``align=True`` (or ``"level"``) rotates the face so the eyes are level; ``"eyes"`` also
    scales and shifts it so the eyes sit where FER-2013's do (``frame_eyes``).
    """
    align = check_align(align)
    has_eyes = detection.landmarks is not None and len(detection.landmarks) >= 2
    if align == "eyes" and has_eyes:
        left, right = detection.landmarks[:2]
        return frame_eyes(to_gray(image), tuple(left), tuple(right), size)
    angle = 0.0
    if align == "level" and has_eyes:
        (lx, ly), (rx, ry) = detection.landmarks[:2]
        angle = float(np.degrees(np.arctan2(ry - ly, rx - lx)))
    return frame_face(to_gray(image), detection.box, size, margin, angle)


def make_detector(name: str, min_face: int = 20, **detector_args) -> FaceDetector:
    """A detector by name, told the smallest face side where it takes one (as ``Recognizer``)."""
    if name in ("haar", "hog") or is_blazeface(name):
        detector_args.setdefault("min_size", min_face)
    return create_detector(name, **detector_args)


class Recognizer:
    """A classifier (ONNX) and a face detector, owned by the caller (no global cache)."""

    def __init__(
        self,
        model: str | os.PathLike | OnnxClassifier | EnsembleClassifier = "default",
        detector: str | FaceDetector = "auto",
        *,
        margin: float | None = None,
        align: bool | str = "none",
        tta: str = "flip",
        min_face: int = 20,
        threads: int | None = None,
        **detector_args,
    ):
        check_tta(tta)
        align = check_align(align)
        # What replicas() needs to build more of these (names, not loaded objects, make copies).
        self._recipe = dict(
            model=model, detector=detector, margin=margin, align=align, tta=tta, min_face=min_face
        )
        self._detector_args = {k: v for k, v in detector_args.items() if k != "threads"}
        # A name or path is loaded here; anything else is a loaded model (load_model's result).
        self.classifier = model if hasattr(model, "predict_proba") else load_model(model, threads=threads)
        if isinstance(detector, str):
            if threads is not None and is_blazeface(detector):  # its sessions too
                detector_args.setdefault("threads", threads)
            detector = make_detector(detector, min_face, **detector_args)
        self.detector = detector
        if margin is None:  # ready-made crops (detector "none") are framed as dataset readers do
            margin = CROP_MARGIN if getattr(detector, "name", "") == "none" else DETECTOR_MARGIN
        self.margin, self.align, self.tta = margin, check_align(align), tta

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels

    def replicas(self, n: int, threads: int = 1) -> list[Recognizer]:
        """``n`` recognizers with these settings, one for each of ``n`` threads working at once
        (``predict_files(workers=n)``), each with its own detector (detectors keep per-call
        state) and model sessions of ``threads`` threads.

        On small models, several images at once on one thread each beat one image at a time on
        every core: a 640x480 frame's detection and classification use little of a second core.
        A recognizer built around a detector object cannot be copied: ``[self]`` comes back.
        A loaded model object is shared (ONNX Runtime sessions run calls from many threads).
        """
        recipe = self._recipe
        if n <= 1 or not isinstance(recipe["detector"], str):
            return [self]
        return [Recognizer(**recipe, threads=threads, **self._detector_args) for _ in range(n)]

    def detector_copies(self, n: int, threads: int = 1) -> list[FaceDetector]:
        """``n`` detectors like this one's, ``threads`` threads each, for ``n`` threads detecting
        at once (``[self.detector]`` when it was given as an object, which cannot be copied)."""
        name = self._recipe["detector"]
        if n <= 1 or not isinstance(name, str):
            return [self.detector]
        args = dict(self._detector_args)
        if is_blazeface(name):
            args.setdefault("threads", threads)
        return [make_detector(name, self._recipe["min_face"], **args) for _ in range(n)]

    def recognize(self, image: object) -> list[Face]:
        """Faces in one image: a path, encoded bytes, a PIL image or an array (see ``to_rgb``)."""
        return self.recognize_batch([image])[0]

    __call__ = recognize

    def classify(self, faces: list[tuple[np.ndarray, Detection]]) -> np.ndarray:
        """Probabilities (N, K) for (image, detection) pairs: crop, TTA, one batched model call."""
        if not faces:
            return np.zeros((0, len(self.labels)), np.float32)
        size = self.classifier.input_size
        crops = np.stack([crop_face(img, d, size, self.margin, self.align) for img, d in faces])
        return predict_tta(self.classifier, crops, self.tta)

    def recognize_batch(self, images: list) -> list[list[Face]]:
        """Detect in every image, then classify all faces in one batched model call."""
        images = [to_rgb(img, f"image {i}") for i, img in enumerate(images)]
        detections = [self.detector.detect(img) for img in images]
        probs = self.classify([(img, d) for img, dets in zip(images, detections, strict=True) for d in dets])
        out, k = [], 0
        for dets in detections:
            faces = []
            for d in dets:
                p = probs[k]
                k += 1
                faces.append(
                    Face(
                        d.box,
                        d.score,
                        {n: float(v) for n, v in zip(self.labels, p, strict=True)},
                        self.labels[int(p.argmax())],
                        d.landmarks,
                    )
                )
            out.append(faces)
        return out
