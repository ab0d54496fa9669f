"""Evaluate models (and their ensemble) on a dataset split; write JSON, Markdown and plots.

Usage::

    result = evaluate_models(["fast", "runs/vgg_fer-x/"], "fer2013.tar.gz", tta="flip")
    write_report(result, "eval-out/")
    result.entries[-1].report.accuracy      # the ensemble, when there are several models

Members run on PublicTest too when ensemble weights are fitted (``fit_weights=True``):
weights are never fitted on the split being reported.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.card import metrics_from_eval
from ferkit.data import FaceDataset, load_dataset
from ferkit.errors import FerkitError
from ferkit.evaluate.align import align_probs
from ferkit.evaluate.ensemble import combine, fit_weights
from ferkit.evaluate.metrics import (
    ClassificationReport,
    bootstrap_accuracy_ci,
    classification_report,
    expected_calibration_error,
)
from ferkit.runtime.classifier import load_model
from ferkit.runtime.tta import check_tta, predict_tta
from ferkit.utils import atomic_path


@dataclass
class EvalEntry:
    name: str
    report: ClassificationReport
    accuracy_ci95: tuple[float, float]
    ece: float
    reliability: list[dict]
    ms_per_face: float | None = None
    weights: list[float] | None = None  # ensembles only
    card: dict[str, Any] = field(default_factory=dict)
    faces_found: int | None = None  # through detection: photos where a face was found


@dataclass
class EvalResult:
    data: str
    split: str
    tta: str
    labels: list[str]
    variant: str
    entries: list[EvalEntry]
    ignored: list[str] = field(default_factory=list)  # model classes dropped before scoring
    detector: str | None = None  # through detection: the detector, and the alignment used
    align: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _variant_data(ds: FaceDataset, variant: str) -> FaceDataset:
    if variant == "fer2013":
        return ds
    return ds.with_variant(variant)


NO_FACE = "no face"  # the extra column of an evaluation through detection


def _entry(
    name: str, labels: np.ndarray, probs: np.ndarray, label_names: list[str], **extra: Any
) -> EvalEntry:
    report = classification_report(labels, probs, label_names)
    found = np.ones(len(labels), bool)
    if label_names and label_names[-1] == NO_FACE:  # a photo without a face counts wrong,
        found = probs[:, -1] < 1  # but not in the macro-F1's mean or the calibration
        f1 = [m.f1 for n, m in report.per_class.items() if n != NO_FACE]
        report = dataclasses.replace(report, macro_f1=float(np.mean(f1)))
        extra["faces_found"] = int(found.sum())
    ece, bins = expected_calibration_error(labels[found], probs[found])
    ci = bootstrap_accuracy_ci(labels, probs.argmax(1))
    return EvalEntry(name, report, ci, ece, bins, **extra)


def _photo_faces(test: FaceDataset, detector: str, min_face: int = 20) -> list:
    """The detector's first face in each photo of ``test`` (None where it finds none)."""
    from ferkit.progress import progress_iter
    from ferkit.runtime.recognize import make_detector

    det = make_detector(detector, min_face)
    return [
        (found[0] if found else None)
        for found in (det.detect(img) for img in progress_iter(test.images, description="detecting faces"))
    ]


def _detected_probs(predictor, test: FaceDataset, faces: list, align: str, tta: str) -> np.ndarray:
    """(N, K) probabilities of the faces found, framed as ``Recognizer`` frames them."""
    from ferkit.framing import DETECTOR_MARGIN
    from ferkit.runtime.recognize import crop_face

    size = predictor.input_size
    crops = [
        crop_face(img, d, size, DETECTOR_MARGIN, align)
        for img, d in zip(test.images, faces, strict=True)
        if d
    ]
    if not crops:
        return np.zeros((0, len(predictor.labels)), np.float32)
    return _classified(predictor, np.stack(crops), tta)


