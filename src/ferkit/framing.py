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
"""

from __future__ import annotations

import cv2
import numpy as np

DETECTOR_MARGIN = 0.1  # around a face detector's box
CROP_MARGIN = 0.0  # around an image that already is a face crop


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
    return cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
