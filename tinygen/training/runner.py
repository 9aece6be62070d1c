"""The shared training loop behind ``tinygen train``: the same for every model family.

    from tinygen.training import train
    result = train("vae", {"epochs": 1, "limit": 2000}, out="runs/vae")
    result = train("vae", {"epochs": 2}, out="runs/vae", resume=True)   # one more epoch

A model family is an ``Experiment`` (``tinygen.models.experiment``); the runner owns:

- the config: base defaults < the Experiment's ``default_config()`` < the caller's
  options (unknown keys are errors; on ``resume`` the checkpoint's config is used and
  only ``epochs`` and ``device`` may change);
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
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import tinygen
from tinygen.data import BatchLoader, DATASETS, DataError, SubsetWarning, recording_sources
from tinygen.serialization import CheckpointError, atomic_open

from .audio import save_audio_samples, wav_paths
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, restore, save_checkpoint
from .history import History
from .images import save_image_grid, save_loss_plot
from .options import ConfigError, check_options

# Every run has these; an Experiment's default_config() may override the values.
BASE_CONFIG = {
    "epochs": 10,
    "batch_size": 64,
    "lr": 1e-3,
    "seed": 0,
    "device": "cpu",
    "dataset": "fashion-mnist",
    "data": None,        # a directory holding the data (None: search, then the subset)
    "limit": None,       # number of training images (None: all)
    "test_limit": None,  # number of test images evaluate() sees (None: all)
    "n_samples": 64,     # images in each sample grid
}
# What --resume may change; anything else would break the bit-for-bit continuation.
RESUMABLE = ("epochs", "device")

METRICS_NAME = "metrics.json"
SAMPLES_NAME = "samples.png"
LOSS_PLOT_NAME = "loss.png"

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


def make_config(experiment_cls, options=None):
    """Base defaults < the Experiment's defaults < ``options`` (None values ignored)."""
    defaults = {**BASE_CONFIG, **experiment_cls.default_config()}
    config = dict(defaults)
    for key, value in (options or {}).items():
        if key not in config:
            raise ConfigError(f"unknown option {key!r} for model {experiment_cls.name!r}; "
                              f"known: {', '.join(sorted(config))}")
        if value is not None:
            config[key] = value
    config = check_options(defaults, config)
    check_config(config)
    return config


def check_config(config):
    for key in ("epochs", "batch_size", "seed"):
        value = config.get(key)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) \
                or value < (0 if key == "seed" else 1):
            raise ConfigError(f"{key} must be a {'non-negative' if key == 'seed' else 'positive'}"
                              f" integer, got {value!r}")
    if not _positive_int(config.get("n_samples", 1)):
        raise ConfigError(f"--n-samples {config.get('n_samples')}: must be a positive integer")
    for key in ("limit", "test_limit"):
        value = config.get(key)
        if value is not None and (not isinstance(value, (int, np.integer))
                                  or isinstance(value, bool) or value < 1):
            raise ConfigError(f"{key} must be a positive integer or None, got {value!r}")
    if not isinstance(config.get("lr"), (int, float)) or not config["lr"] > 0:
        raise ConfigError(f"lr must be a positive number, got {config.get('lr')!r}")
    if config.get("dataset") not in DATASETS:
        raise DataError(f"unknown dataset {config.get('dataset')!r}; available: "
                        f"{', '.join(DATASETS)}")
    if config.get("device") not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'cpu' or 'cuda', got {config.get('device')!r}")
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config must be JSON-serialisable: {e}") from None


def _positive_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


class DeviceError(RuntimeError):
    """The requested device cannot be used on this machine."""


def check_device(device):
    """Raise DeviceError, saying why, when ``device`` cannot be used here (and
    KernelImplError when $TINYGEN_CPU_IMPL names no CPU implementation)."""
    from tinygen.backend import kernels

    kernels.get_impl("cpu")
    if device == "cuda" and not tinygen.cuda.is_available():
        try:
            tinygen.cuda.require_available()
        except RuntimeError as e:
            raise DeviceError(f"--device cuda: {e}; or run with --device cpu") from None


