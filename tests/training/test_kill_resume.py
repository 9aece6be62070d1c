"""Issue 11, lost work: a run killed (SIGKILL) or interrupted (SIGINT, Ctrl-C) anywhere
-- training, sampling, evaluation, in the middle of writing the checkpoint or
metrics.json -- and then resumed ends bit-identical to a run never stopped, and leaves
no temp file behind.

Real processes (signals cannot be tested in-process); kill_driver.py signals its own
process at the n-th call of a point, so the points are exact and the test is fast."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import tinygen as tg

DRIVER = Path(__file__).with_name("kill_driver.py")
TRAIN = ["train", "tiny-mlp-test", "--epochs", "3", "--limit", "256", "--batch-size", "32",
         "--test-limit", "100", "--n-samples", "4", "--no-progress"]

# (point, n-th call in that process, signal); each process resumes the one before.
PLAN = [
    ("train_step", 5, "INT"),    # epoch 1 training: nothing saved yet, start again
    ("evaluate", 1, "KILL"),     # epoch 1 checkpointed, killed while evaluating it
    ("sample", 1, "INT"),        # resume redoes epoch 1's sampling: interrupted there
    ("checkpoint", 1, "KILL"),   # epoch 1 evaluated, epoch 2 killed writing its checkpoint
    ("metrics", 2, "INT"),       # epoch 2 trained again, interrupted writing its metrics
    ("train_step", 3, "KILL"),   # epoch 2's evaluation redone, epoch 3 killed in training
    ("checkpoint", 1, "INT"),    # epoch 3 interrupted while its checkpoint is written
    ("none", 0, "none"),         # runs to the end
]


def run_driver(point, nth, sig, argv):
    env = {**os.environ, "TINYGEN_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(DRIVER), point, str(nth), sig, "--", *argv],
                          env=env, capture_output=True, text=True, timeout=120)


def checkpoint_arrays(path):
    state = tg.load(path)
    flat = {}

    def walk(prefix, x):
        if isinstance(x, dict):
            for k, v in x.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(f"{prefix}[{i}]", v)
        elif prefix.endswith((".seconds", ".examples_per_second")):
            pass  # wall-clock timings differ between any two runs
        else:
            flat[prefix] = np.asarray(x.numpy() if hasattr(x, "numpy") else x)

    walk("", {k: v for k, v in state.items() if k != "config"})
    return flat


def epoch_records(out):
    doc = json.loads((out / "metrics.json").read_text())
    return [{k: v for k, v in r.items() if k not in ("seconds", "examples_per_second")}
            for r in doc["epochs"]], doc


def test_killed_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    done = run_driver("none", 0, "none", TRAIN + ["--out", str(straight)])
    assert done.returncode == 0, done.stderr

    for point, nth, sig in PLAN:
        resume = (stopped / "checkpoint.npz").exists()
        argv = TRAIN + ["--out", str(stopped)] + (["--resume"] if resume else [])
        proc = run_driver(point, nth, sig, argv)
        expected = {"KILL": -9, "INT": 130, "none": 0}[sig]
        assert proc.returncode == expected, (point, nth, sig, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, proc.stderr
        if sig == "INT":
            hint = "--resume" if (stopped / "checkpoint.npz").exists() else "start over"
            assert hint in proc.stderr, proc.stderr
        # the checkpoint is never behind the newest epoch's sample grid
        grids = sorted(stopped.glob("samples_epoch*.png"))
        if grids:
            ckpt_epoch = int(tg.load(stopped / "checkpoint.npz")["epoch"])
            assert int(grids[-1].stem[-3:]) <= ckpt_epoch, (point, grids)

    assert sorted(p.name for p in stopped.iterdir()) == sorted(p.name for p in straight.iterdir())
    assert not list(stopped.glob("*.tmp")) and not list(stopped.glob(".*"))
    a, b = checkpoint_arrays(straight / "checkpoint.npz"), checkpoint_arrays(
        stopped / "checkpoint.npz")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)  # NaN == NaN here
    (ra, da), (rb, db) = epoch_records(straight), epoch_records(stopped)
    assert ra == rb and da["metrics"] == db["metrics"]
    assert da["epochs_evaluated"] == db["epochs_evaluated"] == 3
    for name in ("samples.png", "samples_epoch001.png", "samples_epoch003.png"):
        assert (straight / name).read_bytes() == (stopped / name).read_bytes(), name
