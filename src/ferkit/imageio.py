"""Decode any image a user brings (JPEG, PNG, WebP, BMP, TIFF, GIF, 16-bit, RGBA, CMYK) safely.

Usage::

    grey = decode_image(open("face.jpg", "rb").read(), source="face.jpg", color="gray")

The header is read first (Pillow, lazily: no pixels decoded) and an image that declares
more pixels than the limit is refused before any large allocation, so a 100 KB
decompression bomb costs nothing. Files are checked before they are opened: special files
(FIFOs, devices, sockets), broken symlinks and files over the size limit are refused.
OpenCV then decodes (fast, applies EXIF orientation); Pillow is the fallback for what
OpenCV cannot read (GIF, some TIFF/WebP variants). Every failure is a ``DataError`` that
names the file and the problem.

Limits: ``max_pixels`` / ``max_bytes`` arguments, else ``$FERKIT_MAX_PIXELS`` /
``$FERKIT_MAX_FILE_BYTES``, else 50 Mpx / 200 MB.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from struct import error as struct_error
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
# Decoding more than this many pixels is refused before decoding: a 50 Mpx RGB image is
# already 150 MB of memory. Raise it with $FERKIT_MAX_PIXELS or max_pixels=.
MAX_PIXELS = 50_000_000
MAX_FILE_BYTES = 200 * 1024 * 1024


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise DataError(f"${name}", f"expected a number, got {text!r}") from None
    if value <= 0:
        raise DataError(f"${name}", f"must be positive, got {value}")
    return value


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: the argument, else ``$FERKIT_MAX_PIXELS``, else 50 Mpx."""
    return max_pixels if max_pixels else _env_int("FERKIT_MAX_PIXELS", MAX_PIXELS)


def max_bytes_limit(max_bytes: int | None = None) -> int:
    """The file-size limit in force: the argument, else ``$FERKIT_MAX_FILE_BYTES``, else 200 MB."""
    return max_bytes if max_bytes else _env_int("FERKIT_MAX_FILE_BYTES", MAX_FILE_BYTES)


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _check_header(data: bytes, source: str) -> None:
    if not data:
        raise DataError(source, "file is empty")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:
        raise DataError(source, "truncated JPEG (no end-of-image marker)")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-4096:]:
        raise DataError(source, "not a readable image (truncated PNG: no IEND chunk)")


_PIL_BOMB_RE = re.compile(r"\((\d+) pixels\)")


