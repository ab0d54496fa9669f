"""torchrun + DistributedDataParallel on CPU (gloo): trains, writes once, resumes, loads alone."""

import os
import subprocess
import sys

import numpy as np

from ferkit.data import write_fer2013_csv
from ferkit.train.checkpoint import load_checkpoint, model_from_checkpoint
from test_train import learnable


def _torchrun(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run([*cmd, "-m", "ferkit", "train", *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def test_ddp_two_cpu_processes_train_resume_and_load_alone(tmp_path):
    data = write_fer2013_csv(learnable(n_per_class=40), tmp_path / "faces.csv")
    run = tmp_path / "run"
    common = ["--model", "mini_xception", "--batch-size", "32", "--precision", "fp32", "--progress", "false"]
    log = _torchrun(
        ["--data", str(data), "--epochs", "3", "--lr", "0.05", "--out", str(run), *common], tmp_path
    )
    assert "DDP rank 0 of 2" in log
    assert "DDP rank 1 of 2" not in log  # only rank 0 logs
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # header + one row per epoch, written by rank 0 only

    log = _torchrun(["--resume", str(run), "--epochs", "5", "--progress", "false"], tmp_path)
    assert "resuming" in log and "after epoch 3/5" in log
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 5
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 5

    # The checkpoint is a plain single-process model (no "module." prefixes) and it learned.
    model = model_from_checkpoint(load_checkpoint(run / "best.pt")).eval()
    test = learnable(n_per_class=40).pick("PrivateTest")
    import torch

    pre = ckpt["preprocessing"]
    x = (torch.from_numpy(test.images).float().unsqueeze(1) / 255 - pre["mean"]) / pre["std"]
    with torch.no_grad():
        acc = (model(x).argmax(1).numpy() == test.labels).mean()
    assert acc > 0.5, acc  # chance is 1/7
    assert np.isfinite(acc)
