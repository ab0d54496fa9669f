"""Annotated pictures: face boxes, top label, and a probability bar per class.

Usage::

    annotated = annotate(image_rgb, faces)     # a new uint8 RGB image
    annotated = annotate(image_rgb, faces, style="label")   # or "box"; "panel" is the default
    frame = annotate_tracked(image_rgb, faces, fps=24.8)   # + track ids and the rate
"""

from __future__ import annotations

from dataclasses import dataclass

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


STYLES = ("panel", "label", "box")
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Placement:
    """Where one face's annotation goes (x, y, width, height rectangles, in pixels)."""

    face: Face
    label: tuple[int, int, int, int] | None  # the "happy 87%" tag
    panel: tuple[int, int, int, int] | None  # the class bars, where there was room
    font: float  # the tag's font scale
    baseline: int  # the tag text's baseline y
    text: str = ""  # the tag: "happy 87%", or "hap" where the whole one would cover a neighbour


def layout(faces: list[Face], shape: tuple[int, ...], style: str = "panel") -> list[Placement]:
    """Each face's label and panel: sized by the face, inside the image, covering no other
    face and no other label or panel (a panel that does not fit is left out)."""
    if style not in STYLES:
        raise ValueError(f"unknown annotation style {style!r}; choose {', '.join(STYLES)}")
    height, width = shape[:2]
    taken = [_grow(f.box, 2) for f in faces]  # faces are never covered
    out = []
    for face in sorted(faces, key=lambda f: -f.box[2] * f.box[3]):  # big faces choose first
        x, y, w, h = face.box
        if style == "box":
            out.append(Placement(face, None, None, 0.0, 0))
            continue
        font = float(np.clip(h / 150, 0.35, 1.2))  # text ~ a sixth of the face's height
        label, text, ty = _label_spot(face, font, (height, width), taken)
        panel = None
        if style == "panel":
            pw, ph = _panel_size(face)[:2]
            for px, py in ((x + w + 6, y), (x - pw - 6, y), (x, y + h + 6)):  # right, left, below
                rect = (px, py, pw, ph)
                inside = px >= 0 and py >= 0 and px + pw <= width and py + ph <= height
                if inside and not any(_overlaps(rect, t) for t in [*taken, *([label] if label else [])]):
                    panel = rect
                    break
        taken += [r for r in (label, panel) if r is not None]
        out.append(Placement(face, label, panel, font, ty, text))
    return out


def annotate(image: np.ndarray, faces: list[Face], style: str = "panel") -> np.ndarray:
    """Draw each face: ``box`` (its box), ``label`` (box and ``happy 87%``), or ``panel``
    (default: label, plus a bar per class beside the face wherever there is room).

    Everything is sized by the face, not the image: a 30-px face in a crowd gets a small
    label, a close-up a large one. A panel goes right, left or below the face only where it
    fits in the image and covers no other face, label or panel (:func:`layout`); otherwise
    that face keeps its label alone, so nothing covers a neighbour.
    """
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    for place in layout(faces, out.shape, style):
        face = place.face
        x, y, w, h = face.box
        color = _color(face.label)
        cv2.rectangle(out, (x, y), (x + w, y + h), color, max(1, round(min(w, h) / 60)))
        if place.label is not None:
            lx, ly, lw, lh = place.label
            cv2.rectangle(out, (lx, ly), (lx + lw, ly + lh), color, -1)
            org, weight = (lx + 2, place.baseline), _weight(place.font)
            cv2.putText(out, place.text, org, _FONT, place.font, (0, 0, 0), weight, cv2.LINE_AA)
        if place.panel is not None:
            _panel(out, face, place.panel)
    return out


def _tag(face: Face) -> str:
    track = f"#{face.id} " if face.id is not None else ""  # video: the track it belongs to
    return f"{track}{face.label} {face.confidence:.0%}"


def _label_spot(face: Face, font: float, shape: tuple[int, int], taken: list):
    """(rectangle, text, baseline) of the face's tag: above its box, inside its top, or below
    it, the whole tag or its first letters, wherever it covers no other face, tag or panel;
    (None, "", 0) when nothing fits (the box's colour still tells the class)."""
    x, y, w, h = face.box
    height, width = shape
    own = _grow(face.box, 2)
    for text in (_tag(face), face.label[:3]):
        (tw, th), base = cv2.getTextSize(text, _FONT, font, _weight(font))
        tx = int(np.clip(x, 0, max(0, width - tw - 4)))
        for ty in (y - base - 3, y + th + 3, y + h + th + 4):  # above, inside the top, below
            rect = (tx, ty - th - 2, tw + 4, th + base + 2)
            inside = rect[1] >= 0 and rect[1] + rect[3] <= height
            if inside and not any(_overlaps(rect, t) for t in taken if t != own):
                return rect, text, ty
    return None, "", 0


def _weight(font: float) -> int:
    return max(1, round(font * 1.6))


def _grow(box, by: int) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return x - by, y - by, w + 2 * by, h + 2 * by


def _overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _panel_size(face: Face) -> tuple[int, int, int, float]:
    """(width, height, row height, font scale) of a face's panel, scaled by the face."""
    row = int(np.clip(face.box[3] / 6, 12, 26))
    font = row * 0.03
    bar = int(np.clip(face.box[2] / 2, 30, 90))
    (tw, _), _ = cv2.getTextSize("surprise 100%", _FONT, font, 1)
    return bar + tw + 8, row * len(face.probs) + 4, row, font


def _panel(img: np.ndarray, face: Face, rect: tuple[int, int, int, int]) -> None:
    x, y, pw, ph = rect
    row, font = _panel_size(face)[2:]
    region = img[y : y + ph, x : x + pw]
    region[:] = (region.astype(np.float32) * 0.35).astype(np.uint8)  # dark, so text reads anywhere
    bar = int(np.clip(face.box[2] / 2, 30, 90))
    for i, (label, p) in enumerate(sorted(face.probs.items(), key=lambda kv: -kv[1])):
        yy = y + 2 + i * row
        cv2.rectangle(img, (x + 2, yy + 2), (x + 2 + max(1, int(bar * p)), yy + row - 2), _color(label), -1)
        cv2.putText(
            img, f"{label} {p:.0%}", (x + bar + 6, yy + row - 4), _FONT, font, (255, 255, 255), 1, cv2.LINE_AA
        )


def annotate_tracked(
    image: np.ndarray, faces: list[Face], fps: float | None = None, style: str = "label"
) -> np.ndarray:
    """:func:`annotate` for video (labels by default: panels would jump around), each tag led
    by the face's track id (``#3 happy 80%``), and, given, the processing rate."""
    drawn = annotate(image, faces, style)
    if fps is not None:
        cv2.putText(
            drawn, f"{fps:.1f} FPS", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA
        )
    return drawn