def _classified(predictor, faces: np.ndarray, tta: str) -> np.ndarray:
    """``predict_tta`` under a progress bar named after the model (on a terminal), in chunks
    that end where its own batches end, so the batches and the numbers are the same as in
    one call."""
    from ferkit.progress import progress_iter
    from ferkit.runtime.tta import BATCH_SIZE, tta_views

    if len(faces) == 0:
        return predict_tta(predictor, faces, tta)
    per_batch = max(1, BATCH_SIZE // len(tta_views(faces[:1], tta)))  # predict_tta's faces a batch
    step = per_batch * max(1, 256 // per_batch)  # about 256 faces a chunk
    chunks = (faces[i : i + step] for i in range(0, len(faces), step))
    shown = progress_iter(chunks, description=predictor.name, total=len(faces), units=len)
    return np.concatenate([predict_tta(predictor, chunk, tta) for chunk in shown])


class ModelFaces:
    """A split's faces as the runtime frames them for each model: a folder of photos is read
    again from its files at the model's own size and colour (face-api's 112 px RGB network
    read SFEW Val at 45.71%, against 42.23% from the 48 px grey faces enlarged); faces that
    are only stored small (FER-2013's 48 px) are framed up as training frames them."""

    def __init__(self, data, variant: str, ds: FaceDataset):
        from ferkit.data.load import detect_format

        self.data, self.variant, self.ds = data, variant, ds
        self.photos = not isinstance(data, FaceDataset) and detect_format(Path(data)) == "images"
        self._loaded: dict[tuple[int, str], FaceDataset] = {}

    def faces(self, predictor, split: str) -> np.ndarray:
        from ferkit.framing import frame_face

        size = predictor.input_size
        card = getattr(predictor, "card", None)
        color = getattr(card, "color", "gray")
        test = self.ds.pick(split)
        faces = test.images
        stored = (faces.shape[1], "rgb" if faces.ndim == 4 else "gray")
        if (size, color) == stored:
            return faces
        if self.photos:
            if (size, color) not in self._loaded:
                self._loaded[size, color] = _variant_data(
                    load_dataset(self.data, size=size, color=color), self.variant
                )
            other = self._loaded[size, color].pick(split)
            if not np.array_equal(other.labels, test.labels):
                raise FerkitError(f"{self.data}: the folder changed while it was being evaluated")
            return other.images
        if faces.shape[1] == size:
            return faces  # only the colour differs: the model greys or repeats the channel itself
        return np.stack([frame_face(f, None, size) for f in faces])


def evaluate_models(
    models: list[str],
    data: str | os.PathLike | FaceDataset,
    *,
    split: str = "PrivateTest",
    tta: str = "none",
    variant: str = "fer2013",
    fit_ensemble_weights: bool = False,
    val_split: str = "PublicTest",
    ignore: tuple[str, ...] | list[str] = (),
    detector: str | None = None,
    align: str = "none",
) -> EvalResult:
    """Every model (and their mean, when several) on ``split`` of ``data``.

    With ``detector`` the data must be a folder (or zip) of photos: each goes through the
    detector and the framing (``align``) as a user's photo does, the detector's first face is
    classified, and a photo without a face counts as wrong (a ``no face`` column)."""
    if not models:
        raise FerkitError("give at least one model to evaluate")
    check_tta(tta)  # before the dataset is loaded
    if detector is not None:
        from ferkit.data.load import detect_format
        from ferkit.runtime.recognize import check_align

        align = check_align(align)
        if isinstance(data, FaceDataset) or detect_format(Path(data)) != "images":
            raise FerkitError(f"{data}: evaluation through a detector needs a folder (or zip) of photos")
        if fit_ensemble_weights:
            raise FerkitError("fitting ensemble weights through a detector is not supported")
        from ferkit.data.folder import read_image_folder

        ds = read_image_folder(data, size=None, color="rgb", show_progress=None)
    else:
        ds = data if isinstance(data, FaceDataset) else load_dataset(data)
    ds = _variant_data(ds, variant)
    test = ds.pick(split)
    label_set = ds.label_set
    names = list(label_set.names) + ([NO_FACE] if detector else [])
    faces = _photo_faces(test, detector) if detector else None
    predictors = [load_model(m) for m in models]
    entries, test_probs, val_probs = [], [], []
    val = None
    if fit_ensemble_weights and len(models) > 1:
        if split == val_split:
            raise FerkitError(f"ensemble weights are fitted on {val_split}; evaluate on another split")
        val = ds.pick(val_split)
    framed = ModelFaces(data, variant, ds)
    for predictor in predictors:
        start = time.perf_counter()
        if faces is None:
            raw = _classified(predictor, framed.faces(predictor, split), tta)
        else:
            raw = _detected_probs(predictor, test, faces, align, tta)
        ms = (time.perf_counter() - start) * 1000 / max(len(raw), 1)
        probs = align_probs(raw, predictor.labels, label_set, variant, source=predictor.name, ignore=ignore)
        if faces is not None:  # the photos without a face: all weight on "no face"
            found = np.array([f is not None for f in faces], bool)
            full = np.zeros((len(test), len(names)), np.float32)
            full[found, :-1], full[~found, -1] = probs, 1.0
            probs = full
        test_probs.append(probs)
        card = predictor.card.to_dict() if getattr(predictor, "card", None) else {}
        entries.append(_entry(predictor.name, test.labels, probs, names, ms_per_face=ms, card=card))
        if val is not None:
            val_probs.append(
                align_probs(
                    predict_tta(predictor, framed.faces(predictor, val_split), tta),
                    predictor.labels,
                    label_set,
                    variant,
                    ignore=ignore,
                )
            )
    if len(predictors) > 1:
        weights = fit_weights(val_probs, val.labels) if val is not None else None
        ens = combine(test_probs, weights)
        w = [float(x) for x in (weights if weights is not None else np.full(len(models), 1 / len(models)))]
        name = "ensemble (weights fitted on " + val_split + ")" if weights is not None else "ensemble (mean)"
        entries.append(_entry(name, test.labels, ens, names, weights=w))
    return EvalResult(
        str(getattr(data, "source", data)),
        split,
        tta,
        names,
        variant,
        entries,
        list(ignore),
        detector,
        align if detector else None,
    )


def card_metrics(
    model: str | os.PathLike,
    data: str | os.PathLike | FaceDataset,
    *,
    split: str = "PrivateTest",
    ttas: tuple[str, ...] | list[str] = ("none", "flip"),
    variant: str = "fer2013",
) -> dict[str, Any]:
    """A model card's ``metrics`` for ``model`` on ``data``: one entry per TTA
    (``PrivateTest``, ``PrivateTest_tta_flip``, ...). A path is passed on as a path, so a
    folder of photos is read at the model's own size and colour (the cache keeps it cheap)."""
    metrics: dict[str, Any] = {}
    for tta in dict.fromkeys(ttas):
        result = evaluate_models([str(model)], data, split=split, tta=tta, variant=variant)
        metrics.update(metrics_from_eval(json.loads(json.dumps(result.to_dict()))))
    return metrics


def markdown_report(result: EvalResult) -> str:
    lines = [
        f"# Evaluation on {result.split} ({result.variant} labels, TTA: {result.tta})",
        "",
        f"Data: `{result.data}`"
        + (f" (model classes ignored: {', '.join(result.ignored)})" if result.ignored else ""),
        "",
    ]
    if result.detector:
        found = result.entries[0].faces_found if result.entries else 0
        n = result.entries[0].report.n if result.entries else 0
        lines += [
            f"Through detection: detector `{result.detector}`, alignment `{result.align}`; a face was "
            f"found in {found} of {n} photos, and a photo without one counts as wrong "
            "(the `no face` column).",
            "",
        ]
    lines += [
        "| model | accuracy | 95% CI | balanced acc. | macro-F1 | top-2 | ECE | ms/face |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in result.entries:
        r = e.report
        ms = f"{e.ms_per_face:.3f}" if e.ms_per_face is not None else "-"
        lines.append(
            f"| {e.name} | {r.accuracy:.2%} | {e.accuracy_ci95[0]:.2%} – {e.accuracy_ci95[1]:.2%} | "
            f"{r.balanced_accuracy:.2%} | {r.macro_f1:.4f} | {r.top2_accuracy:.2%} | {e.ece:.4f} | {ms} |"
        )
    for e in result.entries:
        lines += ["", f"## {e.name}", ""]
        if e.weights:
            lines.append("Weights: " + ", ".join(f"{w:.3f}" for w in e.weights))
            lines.append("")
        lines += ["| class | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
        for name, m in e.report.per_class.items():
            lines.append(f"| {name} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | {m.support} |")
        lines += ["", "Confusion matrix (rows: true, columns: predicted):", ""]
        labels = result.labels
        lines.append("| true \\ predicted | " + " | ".join(labels) + " |")
        lines.append("| --- |" + " ---: |" * len(labels))
        for name, row in zip(labels, e.report.confusion, strict=True):
            lines.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _slug(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name.rstrip("/")).name or name)
    return keep[:60] or "model"


def write_report(result: EvalResult, out: str | os.PathLike, plots: bool = True) -> list[Path]:
    """``eval.json``, ``eval.md``, ``confusion_<model>.png`` and ``reliability.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with atomic_path(out / "eval.json") as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2))
    with atomic_path(out / "eval.md") as tmp:
        tmp.write_text(markdown_report(result))
    written += [out / "eval.json", out / "eval.md"]
    if plots and importlib.util.find_spec("matplotlib") is None:
        # Evaluation needs only numpy + ONNX Runtime; pictures need matplotlib.
        print("plots skipped: pip install matplotlib (or ferkit[train]) to draw them", file=sys.stderr)
        plots = False
    if plots:
        from ferkit.evaluate.plots import plot_confusion, plot_reliability

        for i, e in enumerate(result.entries):
            name = "ensemble" if e.weights else _slug(e.name)
            path = out / f"confusion_{i}_{name}.png"
            plot_confusion(
                np.array(e.report.confusion),
                result.labels,
                path,
                title=f"{e.name} — {result.split}, accuracy {e.report.accuracy:.2%}",
            )
            written.append(path)
        plot_reliability(
            {e.name: e.reliability for e in result.entries},
            out / "reliability.png",
            title=f"Reliability on {result.split}",
        )
        written.append(out / "reliability.png")
    return written
