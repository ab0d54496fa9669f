"""One framing: a dataset reader and the runtime give the model the same input for the same file."""

import cv2
import numpy as np
import pytest
from skimage import data

from ferkit.data.folder import read_image_folder
from ferkit.framing import DETECTOR_MARGIN, frame_face
from ferkit.runtime.classifier import load_model
from ferkit.runtime.detect import create_detector
from ferkit.runtime.recognize import Recognizer, crop_face


@pytest.fixture
def tall_crops(tmp_path):
    """143x181 face crops (SFEW's shape) in a labelled folder, as PNG and JPEG."""
    face = cv2.cvtColor(data.astronaut()[20:250, 110:320], cv2.COLOR_RGB2BGR)
    (tmp_path / "happy").mkdir()
    paths = []
    for i, ext in enumerate((".png", ".jpg")):
        crop = cv2.resize(np.roll(face, 7 * i, axis=1), (143, 181), interpolation=cv2.INTER_AREA)
        paths.append(tmp_path / "happy" / f"face{i}{ext}")
        cv2.imwrite(str(paths[-1]), crop)
    return tmp_path, paths


def test_reader_and_runtime_give_identical_model_inputs(tall_crops):
    folder, paths = tall_crops
    ds = read_image_folder(folder)  # what ferkit eval sees
    rec = Recognizer("fast", detector="none", tta="none")  # what ferkit predict --detector none sees
    for path, read in zip(paths, ds.images, strict=True):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        (detection,) = rec.detector.detect(image)
        model_input = crop_face(image, detection, 48, rec.margin)
        np.testing.assert_array_equal(model_input, read)
        probs = rec.recognize(str(path))[0].probs
        expected = load_model("fast").predict_proba(read[None])[0]
        np.testing.assert_allclose([probs[k] for k in rec.labels], expected, atol=1e-6)


def test_padded_to_a_square_not_squashed_or_cut():
    tall = np.zeros((180, 90), np.uint8)
    tall[:, 30:60] = 255  # a bright bar in the middle third
    out = frame_face(tall, size=60)
    assert out.shape == (60, 60)
    # The whole height fits (no top/bottom cut): the bar runs from top to bottom,
    # and keeps its proportions (a third of the height wide: 10 px), with the sides padded.
    assert out[:, 25:35].min() == 255 and out[0, 30] == 255 and out[-1, 30] == 255
    assert out[:, :15].max() == 0 and out[:, 45:].max() == 0


def test_fer2013_crops_pass_unchanged_and_detector_boxes_get_a_margin():
    crop = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    assert np.array_equal(frame_face(crop, size=48), crop)
    image = np.zeros((200, 200), np.uint8)
    image[50:150, 50:150] = 200  # a 100 px "face"
    det = create_detector("none").detect(image[50:150, 50:150])[0]
    assert det.box == (0, 0, 100, 100)
    framed = crop_face(image, type(det)((50, 50, 100, 100), 1.0), 48, DETECTOR_MARGIN)
    border = round(48 * DETECTOR_MARGIN / (1 + 2 * DETECTOR_MARGIN))  # ~4 px of context each side
    assert framed[24, : border - 1].max() == 0 and framed[24, border + 1 : -border - 1].min() == 200


def test_frame_eyes_puts_the_eyes_where_fer2013_has_them():
    import cv2

    from ferkit.framing import EYE_TEMPLATE, frame_eyes

    image = np.zeros((400, 400), np.uint8)
    left, right = (150.0, 220.0), (250.0, 180.0)  # a tilted face, eyes 108 px apart
    for x, y in (left, right):
        cv2.circle(image, (int(x), int(y)), 6, 255, -1)
    crop = frame_eyes(image, left, right, size=96)
    assert crop.shape == (96, 96)
    _, _, _, centres = cv2.connectedComponentsWithStats((crop > 100).astype(np.uint8))
    found = sorted(tuple(c) for c in centres[1:])
    for (fx, fy), (tx, ty) in zip(found, EYE_TEMPLATE, strict=True):
        assert abs(fx - tx * 96) < 1.5 and abs(fy - ty * 96) < 1.5
    with pytest.raises(ValueError, match="coincide"):
        frame_eyes(image, left, left)
