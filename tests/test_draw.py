"""Annotations a user can read: sized by the face, never over another face, panels only where
there is room."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.runtime.draw import STYLES, annotate, layout
from ferkit.runtime.recognize import Face

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def face(x, y, side, top="happy") -> Face:
    probs = {n: (0.7 if n == top else 0.05) for n in LABELS}
    return Face((x, y, side, side), 0.9, probs, top)


def overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def crowd(n=10, side=30, gap=12):
    """An n x n crowd of small faces, as a group photo of ~100 people has."""
    return [face(20 + c * (side + gap), 20 + r * (side + gap), side) for r in range(n) for c in range(n)]


@pytest.mark.parametrize("style", STYLES)
def test_nothing_covers_another_face(style):
    faces = crowd()
    shape = (480, 480, 3)
    placed = layout(faces, shape, style)
    assert len(placed) == len(faces)
    for p in placed:
        for rect in (p.label, p.panel):
            if rect is None:
                continue
            x, y, w, h = rect
            assert x >= 0 and y >= 0 and x + w <= shape[1] and y + h <= shape[0]
            assert not any(overlaps(rect, o.box) for o in faces if o is not p.face)
    rects = [r for p in placed for r in (p.label, p.panel) if r is not None]
    assert not any(overlaps(a, b) for i, a in enumerate(rects) for b in rects[i + 1 :])
    if style != "box":
        assert sum(p.label is not None for p in placed) >= len(faces) // 2  # most faces keep a tag
    assert all(p.panel is None for p in placed) if style != "panel" else True


def test_text_scales_with_the_face_and_a_lone_face_gets_its_panel():
    small, big = layout([face(10, 100, 30)], (600, 800)), layout([face(100, 100, 240)], (600, 800))
    assert small[0].font < big[0].font
    assert small[0].label[3] < big[0].label[3]  # tag height
    assert big[0].panel is not None and small[0].panel is not None


def test_a_panel_that_does_not_fit_is_left_out():
    # a face filling the image: no room right, left or below
    placed = layout([face(0, 20, 190)], (220, 200))
    assert placed[0].panel is None and placed[0].label is not None


def test_annotate_draws_and_refuses_unknown_styles():
    image = np.full((480, 480, 3), 128, np.uint8)
    drawn = annotate(image, crowd(), "panel")
    assert drawn.shape == image.shape and not np.array_equal(drawn, image)
    assert np.array_equal(image, np.full((480, 480, 3), 128, np.uint8))  # the input is untouched
    with pytest.raises(ValueError, match="unknown annotation style 'bubbles'"):
        annotate(image, crowd(), "bubbles")


@pytest.mark.parametrize("style", STYLES)
def test_drawing_stays_inside_the_places_it_was_given(style):
    """Every changed pixel lies on a face's box or inside its tag or panel rectangle."""
    image = np.full((480, 480, 3), 128, np.uint8)
    faces = crowd() + [face(300, 300, 120, "sad")]
    faces = [f for f in faces if not overlaps(f.box, (290, 290, 140, 140))] + [faces[-1]]
    allowed = np.zeros(image.shape[:2], bool)
    for p in layout(faces, image.shape, style):
        x, y, w, h = p.face.box
        t = max(1, round(min(w, h) / 60))
        allowed[max(0, y - t) : y + h + t + 1, max(0, x - t) : x + w + t + 1] = True
        for rect in (p.label, p.panel):
            if rect is not None:
                rx, ry, rw, rh = rect
                allowed[max(0, ry) : ry + rh + 1, max(0, rx) : rx + rw + 1] = True
    changed = (annotate(image, faces, style) != image).any(axis=2)
    assert changed.any() and not (changed & ~allowed).any(), np.argwhere(changed & ~allowed)[:5]
