"""The shared training loop behind ``tinygen train``: the same for every model family.

    from tinygen.training import train
    result = train("vae", {"epochs": 1, "limit": 2000}, out="runs/vae")
    result = train("vae", {"epochs": 2}, out="runs/vae", resume=True)   # one more epoch

A model family is an ``Experiment`` (``tinygen.models.experiment``); the loop owns
(its config comes from ``config``, metrics.json from ``metrics_file``):

- data: ``experiment.load_data()``, a seeded ``BatchLoader`` over the train arrays
  (``drop_last``, so every step sees a full batch);
- randomness: ``tinygen.manual_seed(seed)`` before the experiment is built (weight init),
  one numpy Generator for ``train_step`` (its own stream, not the loader's), a fixed one
  for the sample grids (the same noise every epoch, so grids show progress) and one per
  epoch for ``evaluate``; all of it is in the checkpoint;
- per epoch: a tqdm bar with the latest losses and images/s; as soon as the epoch's
  training ends, the checkpoint ``checkpoint.npz`` and ``metrics.json`` (the epoch marked
  ``"evaluated": false``); then, with every module in eval mode and no autograd graph,
  ``samples_epoch{k:03d}.png`` and ``samples.png`` (if the experiment can ``sample``),
  ``evaluate`` -> metrics, ``loss.png`` and ``metrics.json`` again (each file written
  atomically, in that order). Artifacts of epoch k are never newer than the checkpoint.

A run stopped at any point (SIGKILL, Ctrl-C, a crash in evaluation) resumes from its
last trained epoch, first redoing that epoch's sampling and evaluation when they did not
finish, and computes exactly (bit for bit) what the uninterrupted run would have.
"""
import contextlib
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import tinygen
from tinygen.data import BatchLoader, SubsetWarning, recording_sources
from tinygen.serialization import CheckpointError, atomic_open

from .checkpoint import (
    CHECKPOINT_NAME, ModelMismatchError, checkpoint_path, load_checkpoint, restore,
    restore_weights, save_checkpoint)
from .config import BASE_CONFIG, build_experiment, check_device, make_config, resume_config
from .history import History
from .images import save_image_grid, save_loss_plot
from .metrics_file import (
    LOSS_PLOT_NAME, METRICS_NAME, SAMPLES_NAME, as_float, evaluation_info, latest_metrics,
    read_metrics, write_metrics,
)
from .options import ConfigError

# Files of a run directory written through atomic_open (their temp files are
# ".NAME.XXXX.tmp"): a new start or a resume removes those a killed run left.
_STALE_TEMP = re.compile(r"\.(checkpoint\.npz|metrics\.json|samples(_epoch\d+)?\.png|"
                         r"loss\.png)\.\w+\.tmp")

# Independent random streams derived from the seed (SeedSequence spawn keys).
_STREAM_TRAIN, _STREAM_SAMPLES, _STREAM_EVAL = 1, 2, 3


@dataclass
class TrainResult:
    experiment: object
    out: Path
    metrics: dict
    history: History = field(repr=False, default=None)
    train_images: int = 0
    new_epochs: int = 0  # epochs trained by this call (0: the run had them all already)


def default_run_dir(experiment_name):
    return Path("runs") / experiment_name


def make_run_dir(out):
    """Create ``out`` (an error naming it when that fails) and remove the temp files a
    killed run left in it (``atomic_open`` removes its own unless killed with SIGKILL)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {str(out)!r}: cannot create it ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {str(out)!r}: not writable")
    for stale in out.glob(".*.tmp"):
        if _STALE_TEMP.fullmatch(stale.name):
            with contextlib.suppress(OSError):
                stale.unlink()


def stream(seed, *key):
    """A numpy Generator on the stream ``key`` of ``seed`` (independent streams)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(key)))


