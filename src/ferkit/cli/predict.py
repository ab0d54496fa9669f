"""``ferkit predict``: expressions in image files, folders and globs."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table


def predict(
    inputs: list[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    model: str = typer.Option("default", help="Shipped model name or .onnx file."),
    detector: str = typer.Option(
        "auto", help="Face detector: auto (blazeface if installed, else haar), blazeface, hog, haar, none."
    ),
    min_face: int = typer.Option(30, help="Smallest face side to detect (pixels)."),
    align: bool = typer.Option(False, help="Rotate faces so the eyes are level (when found)."),
    tta: str = typer.Option("flip", help="Test-time augmentation per face: flip (default), none, tencrop."),
    json_out: Optional[Path] = typer.Option(
        None, "--json", help="Write one JSON record per face (JSON Lines)."
    ),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write one CSV row per face."),
    annotate_dir: Optional[Path] = typer.Option(None, "--annotate", help="Write annotated images here."),
    strict: bool = typer.Option(False, help="Exit 1 if any input could not be read."),
    batch_size: int = typer.Option(16, help="Images decoded and classified together."),
    engine: str = typer.Option("local", help="local (this process) or ray (Ray Data actors -> Parquet)."),
    out: Optional[str] = typer.Option(
        None, "--out", help="Ray engine: output folder or URI (s3://...) for Parquet partitions."
    ),
    address: Optional[str] = typer.Option(
        None, help="Ray engine: cluster address (auto, ray://host:10001); default a local Ray."
    ),
    workers: Optional[int] = typer.Option(None, help="Ray engine: actors (default: the cluster's CPUs)."),
    partition_size: int = typer.Option(1000, help="Ray engine: files per output partition."),
    video_every: float = typer.Option(1.0, help="Ray engine: seconds between sampled video frames."),
) -> None:
    """Detect faces and recognise their expressions; bad files are reported, never fatal.

    With --engine ray, inputs may also be videos and URIs of any filesystem pyarrow reads
    (s3://, gs://, hdfs://); results go to Parquet (one row per face) and a re-run skips the
    partitions already written.
    """
    if engine == "ray":
        ray_options = dict(model=model, detector=detector, min_face=min_face, align=align, tta=tta)
        ray_options.update(address=address, workers=workers, partition_size=partition_size)
        _predict_ray(inputs, out, strict, batch_size=batch_size, video_every=video_every, **ray_options)
        return
    if engine != "local":
        raise typer.BadParameter(f"unknown engine {engine!r}: use local or ray", param_hint="--engine")
    for name, value in (("--out", out), ("--address", address), ("--workers", workers)):
        if value is not None:
            raise typer.BadParameter(f"{name} is for --engine ray", param_hint=name)
    from ferkit.progress import progress_iter
    from ferkit.runtime.batch import expand_inputs, output_name, predict_files
    from ferkit.runtime.recognize import Recognizer
    from ferkit.utils import atomic_path

    recognizer = Recognizer(model, detector=detector, min_face=min_face, align=align, tta=tta)
    labels = list(recognizer.labels)
    paths, missing = expand_inputs(inputs)
    if annotate_dir:
        annotate_dir.mkdir(parents=True, exist_ok=True)
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title="faces")
    for col in ("file", "box (x, y, w, h)", "label", "confidence"):
        table.add_column(col)
    records, failed, n_faces, used = [], list(missing), 0, set()
    results = predict_files(paths, recognizer, batch_size=batch_size, keep_images=annotate_dir is not None)
    for result in progress_iter(results, description="images", total=len(paths), enabled=None):
        if result.error:
            failed.append(result)
            continue
        for face in result.faces:
            n_faces += 1
            records.append({"file": result.path, **face.to_dict()})
            if len(paths) <= 50:
                table.add_row(result.path, str(face.box), face.label, f"{face.confidence:.1%}")
        if annotate_dir and result.image is not None:
            import cv2

            from ferkit.runtime.draw import annotate

            drawn = annotate(result.image, result.faces)
            ok, buf = cv2.imencode(".png", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            with atomic_path(output_name(result.path, annotate_dir, used)) as tmp:
                tmp.write_bytes(buf.tobytes())
    if len(paths) <= 50:
        console.print(table)
    if json_out:
        with atomic_path(json_out) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    if csv_out:
        with atomic_path(csv_out) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "x", "y", "w", "h", "score", "label", *labels])
            for r in records:
                writer.writerow(
                    [
                        r["file"],
                        *r["box"],
                        f"{r['score']:.4f}",
                        r["label"],
                        *(f"{r['probs'][n]:.6f}" for n in labels),
                    ]
                )
    err = Console(stderr=True, soft_wrap=True)  # one line per skipped file, greppable
    read_ok = len(paths) - (len(failed) - len(missing))
    err.print(f"{read_ok} image(s) read, {n_faces} face(s) found, {len(failed)} failed")
    _list_failures(err, [(r.path, r.error) for r in failed])
    if strict and failed:
        raise typer.Exit(1)


def _predict_ray(inputs: list[str], out: str | None, strict: bool, **options) -> None:
    from ferkit.errors import FerkitError
    from ferkit.scale import predict_ray

    if not out:
        raise typer.BadParameter("the Ray engine writes Parquet: give an output folder", param_hint="--out")
    err = Console(stderr=True, soft_wrap=True)
    try:
        report = predict_ray(inputs, out, **options)
    except FerkitError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
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
        err.print(f"  [yellow]skipped[/] {path}: {problem}", highlight=False)
    if len(failed) > most:
        err.print(f"  ... and {len(failed) - most} more")


def register(root: typer.Typer) -> None:
    root.command()(predict)
