"""Expressions in video: frame sources (files, cameras, streams), the tracked per-frame loop, outputs.

Usage::

    rec = Recognizer("default")
    for frame in process_video("clip.mp4", rec, detect_every=2):
        frame.index, frame.time, [(f.id, f.label) for f in frame.faces]

``process_frames`` takes any iterable of ``(index, seconds, rgb_image)``, so a camera, a
stream and frames in memory go through the same loop. ``VideoSummary`` collects what each
tracked face showed (shares of frames per emotion, probability timelines) and writes it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.runtime.detect import Detection, FaceDetector
from ferkit.runtime.parallel import ordered_map
from ferkit.runtime.recognize import Face, Recognizer
from ferkit.runtime.track import FaceTracker, iou
from ferkit.utils import atomic_path


@dataclass
class FrameResult:
    index: int
    time: float  # seconds from the start (from the container's timestamps when it has them)
    faces: list[Face]  # tracked: each has an id
    image: np.ndarray | None = field(default=None, repr=False)


@dataclass
class SourceReport:
    """What a frame source had to skip: unreadable frames and whether it ended early."""

    skipped_frames: list[int] = field(default_factory=list)
    ended_early: bool = False
    expected_frames: int | None = None
    frames_read: int = 0
    fps: float | None = None  # the container's nominal rate, when it states one


def open_capture(source: str | int) -> cv2.VideoCapture:
    """A camera index (``0``), a video file or a stream URL; a clear error if it will not open."""
    spec: str | int = int(source) if isinstance(source, str) and source.isdigit() else source
    if isinstance(spec, str) and "://" not in spec and not os.path.exists(spec):
        raise FerkitError(f"{spec}: video file not found")
    cap = cv2.VideoCapture(spec)
    if not cap.isOpened():
        kind = "camera" if isinstance(spec, int) else "video"
        raise FerkitError(
            f"{source}: cannot open {kind} (no such device, unsupported format or corrupt file)"
        )
    return cap


def read_frames(
    source: str | int, report: SourceReport | None = None, max_bad: int = 25
) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(index, seconds, rgb)`` per readable frame; unreadable frames are skipped and recorded.

    Timestamps come from the container (variable frame rate safe) when it gives them, else
    from the nominal rate. Rotation metadata is applied by OpenCV's FFmpeg backend.
    """
    report = report if report is not None else SourceReport()
    cap = open_capture(source)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        report.fps = fps if 0 < fps < 1000 else None
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        report.expected_frames = total if total > 0 else None
        index = 0
        pending: list[int] = []  # unreadable frames; corrupt if a good frame follows, else the end
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                if report.expected_frames and index < report.expected_frames and len(pending) < max_bad:
                    pending.append(index)
                    index += 1
                    continue
                if pending or (report.expected_frames and index < report.expected_frames):
                    report.ended_early = True
                break
            report.skipped_frames += pending
            pending = []
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            t = msec / 1000.0 if msec and msec > 0 else (index / fps if fps > 0 else float(index))
            report.frames_read += 1
            yield index, t, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        cap.release()


def process_frames(
    frames: Iterable[tuple[int, float, np.ndarray]],
    recognizer: Recognizer,
    *,
    detect_every: int = 1,
    classify_every: int = 1,
    tracker: FaceTracker | None = None,
    keep_images: bool = False,
    keep_lost: int = 0,
    workers: int = 1,
    full_search_every: float | None = None,
) -> Iterator[FrameResult]:
    """Detect every ``detect_every`` frames, track in between, classify every ``classify_every``.

    Between detections only the faces found by the last detection are followed, classified
    and reported: a face the detector lost (a cut, someone leaving) is dropped at once, not
    carried as a box drifting over the background for ``max_age``. ``keep_lost`` keeps such a
    face for that many more detection rounds (a face turned away for a moment).

    ``workers`` > 1 detects faces in that many frames at once, ahead of the tracking and
    classification, each on its own single-threaded detector (:meth:`Recognizer.detector_copies`):
    the same results, sooner, for a video file. It reads up to ``2 * workers`` frames ahead,
    so a live camera keeps 1.

    With BlazeFace's default tiling, the tiles that find small faces (a whole search: up to 8
    looks at a 640x480 frame, 3 at least for 16:9) run on the first detection and then at most
    every ``full_search_every`` seconds of video (default: half the tracker's ``max_age``, at
    most 0.5 s); the detections between take one look at the whole frame. A face that this look
    does not see, and that only the tiles found (``Detection.tiled``) or that is narrower than
    the detector's ``small_face_width`` (near the limit of one look), is carried on its last
    box (and classified there) until the next whole search finds it or drops it; a larger face
    the whole look found and loses is dropped as before. The schedule follows the frames' times
    alone, so ``workers`` does not change the results.
    """
    tracker = tracker or FaceTracker()
    if full_search_every is None:
        full_search_every = min(0.5, tracker.max_age / 2)
    stream = _with_detections(frames, recognizer, max(1, detect_every), workers, full_search_every)
    with contextlib.closing(stream):  # a stop ends its detector threads, not only the GC
        yield from _track_and_classify(stream, recognizer, tracker, classify_every, keep_images, keep_lost)