def check_declared_size(data: bytes, source: str, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) from the image header, without decoding pixels; refuses images over
    the pixel limit and data that is no image format Pillow knows."""
    from PIL import Image, UnidentifiedImageError

    limit = max_pixels_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # lazy: reads the header only
                width, height = im.size
    except Image.DecompressionBombError as exc:  # Pillow's own hard limit (179 Mpx)
        match = _PIL_BOMB_RE.search(str(exc))
        declared = f"{int(match.group(1)):,} pixels" if match else "too many pixels"
        if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:  # IHDR: width, height
            w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
            declared = f"{w}x{h} ({declared})"
        raise DataError(
            source, f"image declares {declared}, over the {limit:,}-pixel limit (not decoded)"
        ) from None
    except UnidentifiedImageError:
        raise DataError(source, "not a readable image (unknown format or corrupt data)") from None
    except (OSError, ValueError, SyntaxError, struct_error) as exc:
        raise DataError(source, f"not a readable image (bad header: {exc})") from None
    if width <= 0 or height <= 0:
        raise DataError(source, f"image header declares an empty {width}x{height} image")
    if width * height > limit:
        raise DataError(
            source,
            f"image is {width}x{height} ({width * height:,} pixels), over the {limit:,}-pixel limit "
            "(not decoded; raise it with $FERKIT_MAX_PIXELS)",
        )
    return width, height


def _pillow_decode(data: bytes, source: str, color: Color) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.seek(0)  # first frame of a GIF / multi-page TIFF
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                top = arr.max() if arr.size else 1.0
                arr = (arr * (255.0 / max(top, 255.0))).astype(np.uint8)
                return arr if color == "gray" else np.repeat(arr[..., None], 3, axis=2)
            rgb = np.asarray(im.convert("RGB"))
            return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if color == "gray" else rgb
    except DataError:
        raise
    except UnidentifiedImageError as exc:
        raise DataError(source, "not a readable image (unknown format or corrupt data)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(source, f"not a readable image ({exc})") from exc


def decode_image(
    data: bytes, source: str, color: Color = "gray", *, max_pixels: int | None = None
) -> np.ndarray:
    """Decode encoded image bytes to uint8 (H, W) grey or (H, W, 3) RGB.

    The declared size is checked against the pixel limit before anything is decoded. Grey is
    always made from colour by OpenCV's BGR->grey weights, the conversion the runtime applies
    to RGB arrays, so a file read for a dataset and the same file given to a Recognizer reach
    the model as the same pixels.
    """
    _check_header(data, source)
    check_declared_size(data, source, max_pixels)
    buf = np.frombuffer(data, np.uint8)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        return _pillow_decode(data, source, color)
    if img.dtype != np.uint8:  # 16-bit sources
        img = cv2.convertScaleAbs(img, alpha=255.0 / 65535.0)
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if color == "gray" else cv2.COLOR_BGR2RGB)


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def check_file(path: str | os.PathLike, max_bytes: int | None = None) -> int:
    """Size of a regular file that may be read; a ``DataError`` for anything else.

    Never opens the file, so a FIFO cannot hang the caller and ``/dev/zero`` is not read.
    """
    path = str(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        if os.path.islink(path):
            problem = "symlink loop" if exc.errno == 40 else f"broken symlink (to {os.readlink(path)!r})"
            raise DataError(path, problem) from None
        raise DataError(path, f"cannot read file ({exc.strerror})") from None
    for test, kind in _FILE_KINDS:
        if test(info.st_mode):
            raise DataError(path, f"is {kind}, not a regular file")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(path, "not a regular file")
    limit = max_bytes_limit(max_bytes)
    if info.st_size > limit:
        raise DataError(
            path,
            f"file is {info.st_size:,} bytes, over the {limit:,}-byte limit (raise it with "
            "$FERKIT_MAX_FILE_BYTES)",
        )
    return info.st_size


def read_bytes(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file within the size limit (checked before opening)."""
    check_file(path, max_bytes)
    limit = max_bytes_limit(max_bytes)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)  # never more than the limit, even if the file grew
    except OSError as exc:
        raise DataError(str(path), f"cannot read file ({exc.strerror})") from exc
    if len(data) > limit:
        raise DataError(str(path), f"file grew over the {limit:,}-byte limit while being read")
    return data


def read_image(
    path: str, color: Color = "gray", *, max_pixels: int | None = None, max_bytes: int | None = None
) -> np.ndarray:
    """Read and decode an image file; errors name the file."""
    return decode_image(read_bytes(path, max_bytes), str(path), color, max_pixels=max_pixels)


def to_rgb(image: object, source: str = "image", *, max_pixels: int | None = None) -> np.ndarray:
    """Whatever a user has, as uint8 (H, W, 3) RGB: a path, encoded bytes, a PIL image or an
    array (grey, RGB or RGBA; uint8, bool, other integers, or floats in [0, 1] or [0, 255]).

    Paths and bytes pass the same checks as files (header-first pixel limit, special files);
    an array is already in memory and is only converted. Anything else is a ``DataError``
    that says what was given and what is accepted.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(os.fspath(image), "rgb", max_pixels=max_pixels)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(bytes(image), source, "rgb", max_pixels=max_pixels)
    if type(image).__module__.startswith("PIL."):
        mode = "RGBA" if "A" in image.getbands() else "RGB"  # type: ignore[attr-defined]
        image = np.asarray(image.convert(mode))  # type: ignore[attr-defined]
    if not isinstance(image, np.ndarray):
        raise DataError(
            source,
            f"cannot read a {type(image).__name__}: give a file path, encoded bytes, a PIL image or a "
            "numpy array",
        )
    return _array_to_rgb(image, source)


def _array_to_rgb(arr: np.ndarray, source: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or 0 in arr.shape[:2]:
        raise DataError(source, f"array of shape {arr.shape}: expected (H, W), (H, W, 3) or (H, W, 4)")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise DataError(source, "float array holds NaN or infinite values")
        scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0  # [0, 1] images and [0, 255] ones
        arr = np.clip(arr * scale, 0, 255).round().astype(np.uint8)
    elif arr.dtype == np.uint16:
        arr = (arr // 257).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise DataError(source, f"array of dtype {arr.dtype}: expected integers, floats or booleans")
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    return np.ascontiguousarray(arr[:, :, :3])