def resume_config(saved, options):
    """The checkpoint's config, with only RESUMABLE keys taken from ``options``."""
    config = dict(saved)
    for key, value in (options or {}).items():
        if value is None:
            continue
        if key in RESUMABLE:
            config[key] = value
        elif key not in config or config[key] != value:
            raise ConfigError(
                f"cannot change {key!r} when resuming (the checkpoint has "
                f"{config.get(key)!r}, asked for {value!r}); only "
                f"{', '.join(RESUMABLE)} may change, or start a new run in another --out")
    check_config(config)
    return config


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


def build_experiment(cls, config):
    """``cls(config)``, with a bad model option reported as a ConfigError."""
    try:
        return cls(config)
    except DataError:
        raise
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"model {cls.name!r}: {e}") from e
    except MemoryError as e:
        raise ConfigError(f"model {cls.name!r} does not fit in memory with these options "
                          f"({e}); make it smaller") from None


def stream(seed, *key):
    """A numpy Generator on the stream ``key`` of ``seed`` (independent streams)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(key)))


def train(experiment_name, config=None, out=None, resume=False, overwrite=False,
          progress=True, log=print, distributed=False):
    """Train ``experiment_name`` (a registered Experiment) and write the run to ``out``.

    config: options over the defaults (see ``make_config``). resume: continue the run
    in ``out`` from its ``checkpoint.npz``. overwrite: start afresh even though ``out``
    already holds a checkpoint (otherwise an error, so a finished run is not lost to a
    repeated command). progress: show tqdm bars (on stderr). log: where the one-line
    epoch summaries go (None: nowhere). distributed: True (or a
    ``tinygen.distributed.training.DistributedRun``) to train data-parallel with the
    other ranks of an MPI job: ``batch_size`` is then the global batch, and only rank 0
    writes files and logs.
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
    check_device(config["device"])
    dist = _distributed_run(distributed, config)
    if dist is not None and not dist.writer:
        log, progress = (lambda *a, **k: None), False
    else:
        make_run_dir(out)

    seed = config["seed"]
    tinygen.manual_seed(seed)
    experiment = build_experiment(cls, config)
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
                          subset=subset, source=source, extra=_evaluation_info(experiment))
            log(_summary(experiment_name, record, config["epochs"]))
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
        start, images = time.perf_counter(), 0
        bar = _progress_bar(len(loader), f"{experiment_name} {epoch}/{config['epochs']}",
                            progress)
        try:
            for batch in loader:
                if dist is None:
                    losses = experiment.train_step(batch, generator)
                else:
                    losses = dist.average(experiment.train_step(
                        batch, dist.generator(generator, batch)))
                losses = {k: _as_float(v) for k, v in losses.items()}
                step += 1
                images += len(batch[0]) * (dist.size if dist else 1)
                history.append(step, epoch, losses)
                bar.update(1)
                rate = images / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix({**{k: f"{v:.4g}" for k, v in losses.items()},
                                 "img/s": f"{rate:.0f}"}, refresh=False)
        finally:
            bar.close()
        seconds = time.perf_counter() - start

        # The checkpoint first: whatever happens while sampling and evaluating (Ctrl-C,
        # a crash), the epoch's training is kept, and its evaluation is redone on resume.
        record = {"epoch": epoch, "step": step, "losses": history.epoch_means(epoch),
                  "metrics": {}, "evaluated": False, "seconds": seconds,
                  "images_per_second": images / max(seconds, 1e-9)}
        history.end_epoch(record)
        if dist is None or dist.writer:
            save_checkpoint(ckpt_path, experiment, loader, generator, epoch=epoch, step=step,
                            history=history.state_dict())
            write_metrics(out, experiment_name, experiment.config, history, n_train, n_test,
                          subset=subset, source=source)
        finish_epoch(history.epochs[-1])

    return TrainResult(experiment=experiment, out=out, metrics=_latest_metrics(history),
                       history=history, train_images=n_train,
                       new_epochs=epoch - (int(state["epoch"]) if state is not None else 0))


def _distributed_run(distributed, config):
    """None for a one-process run, else the DistributedRun (see tinygen.distributed)."""
    if not distributed:
        return None
    from tinygen.distributed.training import DistributedRun

    return distributed if isinstance(distributed, DistributedRun) \
        else DistributedRun.start(config["device"])