def _track_and_classify(
    stream: Iterator[tuple[int, float, np.ndarray, list[Detection] | None, bool]],
    recognizer: Recognizer,
    tracker: FaceTracker,
    classify_every: int,
    keep_images: bool,
    keep_lost: int,
) -> Iterator[FrameResult]:
    labels = recognizer.labels
    scores: dict[int, float] = {}  # track id -> its last detection's score
    missed: dict[int, int] = {}  # track id -> detection rounds in a row it was not found in
    tiled: set[int] = set()  # track ids whose last detection only a tile (or close-up) look made
    small_width = getattr(recognizer.detector, "small_face_width", None)
    for n, (index, t, image, found, whole_search) in enumerate(stream):
        detect = found is not None
        classify = n % max(1, classify_every) == 0
        carried: list = []  # faces only the tiles found, which this round's single look may miss
        if found is not None:
            detections = found
            boxes = [d.box for d in detections]
            if not whole_search:
                small = small_width(*image.shape[:2]) if small_width else 0.0
                carried = [
                    tr
                    for tr in tracker.tracks
                    if (tr.id in tiled or tr.detected_box[2] < small)
                    and missed.get(tr.id, 0) == 0
                    and t - tr.last_seen <= tracker.max_age
                    and all(iou(tr.detected_box, b) < tracker.iou_threshold for b in boxes)
                ]
        else:
            tracks = [tr for tr in tracker.predict(t) if missed.get(tr.id, 0) <= keep_lost]
            detections = [Detection(tuple(int(round(v)) for v in tr.box), 1.0) for tr in tracks]  # type: ignore[misc]
            boxes = [d.box for d in detections]
        on_carried = [Detection(tuple(int(round(v)) for v in tr.detected_box), 1.0) for tr in carried]  # type: ignore[misc]
        probs = carried_probs = None
        if classify and (detections or on_carried):
            every = list(recognizer.classify([(image, d) for d in detections + on_carried]))
            probs, carried_probs = every[: len(detections)] or None, every[len(detections) :]
        if detect:
            tracks = tracker.update(boxes, probs, t)
            for tr, d in zip(tracks, detections, strict=False):
                scores[tr.id] = d.score
                if d.tiled:
                    tiled.add(tr.id)
                else:
                    tiled.discard(tr.id)
            for i, tr in enumerate(carried):  # stays where it was last seen, until a whole search
                tr.box, tr.velocity = tr.detected_box, (0.0, 0.0)
                if carried_probs:
                    tracker.set_probs(tr, carried_probs[i], t)
            found = {tr.id for tr in tracks} | {tr.id for tr in carried}
            missed = {tr.id: 0 if tr.id in found else missed.get(tr.id, 0) + 1 for tr in tracker.tracks}
            tracks += carried
            if keep_lost:  # lost faces kept on: on their predicted boxes, with their last expression
                tracks += [tr for tr in tracker.predict(t) if 0 < missed[tr.id] <= keep_lost]
        else:
            for tr, p in zip(tracks, probs or [None] * len(tracks), strict=True):
                if p is not None:
                    tracker.set_probs(tr, p, t)
        not_seen = {tr.id for tr in carried}
        faces = []
        for tr in tracks:
            if tr.probs is None:
                continue  # not classified yet
            smoothed = {name: float(v) for name, v in zip(labels, tr.probs, strict=True)}
            box = tuple(int(round(v)) for v in tr.box)
            label = max(smoothed, key=smoothed.get)  # type: ignore[arg-type]
            seen = detect and missed.get(tr.id, 0) == 0 and tr.id not in not_seen
            faces.append(Face(box, scores.get(tr.id, 1.0), smoothed, label, id=tr.id, detected=seen))  # type: ignore[arg-type]
        yield FrameResult(index, t, faces, image if keep_images else None)


def _whole_searches(detector: FaceDetector, every: float):
    """A function of a detection frame's time: True where that detection should search the
    whole frame (tiles included), False for one look; None where the detector always does the
    same (no tiles, or tiles chosen by the caller). Called in frame order."""
    if not every or getattr(detector, "tiles", None) != "auto":
        return None
    last: float | None = None

    def due(t: float) -> bool:
        nonlocal last
        if last is None or t - last >= every or t < last:  # first, on time, or time restarted
            last = t
            return True
        return False

    return due


