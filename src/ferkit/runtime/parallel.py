"""Work on several items at once, each call with its own copy of a stateful tool, results in order.

Usage::

    detectors = recognizer.detector_copies(2)
    for frame, faces in ordered_map(lambda d, f: d.detect(f), frames, detectors):
        ...                                   # frames in input order, 2 detected at a time

Each call gets a tool (a detector, a recognizer) no other running call holds, so tools that
keep per-call state are safe; ONNX Runtime and OpenCV release the GIL, so the calls use the
cores. Up to ``2 * len(tools)`` items are read ahead of the consumer. Closing the generator
(a stop, an error downstream) cancels what has not started and waits for the calls running.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[R, T], U], items: Iterable[T], tools: Sequence[R], name: str = "ferkit-worker"
) -> Iterator[tuple[T, U]]:
    """``(item, fn(tool, item))`` for each item, in order, ``len(tools)`` calls at a time."""
    free: queue.SimpleQueue[R] = queue.SimpleQueue()
    for tool in tools:
        free.put(tool)

    def call(item: T) -> U:
        tool = free.get()  # one is free: the pool runs no more calls than there are tools
        try:
            return fn(tool, item)
        finally:
            free.put(tool)

    pool = ThreadPoolExecutor(len(tools), thread_name_prefix=name)
    ahead: deque[tuple[T, Future[U]]] = deque()
    try:
        for item in items:
            ahead.append((item, pool.submit(call, item)))
            if len(ahead) > 2 * len(tools):
                item, job = ahead.popleft()
                yield item, job.result()
        while ahead:
            item, job = ahead.popleft()
            yield item, job.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
