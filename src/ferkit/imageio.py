"""Decode any image a user brings (JPEG, PNG, WebP, BMP, TIFF, GIF, 16-bit, RGBA, CMYK) safely.

Usage::

    grey = decode_image(open("face.jpg", "rb").read(), source="face.jpg", color="gray")

OpenCV decodes first (fast, applies EXIF orientation); Pillow is the fallback for what
OpenCV cannot read (GIF, some TIFF/WebP variants). Every failure is a ``DataError`` that
names the file and the problem.
"""

from __future__ import annotations

import io
from typing import Literal

import cv2
import numpy as np

from ferkit.errors import DataError

Color = Literal["gray", "rgb"]
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".webp",
    ".tif",
    ".tiff",
    ".gif",
    ".pgm",
    ".ppm",
    ".jfif",
)
# Decoding more than this many pixels is refused: it would take GBs of memory.
MAX_PIXELS = 120_000_000


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _check_header(data: bytes, source: str) -> None:
    if not data:
        raise DataError(source, "file is empty")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:
        raise DataError(source, "truncated JPEG (no end-of-image marker)")


def _pillow_decode(data: bytes, source: str, color: Color) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DataError(
                    source, f"image is {im.width}x{im.height}, over the {MAX_PIXELS:,}-pixel limit"
                )
            im.seek(0)  # first frame of a GIF / multi-page TIFF
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                top = arr.max() if arr.size else 1.0
                arr = (arr * (255.0 / max(top, 255.0))).astype(np.uint8)
                return arr if color == "gray" else np.repeat(arr[..., None], 3, axis=2)
            return np.asarray(im.convert("L" if color == "gray" else "RGB"))
    except DataError:
        raise
    except UnidentifiedImageError as exc:
        raise DataError(source, "not a readable image (unknown format or corrupt data)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(source, f"not a readable image ({exc})") from exc
    except Image.DecompressionBombError as exc:  # pragma: no cover - depends on Pillow limit
        raise DataError(source, f"image is too large to decode ({exc})") from exc


def decode_image(data: bytes, source: str, color: Color = "gray") -> np.ndarray:
    """Decode encoded image bytes to uint8 (H, W) grey or (H, W, 3) RGB."""
    _check_header(data, source)
    buf = np.frombuffer(data, np.uint8)
    flag = cv2.IMREAD_GRAYSCALE if color == "gray" else cv2.IMREAD_COLOR
    try:
        img = cv2.imdecode(buf, flag)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        return _pillow_decode(data, source, color)
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise DataError(source, f"image is {img.shape[1]}x{img.shape[0]}, over the pixel limit")
    if img.dtype != np.uint8:  # 16-bit sources
        img = cv2.convertScaleAbs(img, alpha=255.0 / 65535.0)
    if color == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def read_image(path: str, color: Color = "gray") -> np.ndarray:
    """Read and decode an image file; errors name the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(path, f"cannot read file ({exc.strerror})") from exc
    return decode_image(data, path, color)


def fit_square(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square (keeps the aspect of faces) and resize to ``size``x``size``."""
    h, w = img.shape[:2]
    if h != w:
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        img = img[y : y + side, x : x + side]
    if img.shape[0] != size:
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return np.ascontiguousarray(img)
