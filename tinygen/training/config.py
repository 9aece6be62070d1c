"""A run's config: base defaults < the Experiment's ``default_config()`` < the caller's
options (unknown keys are errors); on ``resume`` the checkpoint's config, of which only
``epochs`` and ``device`` may change.  Also whether the device can be used here and
building the Experiment from a config, each failure a ``ConfigError``/``DeviceError``
naming the option.
"""
import json

import numpy as np

import tinygen
from tinygen.data import DATASETS, DataError

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
    if not positive_int(config.get("n_samples", 1)):
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


def positive_int(v):
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
