"""Per-step losses and per-epoch records of a training run.

Losses are kept in columns (one float64 list per loss name, aligned with the step
numbers; NaN where a step did not report that loss, e.g. a GAN generator loss on
critic-only steps), so a checkpoint stores them as a few arrays, not as thousands of
JSON numbers. ``epochs`` holds one record per finished epoch:
``{"epoch", "losses" (means), "metrics", "seconds", "examples_per_second"}`` (images, or
WaveNet's windows: the experiment's ``example_unit``).
"""
import math

import numpy as np


class History:
    def __init__(self):
        self.steps = []       # global step numbers, 1-based
        self.step_epoch = []  # the (1-based) epoch each step belongs to
        self.losses = {}      # name -> list of floats, aligned with steps
        self.epochs = []      # per-epoch records

    def append(self, step, epoch, losses):
        n = len(self.steps)
        self.steps.append(int(step))
        self.step_epoch.append(int(epoch))
        for name in losses:
            if name not in self.losses:
                self.losses[name] = [math.nan] * n
        for name, column in self.losses.items():
            column.append(float(losses[name]) if name in losses else math.nan)

    def epoch_means(self, epoch):
        """``{name: mean over the steps of epoch}`` (NaN entries ignored)."""
        mask = np.asarray(self.step_epoch) == epoch
        out = {}
        for name, column in self.losses.items():
            values = np.asarray(column, dtype=np.float64)[mask]
            values = values[~np.isnan(values)]
            if values.size:
                out[name] = float(values.mean())
        return out

    def end_epoch(self, record):
        self.epochs.append(dict(record))

    def state_dict(self):
        return {
            "steps": np.asarray(self.steps, dtype=np.int64),
            "step_epoch": np.asarray(self.step_epoch, dtype=np.int64),
            "losses": {name: np.asarray(col, dtype=np.float64)
                       for name, col in self.losses.items()},
            "epochs": [dict(r) for r in self.epochs],
        }

    def load_state_dict(self, state):
        self.steps = [int(s) for s in np.asarray(state["steps"]).tolist()]
        self.step_epoch = [int(s) for s in np.asarray(state["step_epoch"]).tolist()]
        self.losses = {name: [float(v) for v in np.asarray(col, dtype=np.float64).tolist()]
                       for name, col in dict(state["losses"]).items()}
        for name, col in self.losses.items():
            if len(col) != len(self.steps):
                raise ValueError(f"history column {name!r} has {len(col)} entries for "
                                 f"{len(self.steps)} steps")
        self.epochs = [dict(r) for r in state["epochs"]]

    def __len__(self):
        return len(self.steps)