def _evaluation_info(experiment):
    info = experiment.evaluation_info() if hasattr(experiment, "evaluation_info") else {}
    return {"evaluation": info} if info else None


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
    return {k: _as_float(v) for k, v in (metrics or {}).items()}


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
        "metrics": _latest_metrics(history),
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


def _latest_metrics(history):
    done = _evaluated(history)
    return dict(done[-1]["metrics"]) if done else {}


def _summary(name, record, epochs):
    parts = [f"{k} {v:.4g}" for k, v in record["losses"].items()]
    parts += [f"{k} {v:.4g}" for k, v in record["metrics"].items()]
    return (f"{name} epoch {record['epoch']}/{epochs}: " + ", ".join(parts)
            + f" ({record['seconds']:.1f} s, {record['images_per_second']:.0f} img/s)")


def _as_float(value):
    """A loss or metric as a plain Python number (ints and bools stay ints)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, (bool, int)):
        return int(value)
    return float(value)


def _copy_atomic(src, dst):
    with open(src, "rb") as f_in, atomic_open(os.fspath(dst), "wb") as f_out:
        shutil.copyfileobj(f_in, f_out)


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


def _progress_bar(total, desc, enabled):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", dynamic_ncols=True, file=sys.stderr,
                leave=True, mininterval=0.5)


# --- using a finished (or interrupted) run: sample and evaluate -----------------------------

def checkpoint_path(run):
    """``run`` is a run directory (holding checkpoint.npz) or a checkpoint file."""
    run = Path(run)
    if run.is_dir():
        return run / CHECKPOINT_NAME
    if not run.exists() and run.suffix != ".npz":
        raise CheckpointError(f"{str(run)!r}: no such run directory")
    return run


def load_run(run, device=None, data=None, model=None):
    """``(experiment, state)``: the experiment of a run, rebuilt from its checkpoint.

    device / data: override where it runs and where its data is (the run may come
    from another machine). model: the name the checkpoint must belong to.
    """
    from tinygen.models import get_experiment

    path = checkpoint_path(run)
    state = load_checkpoint(path, model=model)
    try:
        cls = get_experiment(state["model"])
    except ValueError as e:
        raise CheckpointError(f"{str(path)!r}: written by a model this tinygen does not "
                              f"have ({e})") from None
    config = dict(state["config"])
    if device is not None:
        config["device"] = device
    if data is not None:
        config["data"] = str(data)
    check_device(config["device"])
    tinygen.manual_seed(int(config.get("seed", 0)))
    experiment = build_experiment(cls, config)
    restore(state, experiment, training=False)
    return experiment, state


KINDS = ("samples", "reconstructions", "interpolations", "completions")


def sample_run(run, n=None, kind="samples", seed=0, out=None, nrow=None, device=None,
               data=None, temperature=None, length=None, progress=False):
    """Write ``n`` samples of ``kind`` from a run's checkpoint.

    Image models: a grid of ``n`` images (default 64) as PNG; returns its path.  kind
    "samples" calls ``experiment.sample``; any other kind needs the optional
    ``experiment.visualize(kind, n, generator, test_arrays)`` (VAEs: reconstructions,
    interpolations), which gets the run's test split.

    Audio models (an experiment with ``sample_audio``: WaveNet): ``n`` clips (default 1)
    of ``length`` samples (default: the experiment's, e.g. one second) drawn at
    ``temperature`` (default 1), one 16-bit WAV file each at the run's sample rate
    (naming: ``tinygen.training.audio``); returns the list of paths.
    """
    for name, value in (("--n", n), ("--nrow", nrow), ("--length", length)):
        if value is not None and not _positive_int(value):
            raise ConfigError(f"{name} {value}: must be a positive integer")
    if out is not None:
        check_output_file(out)
    with tinygen.progress.shown(progress):
        return _sample_run(run, n, kind, seed, out, nrow, device, data, temperature, length)


def _sample_run(run, n, kind, seed, out, nrow, device, data, temperature, length):
    experiment, state = load_run(run, device=device, data=data)
    generator = np.random.default_rng(int(seed))
    run_dir = Path(state["path"]).parent
    if hasattr(experiment, "sample_audio"):
        return _sample_audio_run(experiment, run_dir, n, kind, seed, out, nrow, generator,
                                 temperature, length)
    for name, value in (("temperature", temperature), ("length", length)):
        if value is not None:
            raise ConfigError(f"model {experiment.name!r} draws images; --{name} applies to "
                              f"audio models only")
    kinds = getattr(experiment, "kinds", ("samples",))
    if kind not in kinds:
        raise ConfigError(f"--kind {kind}: model {experiment.name!r} has no --kind {kind}; "
                          f"it draws {', '.join(kinds)}")
    out = Path(out) if out is not None else run_dir / f"{kind}_seed{seed}.png"
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {str(out)!r}: image grids are written as PNG; give a path "
                          f"ending in .png")
    n = 64 if n is None else int(n)
    with eval_mode(experiment), tinygen.no_grad():
        if kind == "samples":
            if not can_sample(experiment):
                raise ConfigError(f"model {experiment.name!r} does not generate samples")
            images = experiment.sample(n, generator)
        else:
            _, test_arrays = experiment.load_data()
            images = experiment.visualize(kind, n, generator, test_arrays)
    save_image_grid(images, out, nrow=nrow, scale=2)
    return out


def check_output_file(out):
    """Make ``--out``'s directory (as ``--out`` of train does) or raise a ConfigError
    naming it, before the minutes of sampling rather than after."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a directory; give a file name")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {str(out)!r}: cannot create directory {str(parent)!r} "
                          f"({e.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {str(out)!r}: directory {str(parent)!r} is not writable")