def _with_detections(
    frames: Iterable[tuple[int, float, np.ndarray]],
    recognizer: Recognizer,
    detect_every: int,
    workers: int,
    full_search_every: float = 0.0,
) -> Iterator[tuple[int, float, np.ndarray, list[Detection] | None, bool]]:
    """Each frame with its detections (None on frames between detections) and whether they
    come from a whole search, in order; with ``workers`` > 1 the detections are made ahead,
    several frames at once."""
    lanes = recognizer.detector_copies(workers)
    due = _whole_searches(recognizer.detector, full_search_every)

    def whole_at(t: float) -> bool:  # asked in frame order, so the schedule is deterministic
        return True if due is None else due(t)

    def detect(detector: FaceDetector, image: np.ndarray, whole: bool) -> list[Detection]:
        return detector.detect(image) if due is None else detector.detect(image, small_faces=whole)  # type: ignore[call-arg]

    if len(lanes) == 1:
        for n, (index, t, image) in enumerate(frames):
            if n % detect_every:
                yield index, t, image, None, False
                continue
            whole = whole_at(t)
            yield index, t, image, detect(recognizer.detector, image, whole), whole
        return

    def grouped(it=iter(frames)):  # a detection frame and the frames tracked after it
        while group := list(itertools.islice(it, detect_every)):
            yield group, whole_at(group[0][1])

    def detect_group(detector: FaceDetector, item) -> list[Detection]:
        (group, whole) = item
        return detect(detector, group[0][2], whole)

    with contextlib.closing(ordered_map(detect_group, grouped(), lanes, name="ferkit-detect")) as done:
        for (group, whole), found in done:
            yield (*group[0], found, whole)
            for index, t, image in group[1:]:
                yield index, t, image, None, False


def process_video(
    source: str | int, recognizer: Recognizer, report: SourceReport | None = None, **kwargs
) -> Iterator[FrameResult]:
    return process_frames(read_frames(source, report), recognizer, **kwargs)


def open_video_writer(path: str | os.PathLike, width: int, height: int, fps: float | None) -> cv2.VideoWriter:
    """An annotated-video writer (.mp4: mp4v, .avi: MJPG) at the source's rate (25 if unknown)."""
    path = Path(path)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, float(fps or 25.0), (width, height))
    if not writer.isOpened():
        raise FerkitError(f"{path}: cannot write this video format (use .mp4 or .avi)")
    return writer


def written_video_problem(path: str | os.PathLike, frames_written: int) -> str | None:
    """None when the finished video at ``path`` opens and holds the frames written to it; else
    what is wrong. OpenCV's writer reports no write errors (a full disk leaves a 0-byte or
    unplayable file), so the file is read back once it is closed."""
    if frames_written == 0:
        return None
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        return "the file is empty (disk full or not writable?)"
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return f"the file ({size:,} bytes) does not open as a video (disk full?)"
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, _ = cap.read()
    finally:
        cap.release()
    if not ok or count < frames_written:
        return f"the file holds {max(count, 0)} of the {frames_written} frames written (disk full?)"
    return None


class VideoSummary:
    """Per tracked face: the share of its frames under each emotion and its probability timeline.

    Usage::

        summary = VideoSummary(recognizer.labels)
        for result in process_video("clip.mp4", recognizer):
            summary.add(result)
        summary.shares()              # {face id: {label: share of that face's frames}}
        summary.write("out/summary")  # summary.json + timeline_face<ID>.png (matplotlib)
    """

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        self.counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.timelines: dict[int, list[tuple[float, list[float]]]] = defaultdict(list)

    def add(self, result: FrameResult) -> None:
        for face in result.faces:
            self.counts[face.id][face.label] += 1
            self.timelines[face.id].append((result.time, [face.probs[n] for n in self.labels]))

    def shares(self) -> dict[int, dict[str, float]]:
        out = {}
        for face_id, counts in sorted(self.counts.items()):
            total = sum(counts.values())
            out[face_id] = {label: counts.get(label, 0) / total for label in self.labels}
        return out

    def write(self, folder: str | os.PathLike) -> list[Path]:
        """``summary.json`` and, where matplotlib is installed, one timeline plot per face;
        each file is written atomically. Returns the files written."""
        folder = Path(folder)
        written = [folder / "summary.json"]
        with atomic_path(written[0]) as tmp:
            tmp.write_text(json.dumps({str(k): v for k, v in self.shares().items()}, indent=2))
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return written
        for face_id, series in sorted(self.timelines.items()):
            times = [t for t, _ in series]
            probs = list(zip(*[p for _, p in series], strict=True))
            fig, ax = plt.subplots(figsize=(10, 3.2))
            ax.stackplot(times, probs, labels=self.labels)
            ax.set_xlim(times[0], times[-1] if times[-1] > times[0] else times[0] + 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("time (s)")
            ax.set_ylabel("probability (smoothed)")
            ax.set_title(f"face #{face_id}")
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
            fig.tight_layout()
            written.append(folder / f"timeline_face{face_id}.png")
            with atomic_path(written[-1]) as tmp:
                fig.savefig(tmp, dpi=90, format="png")
            plt.close(fig)
        return written
