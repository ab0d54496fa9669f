"""One framing for every face that reaches a model: a square around the face, resized.

Usage::

    crop = frame_face(image, box=(x, y, w, h), size=48, margin=0.1)   # a detector's box
    crop = frame_face(face_crop, size=48)                              # a ready-made crop

The square is centred on the box, its side the box's longer side times ``1 + 2 * margin``,
optionally rotated (``angle``, degrees, to level the eyes); outside the image is filled by
repeating the border. Dataset readers (folders, zips), ``ferkit eval``, the runtime
(images, video, the web app, Ray) all frame through here, so the same picture gives the
same model input whichever way it arrives.

Chosen by measurement (``fast``, flip TTA; FER-2013 PrivateTest / SFEW 2.0 Val, whose
aligned crops are 143x181 and tighter than FER-2013's):

| ready-made crops framed by | FER-2013 | SFEW Val |
| --- | ---: | ---: |
| squashing to a square | 69.04% | 33.64% |
| centre-cropping to a square | 69.04% | 31.55% |
| **padding to a square, no margin** (ferkit) | **69.04%** | **38.75%** |
| padding + 10% margin | 65.53% | 40.14% |
| padding + 20% margin | 58.43% | 37.59% |

Ready-made crops get no margin (FER-2013's own crops lose 3.5 points with one); a
detector's box, which hugs the face more tightly than FER-2013's framing, gets
``DETECTOR_MARGIN``.

Faces found by the detector can also be aligned on their eyes (``Recognizer(align=...)``):
``True`` levels the eyes; ``"eyes"`` (:func:`frame_eyes`) also scales and shifts the face so
the eyes land where FER-2013's do. Through detection on SFEW 2.0 Val (431 photos, BlazeFace,
flip TTA, a photo without a face counted wrong), neither helped, so the default stays off:

| model | box + margin (default) | eyes levelled | eyes on FER-2013's template |
| --- | ---: | ---: | ---: |
| ``fast`` | 40.14% | 40.37% | 38.52% |
| ``accurate`` | 41.07% | 39.44% | 38.28% |
"""

from __future__ import annotations

import cv2
import numpy as np

DETECTOR_MARGIN = 0.1  # around a face detector's box
CROP_MARGIN = 0.0  # around an image that already is a face crop
# Where FER-2013's faces have their eyes, as fractions of the crop's side: the median of
# BlazeFace's eye keypoints on the first 800 Training faces (714 found one face): left eye
# (15.19, 18.75), right eye (32.88, 18.82) of 48.
EYE_TEMPLATE = ((15.19 / 48, 18.75 / 48), (32.88 / 48, 18.82 / 48))


def frame_eyes(
    image: np.ndarray, left_eye: tuple[float, float], right_eye: tuple[float, float], size: int = 48
) -> np.ndarray:
    """A ``size`` x ``size`` crop rotated, scaled and shifted so the eyes land where FER-2013's
    are (:data:`EYE_TEMPLATE`); outside the image is filled by repeating the border."""
    (lx, ly), (rx, ry) = left_eye, right_eye
    (tlx, tly), (trx, try_) = ((x * size, y * size) for x, y in EYE_TEMPLATE)
    distance = float(np.hypot(rx - lx, ry - ly))
    if distance < 1e-3:
        raise ValueError("the two eye points coincide")
    scale = float(np.hypot(trx - tlx, try_ - tly)) / distance
    angle = float(np.degrees(np.arctan2(ry - ly, rx - lx)))
    mid = ((lx + rx) / 2, (ly + ry) / 2)
    matrix = cv2.getRotationMatrix2D(mid, angle, scale)
    matrix[0, 2] += (tlx + trx) / 2 - mid[0]
    matrix[1, 2] += (tly + try_) / 2 - mid[1]
    return _warp(image, matrix, size, scale)


def frame_face(
    image: np.ndarray,
    box: tuple[float, float, float, float] | None = None,
    size: int = 48,
    margin: float = CROP_MARGIN,
    angle: float = 0.0,
) -> np.ndarray:
    """A ``size`` x ``size`` square around ``box`` (default: the whole image); see the module."""
    h, w = image.shape[:2]
    x, y, bw, bh = box if box is not None else (0, 0, w, h)
    if (x, y, bw, bh) == (0, 0, w, h) == (0, 0, size, size) and not margin and not angle:
        return np.ascontiguousarray(image)  # already framed (FER-2013's 48x48 crops)
    cx, cy = x + bw / 2, y + bh / 2
    side = max(bw, bh) * (1 + 2 * margin)
    scale = size / side
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, scale)  # rotate about the centre, scale
    matrix[0, 2] += size / 2 - cx
    matrix[1, 2] += size / 2 - cy
    return _warp(image, matrix, size, scale)


def _warp(image: np.ndarray, matrix: np.ndarray, size: int, scale: float) -> np.ndarray:
    """The ``size`` x ``size`` square ``matrix`` maps to, the border repeated outside the image."""
    return cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
