"""``ferkit video``: expressions in a video file, a camera or a stream, with tracking and smoothing."""

from __future__ import annotations

import contextlib
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console


def video(
    source: str = typer.Argument(..., help="Video file, camera index (0) or stream URL."),
    model: str = typer.Option("default", help="Shipped model name or .onnx file."),
    detector: str = typer.Option("auto", help="Face detector: auto (= blazeface), blazeface, hog, haar."),
    detect_every: int = typer.Option(2, help="Run the detector every N frames; track in between."),
    classify_every: int = typer.Option(1, help="Classify faces every K frames."),
    smoothing: float = typer.Option(0.3, help="Time constant (s) of the probability smoothing; 0 = off."),
    max_age: float = typer.Option(1.0, help="Forget a face unseen for this many seconds."),
    out: Optional[Path] = typer.Option(None, help="Annotated video to write (.mp4 or .avi)."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="One row per face per processed frame."),
    jsonl_out: Optional[Path] = typer.Option(
        None, "--jsonl", help="One JSON record per face per processed frame."
    ),
    summary: Optional[Path] = typer.Option(
        None, help="Folder for per-face emotion shares and timeline plots."
    ),
    show: bool = typer.Option(
        False, help="Show a live window (OpenCV's, else a browser app window); q or closing it stops."
    ),
    max_frames: int = typer.Option(0, help="Stop after this many frames (0 = all)."),
) -> None:
    """Recognise expressions frame by frame; Ctrl-C, SIGTERM or SIGHUP stop cleanly and keep everything
    written so far (the video stays playable)."""
    import cv2

    from ferkit.runtime.display import open_frame_window
    from ferkit.runtime.draw import annotate
    from ferkit.runtime.recognize import Recognizer
    from ferkit.runtime.track import FaceTracker
    from ferkit.runtime.video import SourceReport, process_frames, read_frames
    from ferkit.runtime.writers import FaceRowWriter
    from ferkit.utils import stop_signals

    err = Console(stderr=True, soft_wrap=True)
    recognizer = Recognizer(model, detector=detector)
    labels = list(recognizer.labels)
    report = SourceReport()
    frames = read_frames(source, report)
    if max_frames:
        frames = (f for i, f in enumerate(frames) if i < max_frames)
    tracker = FaceTracker(max_age=max_age, smoothing=smoothing)
    writer = None
    files = contextlib.ExitStack()
    shares: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    timelines: dict[int, list[tuple[float, list[float]]]] = defaultdict(list)
    n_frames, start, fps_shown = 0, time.perf_counter(), 0.0
    window = open_frame_window(f"ferkit: {source}") if show else None
    if window is not None and getattr(window, "url", None):
        err.print(f"showing the video in a browser window: {window.url}")
    with stop_signals():  # SIGTERM / SIGHUP finish the outputs like Ctrl-C
        try:
            rows = files.enter_context(
                FaceRowWriter(
                    labels, csv_path=csv_out, jsonl_path=jsonl_out, keys=("frame", "time"), tracked=True
                )
            )
            results = process_frames(
                frames,
                recognizer,
                detect_every=detect_every,
                classify_every=classify_every,
                tracker=tracker,
                keep_images=bool(out or show),
            )
            for result in results:
                n_frames += 1
                for face in result.faces:
                    shares[face.id][face.label] += 1
                    timelines[face.id].append((result.time, [face.probs[n] for n in labels]))
                rows.write((result.index, round(result.time, 3)), result.faces)
                if out or show:
                    elapsed = time.perf_counter() - start
                    fps_shown = n_frames / elapsed if elapsed > 0 else 0.0
                    drawn = _draw(result, annotate, fps_shown)
                    bgr = cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)
                    if out:
                        if writer is None:
                            writer = _open_writer(out, bgr.shape[1], bgr.shape[0])
                        writer.write(bgr)
                    if window is not None and not window.show(bgr):
                        break  # q pressed or the window closed
        except KeyboardInterrupt:
            err.print("[yellow]interrupted: finishing the output files[/]")
        finally:
            if writer is not None:
                writer.release()  # finalises the container: what was recorded stays playable
            files.close()
            if window is not None:
                window.close()
    elapsed = time.perf_counter() - start
    err.print(
        f"{n_frames} frame(s) in {elapsed:.1f} s ({n_frames / max(elapsed, 1e-9):.1f} FPS), "
        f"{len(shares)} face track(s)"
    )
    if report.skipped_frames:
        skipped = report.skipped_frames
        err.print(f"[yellow]skipped {len(skipped)} unreadable frame(s)[/]: {skipped[:20]}")
    if report.ended_early:
        err.print(
            f"[yellow]{source}: the video ended early[/] after {report.frames_read} of "
            f"{report.expected_frames} frames"
        )
    if summary:
        _write_summary(summary, shares, timelines, labels, err)


def _draw(result, annotate, fps: float):
    import cv2

    drawn = annotate(result.image, result.faces)
    for f in result.faces:
        cv2.putText(
            drawn,
            f"#{f.id}",
            (f.box[0], f.box[1] + f.box[3] + 18),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (255, 255, 255),
            2,
            cv2.LINE_AA,
        )
    cv2.putText(
        drawn, f"{fps:.1f} FPS", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA
    )
    return drawn


def _open_writer(path: Path, width: int, height: int):
    import cv2

    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, 25.0, (width, height))
    if not writer.isOpened():
        from ferkit.errors import FerkitError

        raise FerkitError(f"{path}: cannot write this video format (use .mp4 or .avi)")
    return writer


def _write_summary(folder: Path, shares, timelines, labels: list[str], err: Console) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    table = {}
    for face_id, counts in sorted(shares.items()):
        total = sum(counts.values())
        table[face_id] = {label: counts.get(label, 0) / total for label in labels}
        top = ", ".join(f"{k} {v:.0%}" for k, v in sorted(table[face_id].items(), key=lambda kv: -kv[1])[:3])
        err.print(f"face #{face_id}: {total} frames: {top}")
    (folder / "summary.json").write_text(json.dumps({str(k): v for k, v in table.items()}, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        err.print("timeline plots skipped: pip install matplotlib")
        return
    for face_id, series in timelines.items():
        times = [t for t, _ in series]
        probs = list(zip(*[p for _, p in series], strict=True))
        fig, ax = plt.subplots(figsize=(10, 3.2))
        ax.stackplot(times, probs, labels=labels)
        ax.set_xlim(times[0], times[-1] if times[-1] > times[0] else times[0] + 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("probability (smoothed)")
        ax.set_title(f"face #{face_id}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / f"timeline_face{face_id}.png", dpi=90)
        plt.close(fig)
    err.print(f"wrote {folder}/summary.json and {len(timelines)} timeline plot(s)")


def register(root: typer.Typer) -> None:
    root.command()(video)
