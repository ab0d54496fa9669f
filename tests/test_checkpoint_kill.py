"""Checkpoints that survive ``kill -9`` at any instant: a run is killed before, during and after
each checkpoint write of its first epochs, resumed, and must end with a ``best.pt`` that is the
model ``last.pt`` names as best, test metrics, and no temporary files left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ferkit.data import write_fer2013_csv
from ferkit.train.checkpoint import load_checkpoint
from ferkit.train.runs import list_runs
from test_train import learnable

# Runs ferkit train with save_checkpoint wrapped: at its CALL-th call the process SIGKILLs itself
# before the write, after the temporary file is written (before the rename), or after it.
DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    import ferkit.train.callbacks as callbacks
    import ferkit.train.checkpoint as checkpoint

    call, moment = int(sys.argv[1]), sys.argv[2]
    calls = 0
    real_save, real_torch_save = checkpoint.save_checkpoint, torch.save

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def torch_save_then_die(obj, f, *a, **k):
        real_torch_save(obj, f, *a, **k)
        die()

    def save(path, payload):
        global calls
        calls += 1
        if calls == call and moment == "before":
            die()
        if calls == call and moment == "during":
            checkpoint.torch.save = torch_save_then_die
        out = real_save(path, payload)
        if calls == call and moment == "after":
            die()
        return out

    callbacks.save_checkpoint = save
    sys.argv = ["ferkit", "train", *sys.argv[3:]]
    from ferkit.cli import main
    main()
    """
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    data = root / "faces.csv"
    write_fer2013_csv(learnable(n_per_class=12), data)
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    return root, data, driver


# Three epochs killed at each of the first four writes; one epoch (where the resumed run has
# nothing left to train, so a lost best.pt stays lost) at both of its writes.
MOMENTS = ("before", "during", "after")
POINTS = [(3, call, m) for call in (1, 2, 3, 4) for m in MOMENTS] + [
    (1, c, m) for c in (1, 2) for m in MOMENTS
]


@pytest.mark.slow
@pytest.mark.parametrize("epochs, call, moment", POINTS, ids=[f"{e}ep-write{c}-{m}" for e, c, m in POINTS])
def test_killed_at_any_checkpoint_write_resumes_to_a_consistent_run(setup, epochs, call, moment):
    root, data, driver = setup
    out = root / f"{epochs}-{call}-{moment}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["--data", data, "--model", "baseline_cnn", "--epochs", str(epochs), "--batch-size", "32"]
    args += ["--precision", "fp32", "--progress", "false", "--seed", "1", "--out", out]
    killed = subprocess.run(
        [sys.executable, str(driver), str(call), moment, *map(str, args)], env=env, capture_output=True
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    run = out if (out / "last.pt").exists() or (out / "config.yaml").exists() else None
    assert run is not None
    if not (run / "last.pt").exists():  # killed before the first last.pt: nothing to resume
        assert call <= 2
        return
    assert killed.returncode == -9
    resumed = subprocess.run(
        [sys.executable, "-m", "ferkit", "train", "--resume", str(run), "--progress", "false"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    last, best = load_checkpoint(run / "last.pt"), load_checkpoint(run / "best.pt")
    assert last["epoch"] == epochs
    assert best["epoch"] == last["best_epoch"] and best["best_val_accuracy"] == last["best_val_accuracy"]
    assert last["best_val_accuracy"] == max(row["val_acc"] for row in last["history"])
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert metrics["best_epoch"] == last["best_epoch"]
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]
    (listed,) = [r for r in list_runs(out.parent) if r.path == run]
    assert listed.test_accuracy is not None
