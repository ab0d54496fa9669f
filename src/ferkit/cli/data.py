"""``ferkit data ...``: inspect, preview and convert datasets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ferkit.data import load_dataset, write_fer2013_csv, write_image_folder
from ferkit.data.dataset import FaceDataset
from ferkit.data.load import PACKED_SUFFIX, write_packed

app = typer.Typer(help="Inspect, preview and convert datasets.", no_args_is_help=True)
# Wide when piped, so class names are not cut in logs and files.
console = Console(width=None if sys.stdout.isatty() else 160)

PixelsOpt = typer.Option(None, help="FER-2013 CSV/tar.gz that FER+ votes join to (default: found beside).")
LabelsOpt = typer.Option(
    None, help="Label set of a folder: fer2013, ferplus, rafdb, custom (the folder names)."
)
OnErrorOpt = typer.Option(
    "raise", "--on-error", help="raise: stop at the first bad item; skip: skip, count and report."
)
SizeOpt = typer.Option(48, help="Image side after loading (pixels).")


def _load(
    path: Path,
    pixels: Optional[Path],
    labels: Optional[str],
    on_error: str,
    size: int = 48,
    cache: bool = True,
) -> FaceDataset:
    return load_dataset(
        path, pixels=pixels, labels=labels, on_error=on_error, size=size, cache=cache, show_progress=None
    )  # type: ignore[arg-type]


def _report_skipped(ds: FaceDataset, limit: int = 20) -> None:
    if not ds.skipped:
        return
    err = Console(stderr=True, soft_wrap=True)  # one line per skipped file, greppable
    err.print(f"[yellow]skipped {len(ds.skipped)} bad item(s):[/]")
    for item in ds.skipped[:limit]:
        err.print(f"  {item}", highlight=False, markup=False)
    if len(ds.skipped) > limit:
        err.print(f"  ... and {len(ds.skipped) - limit} more")


def counts_table(ds: FaceDataset) -> Table:
    counts = ds.class_counts()
    table = Table(title="Samples per class")
    table.add_column("split")
    for name in ds.label_set.names:
        table.add_column(name, justify="right")
    table.add_column("total", justify="right", style="bold")
    for split, row in counts.items():
        table.add_row(split, *(str(v) for v in row.values()), str(sum(row.values())))
    totals = [sum(r[n] for r in counts.values()) for n in ds.label_set.names]
    table.add_row("all", *(str(v) for v in totals), str(sum(totals)), style="bold")
    return table


@app.command()
def info(
    path: Path = typer.Argument(..., help="Dataset: FER-2013 CSV/tar.gz, FER+ CSV, images folder or zip."),
    pixels: Optional[Path] = PixelsOpt,
    labels: Optional[str] = LabelsOpt,
    on_error: str = OnErrorOpt,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
    cache: bool = typer.Option(True, help="Use the decoded-array cache."),
) -> None:
    """Format, splits, per-class counts and image size of a dataset."""
    ds = _load(path, pixels, labels, on_error, cache=cache)
    summary = {
        "source": str(path),
        "format": ds.format,
        "images": len(ds),
        "image_size": list(ds.image_size),
        "channels": ds.channels,
        "label_set": ds.label_set.name,
        "labels": list(ds.label_set.names),
        "splits": ds.split_names,
        "class_counts": ds.class_counts(),
        "skipped": len(ds.skipped),
    }
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        console.print(f"[bold]{path}[/]")
        height, width = ds.image_size
        console.print(
            f"format: {ds.format}   images: {len(ds)}   size: {height}x{width}   channels: {ds.channels}"
        )
        console.print(f"labels ({ds.label_set.name}): {', '.join(ds.label_set.names)}")
        console.print(counts_table(ds))
    _report_skipped(ds)


@app.command()
def preview(
    path: Path = typer.Argument(..., help="Dataset to preview."),
    out: Path = typer.Option(Path("preview.png"), "--out", "-o", help="PNG to write."),
    per_class: int = typer.Option(8, help="Faces per class."),
    split: Optional[str] = typer.Option(None, help="Only this split (e.g. Training)."),
    seed: int = typer.Option(0, help="Random seed for the faces shown."),
    pixels: Optional[Path] = PixelsOpt,
    labels: Optional[str] = LabelsOpt,
    on_error: str = OnErrorOpt,
    augment: bool = typer.Option(False, help="Show the faces as training augments them (needs torch)."),
    config: Optional[Path] = typer.Option(None, help="Training config whose augmentation to show."),
) -> None:
    """A contact sheet of random faces per class, labelled (or as augmented for training)."""
    from ferkit.data.preview import contact_sheet, save_image

    ds = _load(path, pixels, labels, on_error)
    if split:
        ds = ds.pick(split)
    shown = None
    title = f"{path.name}{' / ' + split if split else ''}"
    if augment:
        shown = _augmented(ds, config, seed)
        title += " / augmented as in training"
    sheet = contact_sheet(ds, per_class=per_class, seed=seed, title=title, images=shown)
    save_image(out, sheet)
    console.print(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]})")
    _report_skipped(ds)


@app.command()
def convert(
    src: Path = typer.Argument(..., help="Source dataset (any readable layout)."),
    dst: Path = typer.Argument(
        ...,
        help="Destination: .csv / .csv.gz (FER-2013 CSV), a folder or a .zip (images layout), or "
        ".ferkit.xz (one compact file of the loaded arrays, e.g. to carry to a GPU machine).",
    ),
    pixels: Optional[Path] = PixelsOpt,
    labels: Optional[str] = LabelsOpt,
    on_error: str = OnErrorOpt,
    size: int = SizeOpt,
) -> None:
    """Convert between layouts: FER-2013 CSV <-> images folder/zip (lossless PNG), or pack any
    dataset into one compact .ferkit.xz file that load_dataset and ferkit train read directly."""
    ds = _load(src, pixels, labels, on_error, size=size)
    name = dst.name.lower()
    if name.endswith(PACKED_SUFFIX):
        write_packed(ds, dst)
        console.print(f"wrote {len(ds)} images to {dst} ({dst.stat().st_size / 2**20:.1f} MiB)")
        _report_skipped(ds)
        return
    if name.endswith((".csv", ".csv.gz")):
        write_fer2013_csv(ds, dst)
    else:
        write_image_folder(ds, dst)
    console.print(f"wrote {len(ds)} images to {dst}")
    _report_skipped(ds)


def _augmented(ds: FaceDataset, config: Optional[Path], seed: int):
    """Every image of ``ds`` passed through the training augmentation (uint8, same shape)."""
    import numpy as np
    import torch

    from ferkit.train.augment import augment_batch
    from ferkit.train.config import load_config

    cfg = load_config(config)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(ds.images)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    out = [augment_batch(x[i : i + 1024], cfg.augment, gen) for i in range(0, len(x), 1024)]
    pics = (torch.cat(out) * 255).round().to(torch.uint8)
    pics = pics[:, 0] if pics.shape[1] == 1 else pics.permute(0, 2, 3, 1)
    return np.ascontiguousarray(pics.numpy())
