"""Shared fixtures: an isolated cache folder, small generated datasets, and ../shared data."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from ferkit.data import FaceDataset
from ferkit.labels import FER2013

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fer2013"


def default_stop_signals() -> None:
    """``preexec_fn`` for a child a test stops with a signal: SIGINT, SIGTERM and SIGHUP take
    their default action there, whatever the test run inherited (a run started in the
    background of a script ignores SIGINT, one under nohup SIGHUP, and children inherit that)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def count_looks(detector) -> list:
    """Record the region arguments (x0, y0, width, height) of every model look a BlazeFace
    detector takes from now on; the whole-image look records ()."""
    looks, real = [], detector.look

    def look(*args, **kwargs):
        looks.append(args[1:5])
        return real(*args, **kwargs)

    detector.look = look
    return looks


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    # One cache per test session: real-data tests share decoded arrays, nothing leaks out.
    os.environ["FERKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("ferkit-cache"))
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data-home"))  # game results stay here
    yield


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason=f"needs {SHARED} (../shared/datasets)")
    for item in items:
        if "shared_data" in item.keywords and not SHARED.exists():
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


def make_dataset(
    n_per_class: int = 4, size: int = 48, seed: int = 0, splits=("Training", "PublicTest", "PrivateTest")
) -> FaceDataset:
    """A small FER-2013-like dataset: random faces, every class in every split."""
    rng = np.random.default_rng(seed)
    labels, split_names = [], []
    for split in splits:
        for c in range(len(FER2013)):
            labels += [c] * n_per_class
            split_names += [split] * n_per_class
    n = len(labels)
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    return FaceDataset(
        images, np.asarray(labels, np.int64), np.asarray(split_names, str), FER2013, source="generated"
    )


@pytest.fixture
def small_dataset() -> FaceDataset:
    return make_dataset()
