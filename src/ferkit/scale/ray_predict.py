"""Batch recognition on Ray Data: many images and videos -> Parquet, one row per face.

Usage::

    from ferkit.scale import predict_ray
    report = predict_ray(["photos/", "s3://bucket/faces/"], "s3://bucket/out/", address="auto")
    report.images, report.faces, report.failed, report.skipped_partitions

How it runs:

- inputs are expanded on the driver: local files, folders (recursive) and globs, or any URI
  that pyarrow's filesystems understand (``s3://``, ``gs://``, ``hdfs://``, ``file://``);
- the sorted file list is cut into partitions of ``partition_size`` files, remembered in
  ``OUT/_partitions.json`` so a re-run assigns the same files to the same partitions (files
  added later go to new partitions);
- a Ray Data ``map_batches`` with an actor pool hands each partition to one actor; an actor
  builds one :class:`~ferkit.runtime.recognize.Recognizer` (one ONNX session) for its life,
  reads its files through pyarrow, recognises them and writes ``OUT/part-NNNNN.parquet``
  (temporary name, then moved, so a partition file is whole or absent);
- partitions whose file already exists are skipped: an interrupted job continues.

Every input appears in the output: a row per face, one row with empty face columns when an
image has no face, and one row with the ``error`` column set when a file cannot be read (a
failed input never fails the job). Videos give rows per face per sampled frame (every
``video_every`` seconds), with ``frame`` and ``timestamp`` set.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.errors import DataError, FerkitError
from ferkit.imageio import decode_image
from ferkit.scale.sources import (
    expand_sources,
    filesystem,
    is_uri,
    is_video_name,
    join_uri,
    plan_partitions,
    read_bytes,
)

MANIFEST = "_partitions.json"


def schema(labels: Iterable[str]):
    """The Parquet schema of every partition: same columns whether or not faces were found."""
    import pyarrow as pa

    fields = [
        pa.field("path", pa.string()),
        pa.field("frame", pa.int64()),
        pa.field("timestamp", pa.float64()),
        pa.field("face", pa.int32()),
        pa.field("x", pa.int32()),
        pa.field("y", pa.int32()),
        pa.field("w", pa.int32()),
        pa.field("h", pa.int32()),
        pa.field("score", pa.float32()),
        pa.field("label", pa.string()),
    ]
    fields += [pa.field(name, pa.float32()) for name in labels]
    fields.append(pa.field("error", pa.string()))
    return pa.schema(fields)


def face_rows(path: str, faces, labels, frame: int | None = None, t: float | None = None) -> list[dict]:
    """Rows for one image or frame: one per face, or one with empty face columns when none."""
    if not faces:
        return [{"path": path, "frame": frame, "timestamp": t}]
    return [
        {"path": path, "frame": frame, "timestamp": t, "face": k, **face.row(labels)}
        for k, face in enumerate(faces)
    ]


@dataclass
class RecognizeOptions:
    """What every worker builds its Recognizer from: a shipped model's name (workers have
    ferkit installed), or the bytes of the user's ``.onnx`` file, which travel with the job."""

    model_bytes: bytes | None
    detector: str = "auto"
    min_face: int = 20
    align: bool | str = "none"
    tta: str = "flip"
    threads: int = 1
    batch_size: int = 16
    video_every: float = 1.0
    model_name: str | None = None