def train(experiment_name, config=None, out=None, resume=False, overwrite=False,
          progress=True, log=print, distributed=False, init_from=None):
    """Train ``experiment_name`` (a registered Experiment) and write the run to ``out``.

    config: options over the defaults (see ``make_config``). resume: continue the run
    in ``out`` from its ``checkpoint.npz``. overwrite: start afresh even though ``out``
    already holds a checkpoint (otherwise an error, so a finished run is not lost to a
    repeated command). progress: show tqdm bars (on stderr). log: where the one-line
    epoch summaries go (None: nowhere). distributed: True (or a
    ``tinygen.distributed.training.DistributedRun``) to train data-parallel with the
    other ranks of an MPI job: ``batch_size`` is then the global batch, and only rank 0
    writes files and logs. init_from: a run directory (or checkpoint file) of the same
    model whose weights a new run starts from instead of a fresh initialisation (a
    fine-tune: the optimizer, the step count and so every schedule, and the random
    streams start afresh, under this run's config); recorded in the config as
    ``init_from``. With ``resume`` it must name the run's recorded source, and is then
    ignored: the run's own checkpoint already carries on from it.
    """
    from tinygen.models import get_experiment

    log = log or (lambda *a, **k: None)
    cls = get_experiment(experiment_name)
    out = Path(out) if out is not None else default_run_dir(experiment_name)
    ckpt_path = out / CHECKPOINT_NAME
    state = None
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite starts it "
                          "again: pass one of them")
    if resume:
        if not ckpt_path.is_file():
            raise CheckpointError(f"{str(ckpt_path)!r}: no checkpoint to resume from "
                                  f"(train without --resume first, or check --out)")
        state = load_checkpoint(ckpt_path, model=experiment_name)
        config = resume_config(state["config"], config)
        if init_from is not None:
            _check_same_source(config.get("init_from"), init_from, out)
        if config["epochs"] < int(state["epoch"]):
            raise ConfigError(f"--epochs {config['epochs']}: the run in {str(out)!r} has "
                              f"already trained {int(state['epoch'])} epochs; --epochs is "
                              f"the new total, so give at least that")
    else:
        config = make_config(cls, config)
        if ckpt_path.exists() and not overwrite:
            raise CheckpointError(
                f"{str(ckpt_path)!r} already exists: pass --resume to continue that run, "
                f"--overwrite to start it again, or choose another --out")
    init_state = None
    if init_from is not None and state is None:
        init_state = _init_source(init_from, experiment_name)
        config["init_from"] = {"checkpoint": os.path.abspath(init_state["path"]),
                               "epoch": int(init_state["epoch"]),
                               "step": int(init_state["step"])}
    check_device(config["device"])
    dist = _distributed_run(distributed, config)
    if dist is not None and not dist.writer:
        log, progress = (lambda *a, **k: None), False
    else:
        make_run_dir(out)

    seed = config["seed"]
    tinygen.manual_seed(seed)
    experiment = build_experiment(cls, config)
    if init_state is not None:
        _start_from(init_state, experiment, init_from)
        log(f"initialised {experiment_name} from {init_state['path']} (epoch "
            f"{int(init_state['epoch'])}, step {int(init_state['step'])})")
    train_arrays, test_arrays, subset, source = load_data_noting_subset(experiment)
    try:
        loader = BatchLoader(train_arrays, config["batch_size"], shuffle=True, seed=seed,
                             drop_last=True, **(dist.loader_shard() if dist else {}))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if len(loader) == 0:
        raise ConfigError(f"{loader.num_samples} training images are fewer than one batch "
                          f"of {config['batch_size']}: raise --limit or lower --batch-size")
    generator = stream(seed, _STREAM_TRAIN)
    history = History()
    epoch, step = 0, 0
    if state is not None:
        restore(state, experiment, loader, generator)
        history.load_state_dict(state["history"])
        epoch, step = int(state["epoch"]), int(state["step"])
        log(f"resuming {experiment_name} from {ckpt_path} after epoch {epoch} "
            f"(step {step})")
    if dist is not None:
        dist.prepare(experiment, resumed_step=step)

    n_train = loader.num_samples
    n_test = len(test_arrays[0]) if test_arrays else 0

    def finish_epoch(record):
        """Sampling and evaluation of a trained (and checkpointed) epoch, then its
        metrics.json; redone on resume when a run stopped before it ended.  In a
        distributed run rank 0 does it and the other ranks wait for its metrics."""
        if dist is None or dist.writer:
            record.update(metrics=_end_of_epoch(experiment, test_arrays, out, record["epoch"],
                                                seed, progress), evaluated=True)
            save_loss_plot(history, out / LOSS_PLOT_NAME,
                           title=f"{experiment_name} training loss")
            write_metrics(out, experiment_name, experiment.config, history, n_train, n_test,
                          subset=subset, source=source, extra=evaluation_info(experiment))
            log(_summary(experiment_name, record, config["epochs"], experiment.example_unit))
        if dist is not None:
            record.update(metrics=dist.after_epoch(record["metrics"]), evaluated=True)

    if history.epochs and not history.epochs[-1].get("evaluated", True):
        done = _evaluated_record(out, history.epochs[-1])
        if done is not None:  # metrics.json already has it: the run stopped after
            history.epochs[-1].update(metrics=done, evaluated=True)
        else:
            log(f"evaluating epoch {epoch}, which the interrupted run trained but did not "
                f"evaluate")
            finish_epoch(history.epochs[-1])

    while epoch < config["epochs"]:
        if loader.epoch != epoch:  # pragma: no cover - a broken invariant, not user error
            raise RuntimeError(f"loader is at epoch {loader.epoch}, the run at {epoch}")
        epoch += 1
        start, examples = time.perf_counter(), 0
        bar = tinygen.progress.bar(len(loader), f"{experiment_name} {epoch}/{config['epochs']}",
                                   "batch", show=progress, leave=True, delay=0)
        try:
            for batch in loader:
                if dist is None:
                    losses = experiment.train_step(batch, generator)
                else:
                    losses = dist.average(experiment.train_step(
                        batch, dist.generator(generator, batch)))
                losses = {k: as_float(v) for k, v in losses.items()}
                step += 1
                examples += len(batch[0]) * (dist.size if dist else 1)
                history.append(step, epoch, losses)
                bar.update(1)
                rate = examples / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix({**{k: f"{v:.4g}" for k, v in losses.items()},
                                 f"{experiment.example_unit}/s": f"{rate:.0f}"},
                                refresh=False)
        finally:
            bar.close()
        seconds = time.perf_counter() - start

        # The checkpoint first: whatever happens while sampling and evaluating (Ctrl-C,
        # a crash), the epoch's training is kept, and its evaluation is redone on resume.
        record = {"epoch": epoch, "step": step, "losses": history.epoch_means(epoch),
                  "metrics": {}, "evaluated": False, "seconds": seconds,
                  "examples_per_second": examples / max(seconds, 1e-9)}
        history.end_epoch(record)
        if dist is None or dist.writer:
            save_checkpoint(ckpt_path, experiment, loader, generator, epoch=epoch, step=step,
                            history=history.state_dict())
            write_metrics(out, experiment_name, experiment.config, history, n_train, n_test,
                          subset=subset, source=source)
        finish_epoch(history.epochs[-1])

    return TrainResult(experiment=experiment, out=out, metrics=latest_metrics(history),
                       history=history, train_images=n_train,
                       new_epochs=epoch - (int(state["epoch"]) if state is not None else 0))