def _sample_audio_run(experiment, run_dir, n, kind, seed, out, nrow, generator, temperature,
                      length):
    if kind != "samples":
        raise ConfigError(f"model {experiment.name!r} has no --kind {kind}; it only draws "
                          f"audio samples")
    if nrow is not None:
        raise ConfigError("--nrow lays out image grids; audio samples are separate files")
    n = 1 if n is None else int(n)
    temperature = 1.0 if temperature is None else float(temperature)
    for name, value in (("n", n), ("temperature", temperature)):
        if not value > 0:
            raise ConfigError(f"--{name} must be positive, got {value}")
    if length is not None and int(length) < 1:
        raise ConfigError(f"--length must be a positive number of samples, got {length}")
    out = Path(out) if out is not None else run_dir / f"{kind}_seed{seed}.wav"
    try:
        paths = wav_paths(out, n)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    with eval_mode(experiment), tinygen.no_grad():
        audio, rate = experiment.sample_audio(n, None if length is None else int(length),
                                              generator, temperature)
    save_audio_samples(audio, rate, out)
    return paths


def evaluate_run(run, seed=0, options=None, device=None, data=None, update_metrics=True,
                 progress=False):
    """Run ``experiment.evaluate`` on a run's checkpoint; merge into its metrics.json.

    options: config entries for this evaluation only (e.g. ``{"iwae_k": 5000}`` or
    ``{"test_limit": None}`` for the whole test split).
    """
    experiment, state = load_run(run, device=device, data=data)
    options = dict(options or {})
    unknown = sorted(k for k in options if k not in experiment.config)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(map(repr, unknown))} for model "
                          f"{experiment.name!r}; known: {', '.join(sorted(experiment.config))}")
    defaults = {**BASE_CONFIG, **type(experiment).default_config()}
    experiment.config.update(check_options(defaults, options, keys=list(options)))
    _, test_arrays = experiment.load_data()
    with eval_mode(experiment), tinygen.no_grad(), tinygen.progress.shown(progress):
        metrics = experiment.evaluate(test_arrays, np.random.default_rng(int(seed)))
    metrics = {k: _as_float(v) for k, v in (metrics or {}).items()}
    if update_metrics:
        path = Path(state["path"]).parent / METRICS_NAME
        doc = read_metrics(path)
        doc.setdefault("model", state["model"])
        doc.setdefault("metrics", {}).update(metrics)
        if _evaluation_info(experiment):
            doc.update(_evaluation_info(experiment))
        doc["eval"] = {"metrics": metrics, "options": options, "seed": int(seed),
                       "epoch": int(state["epoch"]), "step": int(state["step"]),
                       "test_images": len(test_arrays[0]) if test_arrays else 0}
        write_json(path, doc)
    return metrics
