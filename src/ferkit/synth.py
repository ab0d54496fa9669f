"""Synthetic test material with known ground truth: videos of faces on a script, hostile images.

Usage::

    script = [Actor(faces_by_label, [(0.0, "happy"), (2.0, "sad")], start=(60, 120), end=(460, 120))]
    truth = write_video("clip.mp4", script, seconds=4, fps=25)    # per-frame boxes and labels
    bomb = png_bomb(30000, 30000)     # 109 KB of PNG that decodes to 900 Mpx

There is no camera in CI: videos made from real face crops (FER-2013, or any photo) stand
in for one, with every frame's boxes and expressions known.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import FerkitError


@dataclass
class Actor:
    """One face: crops per label, a script of (time, label) changes, a straight path."""

    faces: dict[str, np.ndarray]  # label -> uint8 face crop (grey or RGB), any size
    script: list[tuple[float, str]]  # (start time in s, label), sorted
    start: tuple[int, int]  # top-left position at t = 0
    end: tuple[int, int]  # top-left position at the video's end
    size: int = 120  # face side in pixels in the video

    def label_at(self, t: float) -> str:
        label = self.script[0][1]
        for start, name in self.script:
            if t >= start:
                label = name
        return label


@dataclass(frozen=True)
class TruthRow:
    frame: int
    time: float
    actor: int
    box: tuple[int, int, int, int]
    label: str


def _background(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(60, 160, width, dtype=np.float32)[None, :, None] + np.zeros((height, 1, 3), np.float32)
    noise = cv2.GaussianBlur(rng.normal(0, 25, (height, width, 3)).astype(np.float32), (0, 0), 8)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def render_frames(actors: list[Actor], seconds: float, fps: float = 25.0, size=(640, 480), seed: int = 0):
    """Yield ``(rgb_frame, truth_rows)`` per frame."""
    width, height = size
    background = _background(width, height, seed)
    n = int(round(seconds * fps))
    for k in range(n):
        t = k / fps
        frame = background.copy()
        rows = []
        for a, actor in enumerate(actors):
            u = k / max(1, n - 1)
            x = int(round(actor.start[0] + (actor.end[0] - actor.start[0]) * u))
            y = int(round(actor.start[1] + (actor.end[1] - actor.start[1]) * u))
            label = actor.label_at(t)
            face = actor.faces[label]
            face = cv2.cvtColor(face, cv2.COLOR_GRAY2RGB) if face.ndim == 2 else face
            face = cv2.resize(face, (actor.size, actor.size), interpolation=cv2.INTER_CUBIC)
            x0, y0 = max(0, x), max(0, y)
            x1, y1 = min(width, x + actor.size), min(height, y + actor.size)
            if x1 > x0 and y1 > y0:
                frame[y0:y1, x0:x1] = face[y0 - y : y1 - y, x0 - x : x1 - x]
            rows.append(TruthRow(k, t, a, (x, y, actor.size, actor.size), label))
        yield frame, rows


def write_video(
    path: str | os.PathLike,
    actors: list[Actor],
    seconds: float,
    fps: float = 25.0,
    size=(640, 480),
    seed: int = 0,
) -> list[TruthRow]:
    """Write an .mp4 (mp4v) or .avi (MJPG) and return the ground truth of every frame."""
    path = Path(path)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise FerkitError(f"{path}: cannot open a video writer for this format")
    truth: list[TruthRow] = []
    try:
        for frame, rows in render_frames(actors, seconds, fps, size, seed):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            truth += rows
    finally:
        writer.release()
    return truth


def write_y4m(path: str | os.PathLike, frames, fps: int = 25) -> Path:
    """Write RGB frames as a Y4M (I420) file: what Chromium's fake camera plays
    (``--use-file-for-fake-video-capture``), so browser tests have a camera."""
    path = Path(path)
    frames = list(frames)
    height, width = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` zeros: tiny compressed, huge decoded.

    The decompression bomb that image entry points must refuse from the header alone.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