class PartitionWorker:
    """A Ray actor: one Recognizer for its life, one Parquet file per partition it is given."""

    def __init__(self, options: RecognizeOptions, out: str):
        from ferkit.runtime.classifier import OnnxClassifier, load_model
        from ferkit.runtime.recognize import Recognizer

        if options.model_name:
            clf = load_model(options.model_name, threads=options.threads)
        else:  # the user's model travelled as bytes: a private temp file while ONNX Runtime reads it
            fd, name = tempfile.mkstemp(suffix=".onnx", prefix="ferkit-model-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(options.model_bytes or b"")
                clf = OnnxClassifier(name, threads=options.threads)
            finally:
                os.unlink(name)  # the session holds the model; no copy is left behind
        self.recognizer = Recognizer(  # threads: BlazeFace's sessions too, one CPU per actor
            clf,
            detector=options.detector,
            min_face=options.min_face,
            align=options.align,
            tta=options.tta,
            threads=options.threads,
        )
        self.options = options
        self.labels = list(self.recognizer.labels)
        self.schema = schema(self.labels)
        self.out = out

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        summary: dict[str, list] = {k: [] for k in ("part", "files", "faces", "errors")}
        for part, paths in zip(batch["part"], batch["paths"], strict=True):
            rows = list(self.recognize_paths(list(paths)))
            write_partition(rows, self.schema, self.out, int(part))
            summary["part"].append(int(part))
            summary["files"].append(len(paths))
            summary["faces"].append(sum(1 for r in rows if r.get("face") is not None))
            summary["errors"].append(json.dumps([[r["path"], r["error"]] for r in rows if r.get("error")]))
        return summary

    def recognize_paths(self, paths: list[str]) -> Iterator[dict]:
        images, pending = [], []
        for path in paths:
            if is_video_name(path):
                yield from self.recognize_video(path)
                continue
            try:
                images.append(decode_image(read_bytes(path), path, color="rgb"))
                pending.append(path)
            except DataError as exc:
                yield {"path": path, "error": exc.problem}
            if len(images) >= self.options.batch_size:
                yield from self._flush(images, pending)
                images, pending = [], []
        yield from self._flush(images, pending)

    def _flush(self, images, paths) -> Iterator[dict]:
        if not images:
            return
        for path, faces in zip(paths, self.recognizer.recognize_batch(images), strict=True):
            yield from face_rows(path, faces, self.labels)

    def recognize_video(self, path: str) -> Iterator[dict]:
        from ferkit.runtime.video import SourceReport, read_frames

        local, cleanup = path, None
        try:
            if is_uri(path):  # OpenCV reads local files: copy it down first
                fd, local = tempfile.mkstemp(suffix=Path(path).suffix)
                with os.fdopen(fd, "wb") as f:
                    f.write(read_bytes(path))
                cleanup = local
            report = SourceReport()
            next_t, n = 0.0, 0
            for index, t, image in read_frames(local, report):
                if t + 1e-6 < next_t:
                    continue
                next_t = t + self.options.video_every
                n += 1
                yield from face_rows(path, self.recognizer.recognize(image), self.labels, index, t)
            if n == 0:
                yield {"path": path, "error": "no readable frame"}
            elif report.ended_early:
                yield {
                    "path": path,
                    "error": f"video ended early: {report.frames_read} of {report.expected_frames} frames "
                    "read (rows before this one are valid)",
                }
        except FerkitError as exc:
            yield {"path": path, "error": str(exc).removeprefix(f"{local}: ")}
        finally:
            if cleanup:
                os.unlink(cleanup)


def partition_name(part: int) -> str:
    return f"part-{part:05d}.parquet"


def write_partition(rows: list[dict], table_schema, out: str, part: int) -> None:
    """Write one partition under a temporary name, then move it in place (whole or absent)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {f.name: [r.get(f.name) for r in rows] for f in table_schema}
    table = pa.table(columns, schema=table_schema)
    fs, base = filesystem(out)
    final = join_uri(base, partition_name(part))
    tmp = join_uri(base, f".{partition_name(part)}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp, filesystem=fs)
    fs.move(tmp, final)


@dataclass
class RayReport:
    """What a Ray batch job did (this run), and where the output is."""

    out: str
    partitions: int
    done_partitions: int  # written by this run
    skipped_partitions: int  # already there from an earlier run
    images: int  # files handled by this run
    faces: int
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input, problem), this run + missing inputs


def _read_manifest(fs, base: str) -> dict | None:
    import pyarrow.fs as pafs

    path = join_uri(base, MANIFEST)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return json.loads(f.read().decode())


def _write_manifest(fs, base: str, manifest: dict) -> None:
    tmp = join_uri(base, f".{MANIFEST}.{uuid.uuid4().hex}.tmp")
    with fs.open_output_stream(tmp) as f:
        f.write(json.dumps(manifest, indent=1).encode())
    fs.move(tmp, join_uri(base, MANIFEST))


def predict_ray(
    inputs: Iterable[str],
    out: str | os.PathLike,
    *,
    model: str | os.PathLike = "default",
    detector: str = "auto",
    min_face: int = 20,
    align: bool | str = "none",
    tta: str = "flip",
    address: str | None = None,
    workers: int | None = None,
    partition_size: int = 1000,
    batch_size: int = 16,
    video_every: float = 1.0,
    progress: bool | None = None,
    ray_init: dict[str, Any] | None = None,
) -> RayReport:
    """Recognise every image/video in ``inputs`` on a Ray cluster; Parquet partitions in ``out``.

    ``address``: ``None`` starts (or reuses) a local Ray; ``"auto"`` joins the cluster this
    machine belongs to; ``"ray://host:10001"`` connects a client. ``workers``: actors (one CPU and
    one ONNX session each), default the cluster's CPU count.
    """
    import pyarrow.fs as pafs

    from ferkit.card import ModelCard
    from ferkit.progress import progress_iter
    from ferkit.runtime.catalog import WEIGHTS_DIR, resolve_model

    if partition_size < 1:
        raise FerkitError(f"partition_size must be at least 1, not {partition_size}")
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise FerkitError('the Ray engine needs Ray: pip install "ferkit[scale]"') from exc

    model_path = resolve_model(model)
    labels = ModelCard.read(model_path).labels  # a bad model fails here, not on every worker
    shipped = model_path.parent == WEIGHTS_DIR
    if not shipped and model_path.suffix != ".onnx":
        raise FerkitError(f"{model}: the Ray engine takes a shipped model or an .onnx file")
    options = RecognizeOptions(
        None if shipped else model_path.read_bytes(),
        detector,
        min_face,
        align,
        tta,
        batch_size=batch_size,
        video_every=video_every,
        model_name=model_path.stem if shipped else None,
    )
    paths, missing = expand_sources([str(i) for i in inputs])
    out = str(out)
    fs, base = filesystem(out)
    fs.create_dir(base, recursive=True)
    manifest = _read_manifest(fs, base)
    if manifest and manifest.get("labels") != list(labels):
        raise FerkitError(
            f"{out}: holds results of a model with labels {manifest.get('labels')}, not {list(labels)};"
            " use a new output folder"
        )
    parts = plan_partitions(paths, manifest["partitions"] if manifest else None, partition_size)
    _write_manifest(fs, base, {"labels": list(labels), "partitions": parts})
    done = {
        i
        for i in range(len(parts))
        if fs.get_file_info(join_uri(base, partition_name(i))).type == pafs.FileType.File
    }
    wanted = set(paths)
    todo = [i for i in range(len(parts)) if i not in done and any(p in wanted for p in parts[i])]
    report = RayReport(out, len(parts), 0, len(done), 0, 0, failed=list(missing))
    if not todo:
        return report

    started = False
    if not ray.is_initialized():
        verbose = bool(os.environ.get("FERKIT_VERBOSE"))
        # Ray's INFO/WARNING lines (a local instance started, execution plans, ...) stay out of
        # successful runs unless FERKIT_VERBOSE=1 (ferkit -v); failures still raise here.
        kwargs = {
            "address": address,
            "include_dashboard": False,
            "log_to_driver": verbose,
            "logging_level": logging.INFO if verbose else logging.ERROR,
        }
        kwargs.update(ray_init or {})
        ray.init(**kwargs)
        if not verbose:
            logging.getLogger("ray.data").setLevel(logging.ERROR)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours below counts files, with rate and ETA
        n_workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        n_workers = max(1, min(n_workers, len(todo)))
        items = [{"part": i, "paths": parts[i]} for i in todo]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        with warnings.catch_warnings():  # max_restarts has no named parameter in Ray 2.60 yet
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            results = ds.map_batches(
                PartitionWorker,
                fn_constructor_kwargs={"options": options, "out": out},
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=n_workers),
                num_cpus=1,
                # No actor restarts: Ray warns (an ERROR line) that restarting an actor whose
                # constructor arguments sit in the object store may fail anyway; a failed job is
                # re-run instead, and it skips the partitions already written.
                max_restarts=0,
            )
        sizes = {i: len(parts[i]) for i in todo}
        rows = results.iter_rows()
        for row in progress_iter(
            rows, description=f"partitions ({n_workers} Ray workers)", total=len(todo), enabled=progress
        ):
            report.done_partitions += 1
            report.images += sizes[int(row["part"])]
            report.faces += int(row["faces"])
            report.failed += [tuple(e) for e in json.loads(row["errors"])]
    finally:
        if started:
            ray.shutdown()
    return report


def read_results(out: str | os.PathLike):
    """All partitions of a Ray job's output as one pandas DataFrame (sorted by path, frame, face)."""
    import pyarrow.dataset as pads

    fs, base = filesystem(str(out))
    dataset = pads.dataset(base, filesystem=fs, format="parquet", exclude_invalid_files=True)
    frame = dataset.to_table().to_pandas()
    return frame.sort_values(["path", "frame", "face"], na_position="first").reset_index(drop=True)
