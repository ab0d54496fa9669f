"""Face tracking across video frames: stable IDs, motion prediction, smoothed expressions.

Usage::

    tracker = FaceTracker(max_age=1.0, smoothing=0.3)
    tracks = tracker.update(boxes, probs, t=frame_time)      # -> list[Track], IDs stable
    tracker.predict(t)                                        # boxes between detections

Matching is greedy on IoU between detections and each track's box *predicted* at the
frame's time (constant velocity), so two faces that cross keep their IDs. Probabilities
are smoothed with an exponential moving average whose weight depends on the time since the
last update (time constant ``smoothing`` seconds), so variable frame rates behave the same.
A track not seen for ``max_age`` seconds is dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Box = tuple[float, float, float, float]  # x, y, width, height


def iou(a: Box, b: Box) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    id: int
    box: Box  # where the face is now (detected, or predicted between detections)
    last_seen: float  # time of the last detection
    velocity: tuple[float, float] = (0.0, 0.0)  # box centre, pixels per second
    probs: np.ndarray | None = None  # smoothed class probabilities
    last_probs_time: float | None = None
    detected_box: Box | None = None  # the box of the last detection (predictions start here)

    def __post_init__(self) -> None:
        if self.detected_box is None:
            self.detected_box = self.box

    def predicted(self, t: float) -> Box:
        dt = max(0.0, t - self.last_seen)
        x, y, w, h = self.detected_box  # type: ignore[misc]
        return (x + self.velocity[0] * dt, y + self.velocity[1] * dt, w, h)


class FaceTracker:
    def __init__(
        self,
        iou_threshold: float = 0.2,
        max_age: float = 1.0,
        smoothing: float = 0.3,
    ):
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self._next_id = 1

    def predict(self, t: float) -> list[Track]:
        """Live tracks with their boxes moved to time ``t`` (for frames without detection)."""
        self._expire(t)
        for track in self.tracks:
            track.box = track.predicted(t)  # last_seen stays: undetected faces still expire
        return list(self.tracks)

    def update(self, boxes: list[Box], probs: list[np.ndarray | None] | None, t: float) -> list[Track]:
        """Match this frame's detections to tracks; returns the tracks of these detections, in order."""
        self._expire(t)
        probs = probs if probs is not None else [None] * len(boxes)
        pairs = sorted(
            (
                (iou(track.predicted(t), box), ti, di)
                for ti, track in enumerate(self.tracks)
                for di, box in enumerate(boxes)
            ),
            reverse=True,
        )
        matched: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for score, ti, di in pairs:
            if score < self.iou_threshold:
                break
            if ti in used_tracks or di in matched:
                continue
            used_tracks.add(ti)
            matched[di] = self.tracks[ti]
        out = []
        for di, box in enumerate(boxes):
            track = matched.get(di)
            if track is None:
                track = Track(self._next_id, tuple(map(float, box)), t)  # type: ignore[arg-type]
                self._next_id += 1
                self.tracks.append(track)
            else:
                self._move(track, box, t)
            if probs[di] is not None:
                self.set_probs(track, probs[di], t)
            out.append(track)
        return out

    def set_probs(self, track: Track, probs: np.ndarray, t: float) -> None:
        probs = np.asarray(probs, np.float64)
        if track.probs is None or track.last_probs_time is None or self.smoothing <= 0:
            track.probs = probs.copy()
        else:
            dt = max(0.0, t - track.last_probs_time)
            weight = 1.0 - math.exp(-dt / self.smoothing)  # share of the new measurement
            track.probs = (1 - weight) * track.probs + weight * probs
        track.last_probs_time = t

    def _move(self, track: Track, box: Box, t: float) -> None:
        dt = t - track.last_seen
        if dt > 0:
            (ox, oy, ow, oh), (nx, ny, nw, nh) = track.detected_box, box  # type: ignore[misc]
            vx = ((nx + nw / 2) - (ox + ow / 2)) / dt
            vy = ((ny + nh / 2) - (oy + oh / 2)) / dt
            # Light smoothing of the velocity: detectors jitter by a few pixels.
            track.velocity = (0.5 * track.velocity[0] + 0.5 * vx, 0.5 * track.velocity[1] + 0.5 * vy)
        track.box = track.detected_box = tuple(map(float, box))  # type: ignore[assignment]
        track.last_seen = t

    def _expire(self, t: float) -> None:
        self.tracks = [tr for tr in self.tracks if t - tr.last_seen <= self.max_age]
