"""Progress bars with rate and ETA for long work (rich), off when not wanted.

Usage::

    for item in progress_iter(items, description="decoding", enabled=True):
        ...
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
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


def rate_text(task: Any) -> str:
    speed = task.finished_speed or task.speed
    return f"{speed:,.0f}/s" if speed else "-/s"


def progress_iter(
    items: Iterable[T],
    *,
    description: str,
    total: int | None = None,
    enabled: bool | None = None,
) -> Iterator[T]:
    """Iterate ``items`` under a progress bar; ``enabled=None`` shows it on a terminal only."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress() as progress:
        task_id = progress.add_task(description, total=total, rate="-/s", info="")
        task = progress.tasks[0]
        done = 0
        for item in items:
            yield item
            done += 1
            if done % 64 == 0:
                progress.update(task_id, completed=done, rate=rate_text(task))
        progress.update(task_id, completed=done, total=total or done, rate=rate_text(task))


def batch_progress(stack, show: bool, description: str, batch_size: int, total: int | None = None):
    """A per-batch bar (rate in img/s, ETA) entered on ``stack``; returns ``update(i, n, info)``.

    Training and the CycleGAN both report their batches through it; with ``show`` False the
    update does nothing.
    """
    if not show:
        return lambda i, n, info: None
    import time

    progress = stack.enter_context(make_progress(transient=True))
    task = progress.add_task(description, total=total, rate="-", info="")
    start = time.perf_counter()

    def update(i: int, n: int | None, info: str) -> None:
        rate = i * batch_size / max(time.perf_counter() - start, 1e-9)
        progress.update(task, completed=i, total=n, rate=f"{rate:,.0f} img/s", info=info)

    return update
