"""Video recognition on this machine: end-to-end FPS, label agreement with a script, ID switches.

Usage::

    python bench/video.py [--data ../shared/datasets/fer2013/fer2013.tar.gz] [--seconds 8]
    python bench/video.py --material photos      # real photographed faces instead

Generates clips from FER-2013 PrivateTest faces (two faces crossing, each changing
expression on a known script; faces are picked among those the model classifies right
when seen still, so the numbers measure the video loop, not the classifier), then runs
``process_frames`` with each detector at 640x480 and 1280x720. Reports FPS of the whole
loop (decode excluded: frames are in memory), the share of frames whose smoothed label
matches the script (over the faces found), the share of faces found (found / present;
above 100% means false detections), and ID switches.

``--material photos`` uses two photographed faces instead (scikit-image's astronaut, read as
happy, and matplotlib's Grace Hopper, read as neutral; two actors crossing, swapping faces
half-way): FER-2013's 48x48 grey crops upscaled are not what a webcam sees, and detectors
trained on real photos (BlazeFace) treat them differently.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from ferkit.data import load_dataset
from ferkit.runtime.detect import create_detector, list_detectors
from ferkit.runtime.recognize import Recognizer
from ferkit.runtime.track import FaceTracker
from ferkit.runtime.video import process_frames
from ferkit.synth import Actor, render_frames

SCRIPT_A = [(0.0, "happy"), (2.5, "surprise"), (5.0, "neutral")]
SCRIPT_B = [(0.0, "sad"), (3.0, "happy"), (6.0, "angry")]


def pick_faces(data: str, recognizer: Recognizer, seed: int = 0) -> dict[str, np.ndarray]:
    """One face per scripted label, drawn from the test faces the model reads right."""
    test = load_dataset(data).pick("test")
    rng = np.random.default_rng(seed)
    probs = recognizer.classifier.predict_proba(test.images)
    names = test.label_set.names
    faces = {}
    for label in {lab for _, lab in SCRIPT_A + SCRIPT_B}:
        c = names.index(label)
        ok = np.flatnonzero((test.labels == c) & (probs.argmax(1) == c))
        # FER-2013 crops are tight; a replicated border gives detectors the head context they expect.
        faces[label] = cv2.copyMakeBorder(test.images[rng.choice(ok)], 12, 12, 12, 12, cv2.BORDER_REPLICATE)
    return faces


SCRIPT_PHOTO_A = [(0.0, "happy"), (4.0, "neutral")]
SCRIPT_PHOTO_B = [(0.0, "neutral"), (4.0, "happy")]


def photo_faces(recognizer: Recognizer) -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from skimage import data

    grace = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    faces = {
        "happy": data.astronaut()[30:230, 120:320],
        "neutral": cv2.cvtColor(grace, cv2.COLOR_BGR2RGB)[20:420, 60:460],
    }
    for label, face in faces.items():  # the script must mean what it says to this model
        still = cv2.copyMakeBorder(face, 100, 100, 100, 100, cv2.BORDER_REPLICATE)
        found = recognizer.recognize(still)
        assert found and found[0].label == label, f"the model reads the {label} photo as {found}"
    return faces


def run(frames, truth, recognizer, detect_every: int, full_search_every: float | None = None):
    tracker = FaceTracker()
    start = time.perf_counter()
    kwargs = dict(detect_every=detect_every, tracker=tracker, full_search_every=full_search_every)
    results = list(process_frames(frames, recognizer, **kwargs))
    seconds = time.perf_counter() - start
    agree = total = 0
    id_of_actor: dict[int, int] = {}
    switches = 0
    for result in results:
        for face in result.faces:
            # Match a face to the actor whose true box centre is nearest.
            cx, cy = face.box[0] + face.box[2] / 2, face.box[1] + face.box[3] / 2
            rows = truth[result.index]
            row = min(
                rows, key=lambda r: (r.box[0] + r.box[2] / 2 - cx) ** 2 + (r.box[1] + r.box[3] / 2 - cy) ** 2
            )
            total += 1
            agree += face.label == row.label
            if row.actor in id_of_actor and id_of_actor[row.actor] != face.id:
                switches += 1
            id_of_actor[row.actor] = face.id
    present = sum(len(truth[r.index]) for r in results)
    return len(results) / seconds, agree / max(total, 1), switches, total / max(present, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/datasets/fer2013/fer2013.tar.gz")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--detect-every", type=int, default=2)
    parser.add_argument("--material", choices=("fer", "photos"), default="fer")
    parser.add_argument(
        "--full-search-every",
        type=float,
        nargs="+",
        default=[None],
        help="BlazeFace: seconds between whole searches (tiles), one row each; 0: every detection",
    )
    args = parser.parse_args()
    scripts = (SCRIPT_A, SCRIPT_B) if args.material == "fer" else (SCRIPT_PHOTO_A, SCRIPT_PHOTO_B)
    # FER-2013 faces are chosen by the classifier alone: load and read the test split once.
    fer_faces = None
    if args.material == "fer":
        fer_faces = pick_faces(args.data, Recognizer("default", detector="none"))
    print("| size | detector | model | FPS | faces found / present | smoothed label = script | ID switches |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for width, height in ((640, 480), (1280, 720)):
        scale = width / 640
        for det_name in [d for d in list_detectors() if d not in ("none", "auto")]:
            try:
                detector = create_detector(det_name)
            except Exception:
                continue
            recognizer = Recognizer("default", detector=detector)
            faces = fer_faces if fer_faces is not None else photo_faces(recognizer)
            size = int(150 * scale)
            actors = [
                Actor(
                    faces,
                    scripts[0],
                    (int(40 * scale), int(120 * scale)),
                    (int(440 * scale), int(160 * scale)),
                    size,
                ),
                Actor(
                    faces,
                    scripts[1],
                    (int(440 * scale), int(150 * scale)),
                    (int(40 * scale), int(130 * scale)),
                    size,
                ),
            ]
            rendered = list(render_frames(actors, args.seconds, 25.0, (width, height)))
            frames = [(k, k / 25.0, img) for k, (img, _) in enumerate(rendered)]
            truth = [rows for _, rows in rendered]
            for every in args.full_search_every if det_name.startswith("blazeface") else [None]:
                fps, agree, switches, found = run(frames, truth, recognizer, args.detect_every, every)
                name = det_name if every is None else f"{det_name}, whole search every {every:g} s"
                cells = [
                    f"{width}x{height}",
                    name,
                    "default",
                    f"{fps:.1f}",
                    f"{found:.1%}",
                    f"{agree:.1%}",
                    str(switches),
                ]
                print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
