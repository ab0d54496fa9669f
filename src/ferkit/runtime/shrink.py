"""A picture shrunk into a detector's input by area averaging, with the normalisation and
the channel-first layout folded in: two small matrix products where OpenCV's INTER_AREA
takes its slow path (steps that are not whole numbers, as 640 -> 192).

Usage::

    x = shrink_normalised(rgb, 192, 144)    # (3, 144, 192) float32 in [-1, 1]
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np


@functools.lru_cache(maxsize=64)
def _area_weights(n_in: int, n_out: int) -> tuple[np.ndarray, int]:
    """One block of the area-averaging matrix that shrinks ``n_in`` pixels to ``n_out``
    (OpenCV's INTER_AREA: each output pixel is the mean of the input it covers, partial pixels
    weighted by their share): (n_out/g, n_in/g) weights that repeat g = gcd(n_in, n_out) times."""
    g = math.gcd(n_in, n_out)
    block_in, block_out, step = n_in // g, n_out // g, n_in / n_out
    weights = np.zeros((block_out, block_in), np.float64)
    for j in range(block_out):
        start, end = j * step, (j + 1) * step
        for i in range(int(start), min(block_in, math.ceil(end))):
            weights[j, i] = (min(end, i + 1) - max(start, i)) / step
    weights = weights.astype(np.float32)
    weights.flags.writeable = False  # shared by every call (cached)
    return weights, g


@functools.lru_cache(maxsize=64)
def _area_products(h: int, w: int, height: int, width: int, channels: int):
    """The two matrices of ``shrink_normalised``: rows (scaled to [0, 2]) and interleaved columns."""
    (wy, _), (wx, _) = _area_weights(h, height), _area_weights(w, width)
    rows = wy / np.float32(127.5)
    columns = np.kron(wx, np.eye(channels, dtype=np.float32)).T.copy()  # (block_in x C, block_out x C)
    rows.flags.writeable = columns.flags.writeable = False
    return rows, columns


# A block product costs (block_out x channels) multiply-adds an input pixel, so it is used up to
# these block sizes: 640x480 -> 192x144 has blocks of 10 pixels -> 3, 1280x720 -> 192x108 20 ->
# 3, a 288 px tile -> 192 3 -> 2; a width with no common factor (641 -> 192) goes to OpenCV, as
# does a strip (1 x 199,999 would need a 192 x 199,999 block), checked before any is built.
MAX_AREA_BLOCK = 16
MAX_AREA_BLOCK_IN = 256


def shrink_normalised(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 shrunk to ``height`` x ``width`` by area averaging, as the model
    takes it: (3, height, width) float32 in [-1, 1].

    The same numbers as ``cv2.resize(..., INTER_AREA)`` before its rounding to uint8, in a third
    of the time on 640x480 (0.3 against 1.0 ms on a Zen 4 EPYC), where OpenCV's general
    non-integer path is slow: the average is separable and periodic, so it is two small matrix
    products. Enlarging, whole-number steps (640 -> 128) and sizes whose blocks are large go
    through OpenCV.
    """
    h, w, channels = rgb.shape
    gy, gx = math.gcd(h, height), math.gcd(w, width)
    whole_steps = height == gy and width == gx  # OpenCV's own fast case: every step a whole number
    large = max(height // gy, width // gx) > MAX_AREA_BLOCK or max(h // gy, w // gx) > MAX_AREA_BLOCK_IN
    if height > h or width > w or whole_steps or large:
        small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        return small.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
    # Products small enough that OpenBLAS runs each on the calling thread: one it spread over
    # the cores left its threads spinning into the detector's ONNX Runtime call (a 640x480
    # detect took 5.7 ms with the horizontal pass as one product, against 3.3 with OpenCV's
    # resize in the same run; 2.65 as it is, best of 20 interleaved rounds).
    rows, columns = _area_products(h, w, height, width, channels)
    x = np.matmul(rows, rgb.astype(np.float32).reshape(gy, h // gy, w * channels))
    x = x.reshape(height, gx, (w // gx) * channels)  # per output row: its horizontal blocks
    x = np.matmul(x, columns).reshape(height, width, channels).transpose(2, 0, 1)
    return x - 1.0
