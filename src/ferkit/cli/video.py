"""``ferkit video``: expressions in a video file, a camera or a stream, with tracking and smoothing."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ferkit.cli.options import ALIGN_HELP


def video(
    source: str = typer.Argument(..., help="Video file, camera index (0) or stream URL."),
    model: str = typer.Option("default", help="Shipped model name or .onnx file."),
    detector: str = typer.Option(
        "auto",
        help="Face detector: auto (= blazeface), blazeface, blazeface-short (faces near the camera: "
        "webcams; faster), hog, haar.",
    ),
    align: str = typer.Option("none", help=ALIGN_HELP),
    detect_every: int = typer.Option(2, help="Run the detector every N frames; track in between."),
    classify_every: int = typer.Option(1, help="Classify faces every K frames."),
    full_search_every: Optional[float] = typer.Option(
        None,
        min=0.0,
        help="BlazeFace's small-face tiles at most every this many seconds of video, one look at the "
        "frame in between, small faces carried (default: half of --max-age, at most 0.5; 0: every "
        "detection).",
    ),
    smoothing: float = typer.Option(0.3, help="Time constant (s) of the probability smoothing; 0 = off."),
    max_age: float = typer.Option(1.0, help="Forget a face unseen for this many seconds."),
    keep_lost: int = typer.Option(
        0,
        min=0,
        help="Keep labelling and writing a face the detector lost for this many detection rounds "
        "(0: drop it at once, so no box drifts over the background after a cut).",
    ),
    out: Optional[Path] = typer.Option(None, help="Annotated video to write (.mp4 or .avi)."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="One row per face per processed frame."),
    jsonl_out: Optional[Path] = typer.Option(
        None, "--json", "--jsonl", help="One JSON record per face per processed frame (JSON Lines)."
    ),
    summary: Optional[Path] = typer.Option(
        None, help="Folder for per-face emotion shares and timeline plots."
    ),
    show: bool = typer.Option(
        False, help="Show a live window (OpenCV's, else a browser app window); q or closing it stops."
    ),
    max_frames: int = typer.Option(0, help="Stop after this many frames (0 = all)."),
    show_fps: bool = typer.Option(False, help="Draw the processing rate (frames/s) into the video."),
    annotate_style: str = typer.Option("label", help="Annotations: label (box and top class), panel, box."),
    overwrite: bool = typer.Option(
        False, help="Replace existing output files of another kind (never the input)."
    ),
    workers: Optional[int] = typer.Option(
        None,
        min=1,
        help="Frames searched for faces at once, one thread each (default: the CPU cores up to 4 "
        "for a video file; 1 for a camera, a stream or --show, where reading ahead adds delay).",
    ),
) -> None:
    """Recognise expressions frame by frame; Ctrl-C, SIGTERM or SIGHUP stop cleanly and keep everything
    written so far (the video stays playable)."""
    import cv2

    from ferkit.outputs import check_outputs
    from ferkit.progress import progress_iter
    from ferkit.runtime.draw import STYLES

    if annotate_style not in STYLES:
        raise typer.BadParameter(
            f"{annotate_style!r}: use {', '.join(STYLES)}", param_hint="--annotate-style"
        )
    from ferkit.runtime.classifier import default_threads
    from ferkit.runtime.display import open_frame_window
    from ferkit.runtime.draw import annotate_tracked
    from ferkit.runtime.recognize import Recognizer, check_align
    from ferkit.runtime.track import FaceTracker
    from ferkit.runtime.video import (
        SourceReport,
        VideoSummary,
        open_video_writer,
        process_frames,
        read_frames,
        written_video_problem,
    )
    from ferkit.runtime.writers import FaceRowWriter
    from ferkit.utils import stop_signals

    align = check_align(align)  # a wrong value fails before any output is opened
    err = Console(stderr=True, soft_wrap=True)
    check_outputs(
        {
            "--out": (out, "video"),
            "--csv": (csv_out, "csv"),
            "--json": (jsonl_out, "jsonl"),
            "--summary": (summary / "summary.json" if summary else None, "json"),
        },
        [source] if Path(source).exists() else [],
        overwrite=overwrite,
    )
    recognizer = Recognizer(model, detector=detector, align=align)
    labels = list(recognizer.labels)
    report = SourceReport()
    frames = read_frames(source, report)
    if max_frames:
        frames = (f for i, f in enumerate(frames) if i < max_frames)
    tracker = FaceTracker(max_age=max_age, smoothing=smoothing)
    faces_seen = VideoSummary(labels)
    writer = results = shown = None
    files = contextlib.ExitStack()
    n_frames, n_written, start = 0, 0, time.perf_counter()
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
                keep_lost=keep_lost,
                full_search_every=full_search_every,
                workers=workers or (default_threads() if Path(source).is_file() and not show else 1),
            )
            camera = str(source).isdigit()  # a live camera has no end: its window shows the rate

            def frames_to_read() -> int | None:  # known once the file is open
                known = report.expected_frames
                return min(known, max_frames) if known and max_frames else known or max_frames or None

            shown = progress_iter(
                results, description="frames", total=frames_to_read, enabled=None if not camera else False
            )
            for result in shown:
                n_frames += 1
                faces_seen.add(result)
                rows.write((result.index, round(result.time, 3)), result.faces)
                if out or show:
                    elapsed = time.perf_counter() - start
                    rate = (n_frames / elapsed if elapsed > 0 else 0.0) if show_fps else None
                    drawn = annotate_tracked(result.image, result.faces, rate, annotate_style)
                    bgr = cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)
                    if out:
                        if writer is None:  # at the source's own rate, so the result plays in real time
                            writer = open_video_writer(out, bgr.shape[1], bgr.shape[0], report.fps)
                        writer.write(bgr)
                        n_written += 1
                    if window is not None and not window.show(bgr):
                        break  # q pressed or the window closed
        except KeyboardInterrupt:
            err.print("[yellow]interrupted: finishing the output files[/]")
        finally:
            if shown is not None:
                shown.close()  # the bar ends here, also after q or Ctrl-C
            if results is not None:
                results.close()  # its detector threads end with the frame they are on
            if writer is not None:
                writer.release()  # finalises the container: what was recorded stays playable
            files.close()
            if window is not None:
                window.close()
    elapsed = time.perf_counter() - start
    err.print(
        f"{n_frames} frame(s) in {elapsed:.1f} s ({n_frames / max(elapsed, 1e-9):.1f} FPS), "
        f"{len(faces_seen.counts)} face track(s)"
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
        for face_id, shares in faces_seen.shares().items():
            top = ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])[:3])
            err.print(f"face #{face_id}: {sum(faces_seen.counts[face_id].values())} frames: {top}")
        written = faces_seen.write(summary)
        plots = len(written) - 1
        note = "" if plots or not faces_seen.counts else " (timeline plots need: pip install matplotlib)"
        err.print(f"wrote {summary}/summary.json and {plots} timeline plot(s){note}")
    if out and writer is not None:
        problem = written_video_problem(out, n_written)
        if problem:
            err.print(f"[bold red]error:[/] {out}: the annotated video was not written: {problem}")
            raise typer.Exit(1)
        err.print(f"wrote {out} ({n_written} frames)")


def register(root: typer.Typer) -> None:
    root.command()(video)
