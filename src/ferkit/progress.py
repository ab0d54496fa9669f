"""Progress bars with rate and ETA for long work (rich), off when not wanted.

Usage::

    for item in progress_iter(items, description="decoding", enabled=True):
        ...
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def make_progress(transient: bool = False) -> Any:
    """A rich ``Progress`` on stderr: bar, done/total, %, rate, elapsed, ETA, free text."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True),
        transient=transient,
    )


def rate_text(done: int, seconds: float) -> str:
    """Items a second since the start (rich's own estimate needs several redraws first)."""
    return f"{done / seconds:,.0f}/s" if done and seconds > 0 else "-/s"


def progress_iter(
    items: Iterable[T],
    *,
    description: str,
    total: int | Callable[[], int | None] | None = None,
    enabled: bool | None = None,
    every: float = 0.2,
    units: Callable[[T], int] | None = None,
) -> Iterator[T]:
    """Iterate ``items`` under a progress bar; ``enabled=None`` shows it on a terminal only.

    ``total`` may be a function, asked again at each redraw: a source that learns its length
    only once it is read (a video's frame count) fills the bar in as it goes. The bar is
    redrawn at most every ``every`` seconds, so slow items (a 10 FPS video) move it too and
    fast ones cost a clock reading each. ``units`` counts what an item holds (a batch of
    faces), so that the bar, its total and its rate are in faces, not batches."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    total_now: Callable[[], int | None] = total if callable(total) else lambda: total  # type: ignore[assignment,return-value]
    with make_progress() as progress:
        task_id = progress.add_task(description, total=total_now(), rate="-/s", info="")
        done, start = 0, time.perf_counter()
        last = start
        for item in items:
            yield item
            done += units(item) if units else 1
            now = time.perf_counter()
            if now - last >= every:
                rate = rate_text(done, now - start)
                progress.update(task_id, completed=done, total=total_now(), rate=rate)
                last = now
        rate = rate_text(done, time.perf_counter() - start)
        progress.update(task_id, completed=done, total=total_now() or done, rate=rate)


def batch_progress(stack, show: bool, description: str, batch_size: int, total: int | None = None):
    """A per-batch bar (rate in img/s, ETA) entered on ``stack``; returns ``update(i, n, info)``.

    Training and the CycleGAN both report their batches through it; with ``show`` False the
    update does nothing.
    """
    if not show:
        return lambda i, n, info: None
    progress = stack.enter_context(make_progress(transient=True))
    task = progress.add_task(description, total=total, rate="-", info="")
    start = time.perf_counter()

    def update(i: int, n: int | None, info: str) -> None:
        rate = i * batch_size / max(time.perf_counter() - start, 1e-9)
        progress.update(task, completed=i, total=n, rate=f"{rate:,.0f} img/s", info=info)

    return update
