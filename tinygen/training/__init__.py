"""The shared training runner behind ``tinygen train``, its checkpoints and its pictures.

    from tinygen.training import train
    train("vae", {"epochs": 1, "limit": 2000}, out="runs/vae")

- ``config``: a run's config (defaults, options, resume), the device check;
- ``loop``: ``train`` (data, the epoch loop, progress bars, per-epoch outputs,
  bit-for-bit ``resume``);
- ``metrics_file``: the run's ``metrics.json``;
- ``runs``: using a saved run: ``load_run``, ``sample_run``, ``evaluate_run``;
- ``checkpoint``: the whole training state in one ``.npz`` (no pickle, atomic);
- ``images``: sample grids and the loss plot as PNG, drawn with Pillow;
- ``audio``: audio samples (WaveNet) as 16-bit WAV files;
- ``history``: per-step losses and per-epoch records.

Model families plug in as ``tinygen.models.Experiment`` subclasses.
"""
from .checkpoint import (  # noqa: F401
    CHECKPOINT_NAME, ModelMismatchError, capture, load_checkpoint, restore, save_checkpoint,
)
from .history import History  # noqa: F401
from .images import make_image_grid, save_image_grid, save_loss_plot  # noqa: F401
from .config import BASE_CONFIG, DeviceError, make_config  # noqa: F401
from .loop import TrainResult, eval_mode, train  # noqa: F401
from .metrics_file import METRICS_NAME, read_metrics  # noqa: F401
from .options import ConfigError  # noqa: F401
from .runs import KINDS, evaluate_run, load_run, sample_run  # noqa: F401
from tinygen.serialization import CheckpointError  # noqa: F401
