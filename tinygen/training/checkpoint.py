"""The whole state of a training run in one file, for bit-for-bit ``--resume``.

    save_checkpoint(out / "checkpoint.npz", experiment, loader, generator,
                    epoch=3, step=1407, history=history.state_dict())
    state = load_checkpoint(out / "checkpoint.npz", model="vae")
    restore(state, experiment, loader, generator)

A checkpoint is a ``tinygen.save`` file (``.npz``, no pickle, written atomically: a
failed write leaves the previous checkpoint intact) holding::

    format, version          "tinygen.training.checkpoint", 1
    model                    the registered Experiment name ("vae", "dcgan", ...)
    config                   the run's config dict
    epoch, step              epochs completed, optimisation steps taken
    modules, optimizers      {name: state_dict} from Experiment.modules()/optimizers()
    extra                    Experiment.extra_state()
    loader                   BatchLoader.state_dict()
    generator                the numpy Generator's bit_generator.state (ints of any
                             size are plain JSON integers in the file)
    global_rng               tinygen's global generator state (init, dropout, randn)
    history                  per-step losses and per-epoch records (see runner)

Everything that draws random numbers is in there, so a run restored from epoch k
computes exactly what an uninterrupted run computes after epoch k.

Every problem reading one raises ``CheckpointError`` (a ValueError) naming the file:
missing, corrupt, not a training checkpoint, or one whose state does not fit the model;
``ModelMismatchError`` (a CheckpointError) when it was written by another model.
"""
import os
from pathlib import Path

import numpy as np

import tinygen
from tinygen.serialization import CheckpointError

FORMAT = "tinygen.training.checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.npz"

_REQUIRED = ("format", "version", "model", "config", "epoch", "step", "modules",
             "optimizers", "extra", "loader", "generator", "global_rng", "history")


class ModelMismatchError(CheckpointError):
    """The checkpoint belongs to a different model than the one asked for."""


def capture(experiment, loader, generator, *, epoch, step, history):
    """The checkpoint dict of a run (what ``save_checkpoint`` writes)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": experiment.name,
        "config": dict(experiment.config),
        "epoch": int(epoch),
        "step": int(step),
        "modules": {name: m.state_dict() for name, m in experiment.modules().items()},
        "optimizers": {name: o.state_dict() for name, o in experiment.optimizers().items()},
        "extra": experiment.extra_state(),
        "loader": loader.state_dict() if loader is not None else None,
        "generator": generator.bit_generator.state if generator is not None else None,
        "global_rng": tinygen.get_rng_state(),
        "history": history,
    }


def save_checkpoint(path, experiment, loader, generator, *, epoch, step, history):
    """Write the run's state to ``path`` atomically; returns ``path``."""
    state = capture(experiment, loader, generator, epoch=epoch, step=step, history=history)
    tinygen.save(os.fspath(path), state)
    return path


def checkpoint_path(run):
    """``run`` is a run directory (holding checkpoint.npz) or a checkpoint file."""
    run = Path(run)
    if run.is_dir():
        return run / CHECKPOINT_NAME
    if not run.exists() and run.suffix != ".npz":
        raise CheckpointError(f"{str(run)!r}: no such run directory")
    return run


def load_checkpoint(path, model=None):
    """Read and validate a checkpoint; ``model``: the Experiment name it must belong to.

    Raises CheckpointError naming the file when it is missing, unreadable or not a
    training checkpoint, and ModelMismatchError when it belongs to another model.
    """
    path = Path(os.fspath(path))
    if path.is_dir():
        raise CheckpointError(f"{str(path)!r} is a directory, not a checkpoint file "
                              f"(a run directory holds {CHECKPOINT_NAME})")
    try:
        state = tinygen.load(path)
    except FileNotFoundError:
        raise CheckpointError(f"{str(path)!r}: no such checkpoint") from None
    except PermissionError as e:
        raise CheckpointError(f"{str(path)!r}: cannot be read ({e.strerror})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is a tinygen file but not a training "
                              f"checkpoint (no format {FORMAT!r})")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{str(path)!r}: unsupported training checkpoint version "
                              f"{state.get('version')!r} (this tinygen reads {VERSION})")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{str(path)!r}: training checkpoint lacks {', '.join(missing)}")
    if model is not None and state["model"] != model:
        raise ModelMismatchError(
            f"{str(path)!r} is a checkpoint of model {state['model']!r}, not {model!r}; "
            f"use `tinygen train {state['model']} --resume` or another --out directory")
    if not isinstance(state["config"], dict):
        raise CheckpointError(f"{str(path)!r}: config is not a dict")
    state["path"] = str(path)
    return state


def restore(state, experiment, loader=None, generator=None, *, training=True):
    """Load a checkpoint's state into a freshly built experiment (and loader, generator).

    ``training=False`` restores only what sampling and evaluation need (modules and
    extra state), not the optimizers and random streams.
    """
    where = state.get("path", "checkpoint")
    if state["model"] != experiment.name:
        raise ModelMismatchError(f"{where!r} is a checkpoint of model {state['model']!r}, "
                                 f"not {experiment.name!r}")
    _load_named(where, "module", experiment.modules(), state["modules"])
    if training:
        _load_named(where, "optimizer", experiment.optimizers(), state["optimizers"])
    try:
        experiment.load_extra_state(state["extra"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{where!r}: cannot restore the experiment's extra state: "
                              f"{e}") from e
    if not training:
        return
    if loader is not None:
        try:
            loader.load_state_dict(state["loader"])
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{where!r}: the data loader state does not fit this data "
                                  f"({e}); was --limit or --batch-size changed?") from e
    try:
        if generator is not None:
            generator.bit_generator.state = _rng_state(state["generator"])
        tinygen.set_rng_state(_rng_state(state["global_rng"]))
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{where!r}: bad random generator state ({e})") from e


def restore_weights(state, experiment):
    """Only the modules' weights (and buffers) of a checkpoint, for a new run that
    starts from another run's model (``tinygen train --init-from``): the optimizers,
    the step count and with it every schedule, and the random streams start afresh."""
    _load_named(state.get("path", "checkpoint"), "module", experiment.modules(),
                state["modules"])


def _load_named(where, kind, live, saved):
    if not isinstance(saved, dict):
        raise CheckpointError(f"{where!r}: {kind}s entry is not a dict")
    if set(live) != set(saved):
        raise CheckpointError(
            f"{where!r} holds {kind}s {sorted(saved)}, but the model has {sorted(live)}")
    for name, obj in live.items():
        try:
            obj.load_state_dict(saved[name])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{where!r}: {kind} {name!r} does not fit the "
                                  f"checkpoint: {e}") from e


def _rng_state(state):
    """A bit_generator state as read back from a checkpoint (arrays stay arrays)."""
    if not isinstance(state, dict) or "bit_generator" not in state:
        raise ValueError(f"not a numpy bit generator state: {type(state).__name__}")
    return {k: (_rng_state_inner(v) if isinstance(v, dict) else v) for k, v in state.items()}


def _rng_state_inner(d):
    return {k: (np.asarray(v) if isinstance(v, (list, tuple)) else v) for k, v in d.items()}