def _init_source(init_from, experiment_name):
    """The checkpoint a new run's weights come from (``init_from``), read and checked."""
    path = checkpoint_path(init_from)
    try:
        return load_checkpoint(path, model=experiment_name)
    except ModelMismatchError:
        model = load_checkpoint(path)["model"]
        raise ConfigError(f"--init-from {str(init_from)!r} is a run of model {model!r}; "
                          f"a {experiment_name!r} run can only start from a "
                          f"{experiment_name!r} run") from None


def _start_from(init_state, experiment, init_from):
    """Load the --init-from run's weights; when they do not fit, name the options in
    which the two runs differ (the usual cause) before the module's own message."""
    try:
        restore_weights(init_state, experiment)
    except CheckpointError as e:
        saved, config = init_state["config"], experiment.config
        differ = [f"{k}={saved.get(k)!r} there, {config.get(k)!r} here"
                  for k in sorted(set(saved) | set(config))
                  if k not in _NOT_ARCHITECTURE and saved.get(k) != config.get(k)]
        raise ConfigError(
            f"--init-from {str(init_from)!r}: its weights do not fit this run's model"
            + (f"; the runs' options differ in {'; '.join(differ)}" if differ else "")
            + f" ({e})") from None


# Options that never change a model's parameters (the runner's own), left out of the
# --init-from mismatch message so that it names only the likely causes.
_NOT_ARCHITECTURE = set(BASE_CONFIG) | {"init_from"}


