"""``ferkit predict``: expressions in image files, folders and globs."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ferkit.cli.options import ALIGN_HELP
from ferkit.utils import shown


def predict(
    inputs: list[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    model: str = typer.Option("default", help="Shipped model name or .onnx file."),
    detector: str = typer.Option(
        "auto",
        help="Face detector: auto (= blazeface), blazeface, blazeface-short (faces near the camera: "
        "webcams, selfies; faster), hog, haar, none (inputs are face crops).",
    ),
    tiles: str = typer.Option(
        "auto",
        help="BlazeFace tiling: auto (strips, and images where one look found no face or a small one: "
        "groups, collages), always (every image), never (one look: fastest).",
    ),
    min_face: int = typer.Option(20, help="Smallest face side to detect (pixels)."),
    align: str = typer.Option("none", help=ALIGN_HELP),
    tta: str = typer.Option("flip", help="Test-time augmentation per face: flip (default), none, tencrop."),
    json_out: Optional[Path] = typer.Option(
        None, "--json", help="Write one JSON record per face (JSON Lines)."
    ),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write one CSV row per face."),
    annotate_dir: Optional[Path] = typer.Option(None, "--annotate", help="Write annotated images here."),
    annotate_style: str = typer.Option(
        "panel",
        help="Annotations: panel (label, and class bars where there is room), label (box and top "
        "class), box (boxes only).",
    ),
    strict: bool = typer.Option(False, help="Exit 1 if any input could not be read."),
    overwrite: bool = typer.Option(
        False, help="Replace existing output files of another kind (never an input)."
    ),
    resume: bool = typer.Option(
        False,
        help="Append to existing --csv/--json outputs, skipping files already in them "
        "(files with no face or that failed are read again).",
    ),
    batch_size: int = typer.Option(16, min=1, help="Images decoded and classified together."),
    max_pixels: Optional[int] = typer.Option(
        None, min=1, help="Refuse images over this many pixels (default $FERKIT_MAX_PIXELS or 50M)."
    ),
    engine: str = typer.Option("local", help="local (this process) or ray (Ray Data actors -> Parquet)."),
    out: Optional[str] = typer.Option(
        None, "--out", help="Ray engine: output folder or URI (s3://...) for Parquet partitions."
    ),
    address: Optional[str] = typer.Option(
        None, help="Ray engine: cluster address (auto, ray://host:10001); default a local Ray."
    ),
    workers: Optional[int] = typer.Option(
        None,
        min=1,
        help="Images recognised at once, one thread each (default: the CPU cores up to 4; 1 for "
        "an ensemble); Ray engine: actors (default: the cluster's CPUs).",
    ),
    partition_size: int = typer.Option(1000, help="Ray engine: files per output partition."),
    video_every: float = typer.Option(1.0, help="Ray engine: seconds between sampled video frames."),
) -> None:
    """Detect faces and recognise their expressions; bad files are reported, never fatal.

    CSV/JSON rows are written as each image finishes: Ctrl-C, SIGTERM or SIGHUP keep what
    was done, and --resume continues.

    With --engine ray, inputs may also be videos and URIs of any filesystem pyarrow reads
    (s3://, gs://, hdfs://); results go to Parquet (one row per face) and a re-run skips the
    partitions already written.
    """
    from ferkit.runtime.recognize import check_align

    align = check_align(align)  # a wrong value fails before any work
    if engine == "ray":
        if tiles != "auto":
            raise typer.BadParameter("--tiles is for --engine local", param_hint="--tiles")
        ray_options = dict(model=model, detector=detector, min_face=min_face, align=align, tta=tta)
        ray_options.update(address=address, workers=workers, partition_size=partition_size)
        _predict_ray(inputs, out, strict, batch_size=batch_size, video_every=video_every, **ray_options)
        return
    if engine != "local":
        raise typer.BadParameter(f"unknown engine {engine!r}: use local or ray", param_hint="--engine")
    for name, value in (("--out", out), ("--address", address)):
        if value is not None:
            raise typer.BadParameter(f"{name} is for --engine ray", param_hint=name)
    from ferkit.runtime.draw import STYLES

    if annotate_style not in STYLES:
        raise typer.BadParameter(
            f"{annotate_style!r}: use {', '.join(STYLES)}", param_hint="--annotate-style"
        )
    if resume and not (csv_out or json_out):
        raise typer.BadParameter("--resume continues --csv/--json outputs: name them", param_hint="--resume")
    from ferkit.errors import DataError
    from ferkit.outputs import check_outputs
    from ferkit.runtime.batch import auto_workers, expand_inputs
    from ferkit.runtime.detect import is_blazeface
    from ferkit.runtime.recognize import Recognizer
    from ferkit.runtime.writers import FaceRowWriter
    from ferkit.utils import stop_signals

    tiling = {"tiles": tiles} if is_blazeface(detector) else {}
    if tiles != "auto" and not tiling:
        raise typer.BadParameter(
            f"--tiles is for the blazeface detector, not {detector}", param_hint="--tiles"
        )
    err = Console(stderr=True, soft_wrap=True)  # one line per skipped file, greppable
    paths, problems = expand_inputs(inputs)
    named = [r for r in problems if r.path in inputs]
    if named:  # a named input that is not there (or not readable) fails the command before any work
        for r in named:
            err.print(f"[bold red]error:[/] {escape(f'{shown(r.path)}: {r.error}')}", highlight=False)
        raise typer.Exit(1)
    unreadable = [r for r in problems if r.path not in inputs]  # folders inside: counted as failed
    check_outputs(
        {"--csv": (csv_out, "csv"), "--json": (json_out, "jsonl"), "--annotate": (annotate_dir, "folder")},
        [*inputs, *paths],
        overwrite=overwrite,
    )
    recognizer = Recognizer(model, detector=detector, min_face=min_face, align=align, tta=tta, **tiling)
    with FaceRowWriter(recognizer.labels, csv_path=csv_out, jsonl_path=json_out, resume=resume) as writer:
        if writer.done:
            err.print(f"resuming: {len(writer.done)} file(s) already in the outputs are skipped")
        todo = [p for p in paths if p not in writer.done]
        with stop_signals():
            try:
                summary = _predict_local(
                    todo,
                    recognizer,
                    writer,
                    annotate_dir,
                    batch_size,
                    max_pixels,
                    overwrite,
                    annotate_style,
                    workers or auto_workers(recognizer),
                )
                stopped = False
            except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: rows so far are kept
                summary, stopped = getattr(exc, "summary", None), True
            except DataError as exc:  # an output could not be written (a full disk)
                err.print(
                    f"[bold red]error:[/] {escape(str(exc))}; the rows written so far are kept "
                    "(continue with --resume)",
                    highlight=False,
                )
                raise typer.Exit(1) from None
    if summary is None:  # stopped before the first image finished
        summary = _Summary()
    read_ok, n_faces, failed = summary.read, summary.faces, unreadable + summary.failed
    if stopped:
        err.print(f"[yellow]stopped[/] after {read_ok + len(summary.failed)} of {len(todo)} file(s)")
    err.print(f"{read_ok} image(s) read, {n_faces} face(s) found, {len(failed)} failed")
    outputs = [str(p) for p in (csv_out, json_out, annotate_dir) if p]
    if outputs:
        err.print(f"results: {', '.join(outputs)}" + ("" if not stopped else " (continue with --resume)"))
    elif len(todo) > TABLE_LIMIT:
        err.print(f"(no table for more than {TABLE_LIMIT} images: write the results with --csv or --json)")
    _list_failures(err, [(r.path, r.error) for r in failed])
    if stopped:
        raise typer.Exit(130)
    if strict and failed:
        raise typer.Exit(1)


TABLE_LIMIT = 50


@dataclass
class _Summary:
    read: int = 0
    faces: int = 0
    failed: list = field(default_factory=list)


def _predict_local(
    paths,
    recognizer,
    writer,
    annotate_dir,
    batch_size: int,
    max_pixels,
    overwrite: bool = False,
    style: str = "panel",
    workers: int = 1,
) -> _Summary:
    """Recognise, write rows as each image finishes, print a table for small runs."""
    from ferkit.errors import FerkitError
    from ferkit.progress import progress_iter
    from ferkit.runtime.batch import output_name, predict_files

    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title="faces")
    for col in ("file", "box (x, y, w, h)", "label", "confidence"):
        table.add_column(col)
    summary, used = _Summary(), set()
    if annotate_dir:
        annotate_dir.mkdir(parents=True, exist_ok=True)
    results = predict_files(
        paths,
        recognizer,
        batch_size=batch_size,
        keep_images=annotate_dir is not None,
        max_pixels=max_pixels,
        workers=workers,
    )
    try:
        for result in progress_iter(results, description="images", total=len(paths), enabled=None):
            if result.error:
                summary.failed.append(result)
                continue
            summary.read += 1
            summary.faces += len(result.faces)
            writer.write(result.path, result.faces)
            if len(paths) <= TABLE_LIMIT:
                for face in result.faces:
                    table.add_row(shown(result.path), str(face.box), face.label, f"{face.confidence:.1%}")
            if annotate_dir and result.image is not None:
                try:
                    _write_annotated(result, output_name(result.path, annotate_dir, used), overwrite, style)
                except FerkitError as exc:  # its rows are written; the copy is not: say so, go on
                    result.error = f"annotated copy not written: {exc}"
                    summary.failed.append(result)
    except KeyboardInterrupt as exc:
        exc.summary = summary  # type: ignore[attr-defined]  # what was done before the stop
        raise
    finally:
        results.close()  # workers stop after the chunks they are on (a stop, a failed write)
    if len(paths) <= TABLE_LIMIT:
        console.print(table)
    return summary


def _write_annotated(result, path: Path, overwrite: bool = False, style: str = "panel") -> None:
    import cv2

    from ferkit.outputs import annotated_target, mark_png
    from ferkit.runtime.draw import annotate
    from ferkit.utils import atomic_path

    target = annotated_target(path, overwrite)  # never a file ferkit did not write
    drawn = annotate(result.image, result.faces, style)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    with atomic_path(target) as tmp:
        tmp.write_bytes(mark_png(buf.tobytes()))


def _predict_ray(inputs: list[str], out: str | None, strict: bool, **options) -> None:
    from ferkit.errors import FerkitError
    from ferkit.scale import predict_ray

    if not out:
        raise typer.BadParameter("the Ray engine writes Parquet: give an output folder", param_hint="--out")
    err = Console(stderr=True, soft_wrap=True)
    try:
        report = predict_ray(inputs, out, **options)
    except FerkitError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    err.print(
        f"{report.done_partitions} partition(s) written, {report.skipped_partitions} already done; "
        f"{report.images} file(s), {report.faces} face(s), {len(report.failed)} failed -> {report.out}"
    )
    _list_failures(err, report.failed)
    if strict and report.failed:
        raise typer.Exit(1)


def _list_failures(err: Console, failed: list, most: int = 50) -> None:
    """One greppable line per skipped input, the first ``most`` of them."""
    for path, problem in failed[:most]:
        err.print(f"  [yellow]skipped[/] {escape(f'{shown(path)}: {problem}')}", highlight=False)
    if len(failed) > most:
        err.print(f"  ... and {len(failed) - most} more")


def register(root: typer.Typer) -> None:
    root.command()(predict)
