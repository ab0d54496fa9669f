"""Any image a user throws at ferkit decodes, or fails with a message naming the file."""

import io

import numpy as np
import pytest
from PIL import Image

from ferkit.errors import DataError
from ferkit.imageio import decode_image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(mode="RGB", size=(64, 40)):
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, size[0], dtype=np.uint8)[None]
    return Image.fromarray(arr, "RGB").convert(mode)


@pytest.mark.parametrize(
    "fmt, mode, kw",
    [
        ("JPEG", "RGB", {}),
        ("PNG", "RGB", {}),
        ("WEBP", "RGB", {}),
        ("BMP", "RGB", {}),
        ("TIFF", "RGB", {}),
        ("GIF", "P", {}),
        ("PNG", "RGBA", {}),
        ("PNG", "L", {}),
        ("JPEG", "CMYK", {}),
        ("PNG", "I;16", {}),
    ],
)
def test_formats_decode_to_grey_and_rgb(fmt, mode, kw):
    img = gradient("L" if mode == "I;16" else mode)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img).astype(np.uint16) * 257)  # a 16-bit grey PNG
    data = encode(img, fmt, **kw)
    grey = decode_image(data, f"x.{fmt.lower()}", "gray")
    rgb = decode_image(data, f"x.{fmt.lower()}", "rgb")
    assert grey.shape == (40, 64) and grey.dtype == np.uint8
    assert rgb.shape == (40, 64, 3) and rgb.dtype == np.uint8
    assert grey[:, -5:].mean() > grey[:, :5].mean()  # the gradient survived (left dark, right bright)


def test_exif_orientation_is_applied():
    img = gradient("RGB", size=(64, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(img, "JPEG", exif=exif.tobytes())
    assert decode_image(data, "phone.jpg", "rgb").shape == (64, 40, 3)


def test_gif_first_frame():
    frames = [Image.new("L", (20, 20), 10), Image.new("L", (20, 20), 240)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert decode_image(buf.getvalue(), "anim.gif").mean() < 50


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"", "file is empty"),
        (b"hello world", "not a readable image"),
        (b"\xff\xd8\xff\xe0junk", "truncated JPEG"),
    ],
)
def test_bad_bytes(data, problem):
    with pytest.raises(DataError, match=problem) as info:
        decode_image(data, "upload.jpg")
    assert str(info.value).startswith("upload.jpg: ")
