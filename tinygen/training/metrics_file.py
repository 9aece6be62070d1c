"""A run's ``metrics.json``: the config, per-epoch losses and metrics, the latest metrics,
where the data came from; standard JSON (NaN and infinities as null), written atomically.
"""
import json
import math
import os
from pathlib import Path

import numpy as np

from tinygen.serialization import atomic_open

from .checkpoint import CHECKPOINT_NAME

# The files of a run directory besides the checkpoint (metrics.json lists those present).
METRICS_NAME = "metrics.json"
SAMPLES_NAME = "samples.png"
LOSS_PLOT_NAME = "loss.png"


def evaluation_info(experiment):
    info = experiment.evaluation_info() if hasattr(experiment, "evaluation_info") else {}
    return {"evaluation": info} if info else None


def write_metrics(out, experiment_name, config, history, n_train, n_test, extra=None,
                  subset=False, source=None):
    """``metrics.json``: the config, per-epoch losses/metrics and the latest metrics."""
    path = Path(out) / METRICS_NAME
    previous = read_metrics(path)
    doc = {
        "model": experiment_name,
        "config": config,
        # Trained and checkpointed / also sampled and evaluated: they differ (by one) only
        # while a run is in its end-of-epoch work or stopped there (resume redoes it).
        "epochs_completed": len(history.epochs),
        "epochs_evaluated": len(_evaluated(history)),
        "global_step": history.steps[-1] if history.steps else 0,
        "data": {"dataset": config.get("dataset"), "train_images": n_train,
                 "test_images": n_test, "embedded_subset": bool(subset),
                 "source": source or []},
        "metrics": latest_metrics(history),
        "metrics_epoch": _evaluated(history)[-1]["epoch"] if _evaluated(history) else None,
        "epochs": history.epochs,
        "files": {key: name for key, name in (("checkpoint", CHECKPOINT_NAME),
                                              ("samples", SAMPLES_NAME),
                                              ("loss_plot", LOSS_PLOT_NAME))
                  if (Path(out) / name).exists()},
    }
    for key in ("eval", "evaluation"):
        if key in previous:
            doc[key] = previous[key]
    doc.update(extra or {})
    write_json(path, doc)
    return doc


def read_metrics(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def write_json(path, doc):
    with atomic_open(os.fspath(path), "w") as f:
        json.dump(_finite(doc), f, indent=2, allow_nan=False)
        f.write("\n")


def _finite(x):
    """NaN and infinities as null: metrics.json stays standard JSON."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _finite(x.tolist())
    return x


def _evaluated(history):
    return [r for r in history.epochs if r.get("evaluated", True)]


def latest_metrics(history):
    done = _evaluated(history)
    return dict(done[-1]["metrics"]) if done else {}


def as_float(value):
    """A loss or metric as a plain Python number (ints and bools stay ints)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, (bool, int)):
        return int(value)
    return float(value)