def _check_same_source(recorded, init_from, out):
    """--resume with --init-from: the run must have started from that checkpoint."""
    asked = os.path.realpath(checkpoint_path(init_from))
    had = os.path.realpath(recorded["checkpoint"]) if isinstance(recorded, dict) else None
    if had != asked:
        started = recorded["checkpoint"] if had else "a fresh initialisation"
        raise ConfigError(
            f"--init-from {str(init_from)!r}: the run in {str(out)!r} started from "
            f"{started!r}, not from it; "
            f"drop --init-from to resume it, or start a new run in another --out")


def _distributed_run(distributed, config):
    """None for a one-process run, else the DistributedRun (see tinygen.distributed)."""
    if not distributed:
        return None
    from tinygen.distributed.training import DistributedRun

    return distributed if isinstance(distributed, DistributedRun) \
        else DistributedRun.start(config["device"])


def _evaluated_record(out, record):
    """The metrics of ``record``'s epoch as metrics.json holds them, or None when it does
    not (the run stopped before that epoch's evaluation was written)."""
    for saved in read_metrics(Path(out) / METRICS_NAME).get("epochs", []):
        if (isinstance(saved, dict) and saved.get("epoch") == record["epoch"]
                and saved.get("step") == record["step"] and saved.get("evaluated")):
            return dict(saved.get("metrics") or {})
    return None


def _end_of_epoch(experiment, test_arrays, out, epoch, seed, progress=False):
    """Sample grids and metrics, with modules in eval mode and no graph.

    tinygen's global generator is put back afterwards: training after this epoch must not
    depend on whether its evaluation ran in this process or was redone on resume."""
    rng_state = tinygen.get_rng_state()
    try:
        with eval_mode(experiment), tinygen.no_grad(), tinygen.progress.shown(progress):
            if can_sample(experiment):
                n = int(experiment.config.get("n_samples", 64))
                images = experiment.sample(n, stream(seed, _STREAM_SAMPLES))
                path = out / f"samples_epoch{epoch:03d}.png"
                save_image_grid(images, path, scale=2)
                _copy_atomic(path, out / SAMPLES_NAME)
            metrics = experiment.evaluate(test_arrays, stream(seed, _STREAM_EVAL, epoch))
    finally:
        tinygen.set_rng_state(rng_state)
    return {k: as_float(v) for k, v in (metrics or {}).items()}


def can_sample(experiment):
    from tinygen.models.experiment import Experiment

    return type(experiment).sample is not Experiment.sample


class eval_mode:
    """Every module of the experiment in eval mode inside the block, restored after."""

    def __init__(self, experiment):
        self.modules = list(experiment.modules().values())

    def __enter__(self):
        self.flags = [[(m, m.training) for m in module.modules()] for module in self.modules]
        for module in self.modules:
            module.eval()
        return self

    def __exit__(self, *exc):
        for flags in self.flags:
            for m, training in flags:
                m.training = training
        return False


def load_data_noting_subset(experiment):
    """``experiment.load_data()`` plus whether the embedded subset stood in for the real
    data (its SubsetWarning is still shown; metrics.json records it) and where the data
    came from (the directories read, or the embedded subset)."""
    with warnings.catch_warnings(record=True) as caught, recording_sources() as source:
        warnings.simplefilter("always", SubsetWarning)
        train_arrays, test_arrays = experiment.load_data()
    subset = False
    for w in caught:
        subset = subset or issubclass(w.category, SubsetWarning)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return train_arrays, test_arrays, subset, list(source)


def _summary(name, record, epochs, unit):
    parts = [f"{k} {v:.4g}" for k, v in record["losses"].items()]
    parts += [f"{k} {v:.4g}" for k, v in record["metrics"].items()]
    # (a record from a checkpoint written before the key was renamed has the old one)
    rate = record.get("examples_per_second", record.get("images_per_second", 0.0))
    return (f"{name} epoch {record['epoch']}/{epochs}: " + ", ".join(parts)
            + f" ({record['seconds']:.1f} s, {rate:.0f} {unit}/s)")


def _copy_atomic(src, dst):
    with open(src, "rb") as f_in, atomic_open(os.fspath(dst), "wb") as f_out:
        shutil.copyfileobj(f_in, f_out)
