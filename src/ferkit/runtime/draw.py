"""Annotated pictures: face boxes, top label, and a probability bar per class.

Usage::

    annotated = annotate(image_rgb, faces)     # a new uint8 RGB image
    frame = annotate_tracked(image_rgb, faces, fps=24.8)   # + track ids and the rate
"""

from __future__ import annotations

import cv2
import numpy as np

from ferkit.runtime.recognize import Face

# One colour per canonical emotion (RGB), stable across models.
COLORS = {
    "angry": (220, 50, 47),
    "disgust": (133, 153, 0),
    "fear": (108, 113, 196),
    "happy": (255, 193, 7),
    "sad": (38, 139, 210),
    "surprise": (211, 54, 130),
    "neutral": (147, 161, 161),
    "contempt": (203, 75, 22),
}


def _color(label: str) -> tuple[int, int, int]:
    from ferkit.labels import canonical_emotion

    return COLORS.get(canonical_emotion(label) or label, (42, 161, 152))


def annotate(image: np.ndarray, faces: list[Face], bars: bool = True) -> np.ndarray:
    """Draw boxes, ``label 87%`` and probability bars beside each face."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    scale = max(0.4, min(out.shape[:2]) / 900)
    thick = max(1, int(round(2 * scale)))
    for face in faces:
        x, y, w, h = face.box
        color = _color(face.label)
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        text = f"{face.label} {face.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale * 1.5, thick)
        ty = max(th + base, y - 4)
        cv2.rectangle(out, (x, ty - th - base), (x + tw + 4, ty + base // 2), color, -1)
        cv2.putText(
            out,
            text,
            (x + 2, ty - base // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6 * scale * 1.5,
            (0, 0, 0),
            thick,
            cv2.LINE_AA,
        )
        if bars:
            _bars(out, face, x + w + 6, y, max(60, w // 2), scale)
    return out


def _bars(img: np.ndarray, face: Face, x: int, y: int, width: int, scale: float) -> None:
    row = max(10, int(14 * scale * 1.3))
    if x + width + 70 * scale > img.shape[1]:  # no room on the right: draw inside the box
        x = face.box[0] + 2
        y = face.box[1] + face.box[3] + 4
    text_w = int(110 * scale * 1.3)
    x1 = min(img.shape[1], x + width + text_w)
    y1 = min(img.shape[0], y + row * len(face.probs))
    if x1 > x and y1 > y:  # dark translucent panel so bars and text read on any background
        panel = img[y:y1, x:x1]
        panel[:] = (panel.astype(np.float32) * 0.35).astype(np.uint8)
    for i, (label, p) in enumerate(sorted(face.probs.items(), key=lambda kv: -kv[1])):
        yy = y + i * row
        if yy + row > img.shape[0]:
            break
        cv2.rectangle(img, (x, yy + 2), (x + int(width * p), yy + row - 2), _color(label), -1)
        cv2.putText(
            img,
            f"{label} {p:.0%}",
            (x + width + 3, yy + row - 3),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.35 * scale * 1.3,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )


def annotate_tracked(image: np.ndarray, faces: list[Face], fps: float | None = None) -> np.ndarray:
    """:func:`annotate` plus each face's track id under its box and, given, the frame rate."""
    drawn = annotate(image, faces)
    for f in faces:
        if f.id is not None:
            org = (f.box[0], f.box[1] + f.box[3] + 18)
            cv2.putText(
                drawn, f"#{f.id}", org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA
            )
    if fps is not None:
        cv2.putText(
            drawn, f"{fps:.1f} FPS", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA
        )
    return drawn
