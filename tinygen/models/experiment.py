"""``Experiment``: what a model family tells the shared training runner.

The runner (``tinygen.training``) owns everything that is the same for
every model: data loading and batching, the epoch loop with a progress bar,
atomic checkpoints every epoch, bit-for-bit ``--resume``, sample grids, the
loss-curve plot and ``metrics.json``.  A model family subclasses
``Experiment`` and registers itself by name (``tinygen train NAME``):

    @register("vae")
    class VAEExperiment(Experiment):
        ...

Data arrays are numpy; an experiment turns a batch into Tensors itself
(binarisation, scaling) so each model sees the data format it models.
"""
import numpy as np

EXPERIMENTS = {}


def register(name):
    """Class decorator: make an Experiment available as ``tinygen train NAME``."""

    def decorate(cls):
        if name in EXPERIMENTS:
            raise ValueError(f"experiment {name!r} is registered twice")
        cls.name = name
        EXPERIMENTS[name] = cls
        return cls

    return decorate


def get_experiment(name):
    from . import _load_all  # registers the built-in families

    _load_all()
    if name not in EXPERIMENTS:
        raise ValueError(
            f"unknown model {name!r}; available: {', '.join(sorted(EXPERIMENTS))}"
        )
    return EXPERIMENTS[name]


class Experiment:
    """Base class; subclasses fill in the methods below.

    ``config`` is a plain dict (JSON-serialisable: it is stored in checkpoints
    and ``metrics.json``) holding at least ``epochs``, ``batch_size``, ``lr``,
    ``seed``, ``device``, ``dataset``, ``limit`` (number of training images,
    None for all) and any model-specific options from ``default_config``.
    """

    name = None
    # An evaluation's saved progress (training/eval_progress.py), set by ``tinygen eval``
    # for families whose evaluate can resume (the VAEs' long bounds); None: none kept.
    eval_progress = None
    # Datasets the family trains on (checked against config['dataset']); None when
    # it reads its own data (WaveNet's audio) and ignores the option.
    datasets = ("fashion-mnist",)
    # What one row of a training batch is, for the rate the runner shows ("img/s") and
    # records (``examples_per_second``).
    example_unit = "img"

    @classmethod
    def default_config(cls):
        """Model-specific defaults (merged under the command-line options)."""
        return {}

    def __init__(self, config):
        """Merge ``config`` over the common and the family's defaults, so an
        Experiment built directly (tests, scripts) sees the same settings the
        runner would give it."""
        config = {"seed": 0, "device": "cpu", "dataset": "fashion-mnist", "limit": None,
                  **self.default_config(), **dict(config)}
        if self.datasets is not None and config["dataset"] not in (None, *self.datasets):
            raise ValueError(f"the {self.name or type(self).__name__} experiments train on "
                             f"{' or '.join(map(repr, self.datasets))}, got dataset "
                             f"{config['dataset']!r}")
        self.config = config

    # --- data ------------------------------------------------------------------------------
    def load_data(self):
        """``(train_arrays, test_arrays)``: tuples of numpy arrays with equal first
        dimension (e.g. ``(images_uint8, labels)``), honouring ``config['limit']``."""
        raise NotImplementedError

    # --- state that checkpoints hold ---------------------------------------------------------
    def modules(self):
        """``{name: Module}``: every module whose state_dict is checkpointed."""
        raise NotImplementedError

    def optimizers(self):
        """``{name: Optimizer}``: every optimizer whose state_dict is checkpointed."""
        raise NotImplementedError

    def extra_state(self):
        """Anything else needed for a bit-for-bit resume (counters...), JSON/arrays."""
        return {}

    def load_extra_state(self, state):
        pass

    # --- training ----------------------------------------------------------------------------
    def train_step(self, batch, generator):
        """One optimisation step on ``batch`` (a tuple of numpy arrays from the
        loader); returns ``{loss_name: float}`` for the progress bar and history.
        ``generator`` is the numpy Generator to draw all randomness from."""
        raise NotImplementedError

    # --- results ------------------------------------------------------------------------------
    def sample(self, n, generator):
        """``n`` samples as uint8 images (n, H, W) or (n, C, H, W), for the PNG grid."""
        raise NotImplementedError

    def evaluate(self, test_arrays, generator):
        """``{metric: float}`` on held-out data (written to metrics.json)."""
        return {}

    def evaluation_info(self):
        """What the latest ``evaluate`` used that its numbers depend on (e.g. the FD
        classifier's identity and test accuracy), JSON-able; metrics.json's
        ``evaluation``."""
        return {}


def to_uint8_images(x, low=0.0, high=1.0):
    """Float images in [low, high] as uint8 (clipped)."""
    x = (np.asarray(x, dtype=np.float64) - low) / (high - low)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
