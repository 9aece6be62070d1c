"""Using a finished (or interrupted) run: rebuild its Experiment from the checkpoint
(``load_run``), draw samples from it (``sample_run``: image grids or WAV files) and
evaluate it again (``evaluate_run``, merged into its metrics.json).
"""
import os
from pathlib import Path

import numpy as np

import tinygen
from tinygen.serialization import CheckpointError

from .audio import save_audio_samples, wav_paths
from .checkpoint import checkpoint_path, load_checkpoint, restore
from .config import BASE_CONFIG, build_experiment, check_device, positive_int
from .eval_progress import NAME as EVAL_PROGRESS_NAME, EvalProgress
from .images import save_image_grid
from .loop import can_sample, eval_mode
from .metrics_file import METRICS_NAME, as_float, evaluation_info, read_metrics, write_json
from .options import ConfigError, check_options


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
        if value is not None and not positive_int(value):
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
    if update_metrics:      # (the run's folder is ours to write: keep progress there)
        experiment.eval_progress = EvalProgress(
            Path(state["path"]).parent / EVAL_PROGRESS_NAME,
            {"model": state["model"], "epoch": int(state["epoch"]), "step": int(state["step"]),
             "config": experiment.config, "seed": int(seed)})
    with eval_mode(experiment), tinygen.no_grad(), tinygen.progress.shown(progress):
        metrics = experiment.evaluate(test_arrays, np.random.default_rng(int(seed)))
    metrics = {k: as_float(v) for k, v in (metrics or {}).items()}
    if update_metrics:
        path = Path(state["path"]).parent / METRICS_NAME
        doc = read_metrics(path)
        doc.setdefault("model", state["model"])
        doc.setdefault("metrics", {}).update(metrics)
        if evaluation_info(experiment):
            doc.update(evaluation_info(experiment))
        doc["eval"] = {"metrics": metrics, "options": options, "seed": int(seed),
                       "epoch": int(state["epoch"]), "step": int(state["step"]),
                       "test_images": len(test_arrays[0]) if test_arrays else 0}
        write_json(path, doc)
    return metrics
