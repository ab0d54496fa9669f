"""``ferkit eval``, ``ferkit export`` and ``ferkit report``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ferkit.cli.options import ALIGN_HELP

console = Console(width=None if sys.stdout.isatty() else 160)


def eval_cmd(
    models: list[str] = typer.Argument(
        ..., help="Run folders, .pt checkpoints, .onnx files or shipped names."
    ),
    data: Path = typer.Option(..., help="Dataset with the split to evaluate."),
    split: str = typer.Option("PrivateTest", help="Split to report (benchmarks: PrivateTest)."),
    tta: str = typer.Option("none", help="Test-time augmentation: none, flip, tencrop."),
    labels: str = typer.Option("fer2013", help="fer2013, no-disgust or merge-disgust."),
    ignore: list[str] = typer.Option(
        [], help="Model classes the data lacks, dropped before scoring (e.g. contempt for FER+ models)."
    ),
    fit_weights: bool = typer.Option(
        False, help="Fit ensemble weights on PublicTest (never on the test split)."
    ),
    out: Optional[Path] = typer.Option(
        None, help="Folder for eval.json, eval.md and the plots (default ~/.cache/ferkit/eval/<time>)."
    ),
    detect: Optional[str] = typer.Option(
        None,
        help="Through detection, as a user's photo goes: run this face detector (auto, blazeface, "
        "blazeface-short, hog, haar) on each photo of a folder dataset and classify its first face; "
        "no face counts as wrong.",
    ),
    align: str = typer.Option("none", help="With --detect: " + ALIGN_HELP),
) -> None:
    """Accuracy, balanced accuracy, macro-F1, per-class P/R/F1, top-2, ECE, bootstrap CI; plots."""
    from ferkit.evaluate.run import evaluate_models, write_report

    result = evaluate_models(
        list(models),
        data,
        split=split,
        tta=tta,
        variant=labels,
        fit_ensemble_weights=fit_weights,
        ignore=ignore,
        detector=detect,
        align=align,
    )
    title = f"{split} ({labels}, TTA {tta})"
    if detect:
        title += f", through detection ({detect}, align {result.align})"
    table = Table(title=title)
    columns = ["model", "accuracy", "95% CI", "macro-F1", "balanced", "top-2", "ECE", "ms/face"]
    for col in columns + (["faces found"] if detect else []):
        table.add_column(col, justify="left" if col == "model" else "right")
    for e in result.entries:
        r = e.report
        table.add_row(
            e.name,
            f"{r.accuracy:.2%}",
            f"{e.accuracy_ci95[0]:.1%}–{e.accuracy_ci95[1]:.1%}",
            f"{r.macro_f1:.4f}",
            f"{r.balanced_accuracy:.2%}",
            f"{r.top2_accuracy:.2%}",
            f"{e.ece:.4f}",
            f"{e.ms_per_face:.3f}" if e.ms_per_face is not None else "-",
            *([f"{e.faces_found}/{r.n}"] if detect else []),
        )
    console.print(table)
    if out is None:  # not the current folder: a checkout would collect ferkit-eval/ folders
        import time

        from ferkit.utils import cache_dir

        out = cache_dir("eval") / time.strftime("%Y%m%d-%H%M%S")
    for path in write_report(result, out):
        console.print(f"wrote {path}")


def export_cmd(
    source: Path = typer.Argument(..., help="Run folder or checkpoint."),
    out: Path = typer.Option(..., help="ONNX file to write (the card goes beside it as .json)."),
    metrics: list[Path] = typer.Option([], help="eval.json from ferkit eval (repeatable) for the card."),
    int8: bool = typer.Option(False, help="Also write an int8 model (OUT with .int8.onnx); needs --data."),
    int4: bool = typer.Option(
        False,
        help="Also write int8 with int4-stored weights, half the size (OUT with .int4.onnx); needs --data.",
    ),
    data: Optional[Path] = typer.Option(
        None, help="Dataset for int8 calibration (Training) and the quantised model's check (PublicTest)."
    ),
    overwrite: bool = typer.Option(False, help="Replace existing files at OUT that are not ONNX models."),
) -> None:
    """Export to ONNX (dynamic batch, labels/preprocessing/recipe/metrics in metadata); verify vs torch."""
    import json

    from ferkit.card import metrics_from_eval
    from ferkit.export import export_onnx
    from ferkit.outputs import check_outputs

    if (int8 or int4) and data is None:  # before any work
        raise typer.BadParameter("--int8 / --int4 need --data (calibration and accuracy check)")
    if out.suffix != ".onnx":
        raise typer.BadParameter(f"{out}: an ONNX file name ends in .onnx", param_hint="--out")
    written = {"--out": (out, "onnx"), "--out's card": (out.with_suffix(".json"), "json")}
    for bits in [b for b, wanted in ((8, int8), (4, int4)) if wanted]:
        q = out.with_suffix(f".int{bits}.onnx")
        written |= {f"--int{bits}": (q, "onnx"), f"--int{bits}'s card": (q.with_suffix(".json"), "json")}
    run_files = [p for p in source.iterdir() if p.is_file()] if source.is_dir() else []
    check_outputs(
        written, [source, *metrics, *([data] if data else [])], protected=run_files, overwrite=overwrite
    )
    card_metrics: dict = {}
    evals = [json.loads(path.read_text()) for path in metrics]
    for result in evals:
        card_metrics.update(metrics_from_eval(result))
    report = export_onnx(source, out, metrics=card_metrics or None)
    console.print(
        f"wrote {report.path} ({report.size_bytes / 1e6:.2f} MB) and {report.path.with_suffix('.json')}; "
        f"max |ONNX - torch| = {report.max_abs_diff:.2e}"
    )
    if int8 or int4:
        import numpy as np

        from ferkit.data import load_dataset
        from ferkit.export import quantize_int8

        ds = load_dataset(data)
        train, val = ds.pick("train"), ds.pick("val")
        pick = np.random.default_rng(0).choice(len(train), size=min(512, len(train)), replace=False)
        for bits in [b for b, wanted in ((8, int8), (4, int4)) if wanted]:
            q = quantize_int8(
                out,
                out.with_suffix(f".int{bits}.onnx"),
                train.images[pick],
                val.images,
                val.labels,
                val.split_names[0],
                weight_bits=bits,
            )
            before, after = q.fp32_accuracy, q.quantized_accuracy
            kind = "int8 (4-bit weights)" if bits == 4 else "int8"
            console.print(
                f"wrote {q.path} ({q.size_bytes / 1e6:.2f} MB); {q.split} accuracy fp32 {before:.2%} -> "
                f"{kind} {after:.2%} ({(after - before) * 100:+.2f} pt)"
            )
            _measure_quantised(q.path, evals)


def _measure_quantised(path: Path, evals: list[dict]) -> None:
    """The quantised file's card gets its own figures: each evaluation that fed the fp32 card
    (same data, split, TTA, label variant) is run again on the quantised model, so no card
    shows fp32 accuracy for int8 weights. The card is written beside it as JSON too."""
    import dataclasses

    from ferkit.evaluate.run import card_metrics
    from ferkit.export import rewrite_card

    measured: dict = {}
    for spec in evals:
        measured.update(
            card_metrics(
                path,
                spec["data"],
                split=spec["split"],
                ttas=(spec["tta"],),
                variant=spec.get("variant", "fer2013"),
            )
        )
    for key, figures in measured.items():
        console.print(f"  {path.name} {key}: accuracy {figures['accuracy']:.2%}")
    # the card in the file itself (a JSON twin left by an earlier export would be stale)
    rewrite_card(path, lambda card: dataclasses.replace(card, metrics=measured))


def report_cmd(
    models: list[str] = typer.Argument(..., help="Models to benchmark."),
    data: Path = typer.Option(..., help="Dataset (FER-2013, or FER+ votes for FER+ models)."),
    out: Path = typer.Option(Path("results"), help="Stem of results.md / results.csv."),
    references: bool = typer.Option(True, help="Append published reference results (marked as published)."),
) -> None:
    """Benchmark table (Markdown + CSV) across models, with published references beside ours."""
    from ferkit.data import load_dataset
    from ferkit.evaluate.benchmark import benchmark_rows, references_for, write_table

    ds = load_dataset(data)
    refs = references_for(ds.label_set.name) if references else []
    md, csv_path = write_table(benchmark_rows(list(models), ds), out, references=refs)
    console.print(md.read_text(), markup=False, highlight=False, soft_wrap=True)  # table rows unbroken
    console.print(f"wrote {md} and {csv_path}")


def ensemble_cmd(
    members: list[str] = typer.Argument(..., help="ONNX members: shipped names or .onnx files."),
    data: Path = typer.Option(..., help="Dataset: weights fitted on PublicTest, reported on PrivateTest."),
    out: Path = typer.Option(..., help="Ensemble card to write (.json); load it like any model."),
    tta: str = typer.Option("flip", help="TTA the weights are fitted with: none, flip, tencrop."),
    fit_split: str = typer.Option(
        "PublicTest", help="Split the weights are fitted on (never the test split)."
    ),
    test_split: str = typer.Option("PrivateTest", help="Split whose figures go into the card."),
    equal: bool = typer.Option(False, help="Equal weights, nothing fitted (no held-out split left)."),
    select: bool = typer.Option(
        False,
        help="MEMBERS are candidates: keep those picked by cross-validated log-loss (forward selection).",
    ),
) -> None:
    """Combine models into one: weights fitted on PublicTest, the card carries PrivateTest figures."""
    from ferkit.evaluate.ensemble_card import build_ensemble_card

    if out.suffix != ".json":
        raise typer.BadParameter("an ensemble card is a .json file", param_hint="--out")
    card = build_ensemble_card(
        list(members),
        data,
        out,
        tta=tta,
        fit_split=fit_split,
        test_split=test_split,
        equal=equal,
        select=select,
    )
    for step in card.recipe.get("selection", []):
        console.print(f"  {' + '.join(step['members'])}: cross-validated log-loss {step['cv_log_loss']:.4f}")
    weights = ", ".join(f"{m} {w:.3f}" for m, w in zip(card.members, card.member_weights, strict=True))
    console.print(f"wrote {out}: weights {weights}")
    for key, m in card.metrics.items():
        console.print(f"  {key}: accuracy {m['accuracy']:.2%}, macro-F1 {m['macro_f1']:.4f}")


def register(root: typer.Typer) -> None:
    root.command("ensemble")(ensemble_cmd)
    root.command("eval")(eval_cmd)
    root.command("export")(export_cmd)
    root.command("report")(report_cmd)
