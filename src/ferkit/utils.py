"""Small helpers shared by every stage: atomic writes and the cache folder.

Usage::

    with atomic_path("out.csv") as tmp:   # write tmp; it replaces out.csv only on success
        tmp.write_text("...")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cache_dir(*parts: str) -> Path:
    """ferkit's cache folder (``$FERKIT_CACHE_DIR`` or ``~/.cache/ferkit``), created on use."""
    root = os.environ.get("FERKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ferkit"
    )
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces it only if the block succeeds.

    A crash or Ctrl-C mid-write leaves the old file (or nothing) in place, never half a file.
    Temporary names keep the final suffix so libraries that look at it (``.npz``) behave.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:])
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; users expect their usual mode
    try:
        yield tmp
        if is_dir and path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, delivered like Ctrl-C so that the same clean-up path runs."""


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP raise :class:`Stopped` (a ``KeyboardInterrupt``).

    Commands that finish their outputs on Ctrl-C (video files, CSV rows, checkpoints) then
    do the same for ``timeout``, ``docker stop``, systemd and a closed terminal. Outside the
    main thread (where Python cannot set handlers) this does nothing. Only the first signal
    raises; repeats are ignored while the clean-up runs (SIGKILL still ends the process). A
    signal the process was told to ignore stays ignored: ``nohup ferkit train ...`` keeps
    running when its terminal closes. A signal that lands while Python runs a weakref callback
    or ``__del__`` raises where Python can only print and drop the exception: it is then sent
    again, so the stop still happens and later signals are not ignored for nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if not received:  # the first stops the work; later ones must not cut the clean-up short
            received.append(signum)
            raise Stopped(signal.Signals(signum).name)

    def dropped(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, Stopped) and received:
            # Raised inside a callback Python cannot propagate from: deliver it once more,
            # from another thread a moment later, so it lands in ordinary code.
            threading.Timer(0.05, os.kill, (os.getpid(), received.pop())).start()
        else:
            hook(unraisable)

    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    wanted = [sig for sig in wanted if signal.getsignal(sig) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, handler) for sig in wanted}
    hook, sys.unraisablehook = sys.unraisablehook, dropped
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def deferred_stops() -> Iterator[None]:
    """Inside the block, Ctrl-C, SIGTERM and SIGHUP wait; when it ends, the first that came is
    delivered to the handler that was in place (``KeyboardInterrupt``, :class:`Stopped`, or the
    default action).

    For short writes that must not be cut in half, such as one image's rows in both the CSV and
    the JSONL output. Signals the process ignores stay ignored; outside the main thread (where
    Python cannot set handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, _frame: object) -> None:
        pending.append(signum)

    names = ("SIGINT", "SIGTERM", "SIGHUP")
    held = [getattr(signal, n) for n in names if hasattr(signal, n)]
    # None: a handler not set from Python, which Python cannot put back
    held = [sig for sig in held if signal.getsignal(sig) not in (signal.SIG_IGN, None)]
    previous = {sig: signal.signal(sig, hold) for sig in held}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if pending:
            signal.raise_signal(pending[0])  # its handler runs here, as if it had just come


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what native libraries print straight to file descriptor 2 inside the block
    (LiteRT's "Created TensorFlow Lite XNNPACK delegate" line); ``FERKIT_VERBOSE=1`` keeps it.

    Python's own ``sys.stderr`` is flushed first; the block should be short (it is
    process-wide).
    """
    if os.environ.get("FERKIT_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def write_history_csv(path: str | os.PathLike, rows: list[dict], columns: list[str] | None = None) -> None:
    """Per-epoch metrics as CSV, rewritten whole and atomically (a stop leaves the last full file)."""
    import csv
    import io

    columns = columns or list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]) for k in columns})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def shown(path: str | os.PathLike) -> str:
    """A path as text any terminal prints: bytes that are not UTF-8 (a Latin-1 name) as
    ``\\xe9`` escapes, control characters (a newline in a name) as ``\\n``."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


def new_run_dir(out: str | os.PathLike | None, name: str) -> Path:
    """The folder of a new training run: ``out``, or ``<cache>/runs/<name>-<time>``; never one
    that already holds a run (that one is continued with --resume)."""
    import time

    from ferkit.errors import FerkitError

    run_dir = Path(out) if out else cache_dir("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / "last.pt").exists():
        raise FerkitError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or pick --out")
    return run_dir


def cpu_description() -> str:
    """This CPU's model name and the SIMD features that change int8/bf16 numerics or speed,
    e.g. ``"Intel(R) Xeon(R) Processor (avx2 avx512f avx512_vnni avx512_bf16 amx_int8)"``;
    recorded beside every measured figure (cards, benchmarks)."""
    import platform

    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    present = [f for f in wanted if f in flags]
    # /proc/cpuinfo lists the CPU's features; the libraries pick kernels by what CPUID tells
    # this process, which can hide some (a hypervisor, or tools/avx2-only measuring the AVX2
    # kernels on an AVX-512 CPU): name the features the process actually sees.
    seen = cpuid_features()
    hidden = [f for f in present if f in _NUMPY_NAMES and not seen.get(_NUMPY_NAMES[f], True)]
    if hidden:
        # the features numpy cannot check (avx_vnni, amx) are hidden by the same tools
        seen_here = " ".join(f for f in present if f in _NUMPY_NAMES and f not in hidden)
        return f"{name} ({seen_here}; CPUID hides {' '.join(hidden)} from this process)"
    found = " ".join(present)
    return f"{name} ({found})" if found else name


_NUMPY_NAMES = {
    "avx2": "AVX2",
    "avx512f": "AVX512F",
    "avx512_vnni": "AVX512VNNI",
    "avx512_bf16": "AVX512BF16",
}


def cpuid_features() -> dict[str, bool]:
    """The SIMD features CPUID reports to this process (numpy's runtime detection: ``AVX2``,
    ``AVX512F``, ``AVX512VNNI``...); empty where numpy does not expose it."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        try:  # numpy 1.x
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return {}
    return dict(__cpu_features__)
