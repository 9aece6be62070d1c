"""The shared training runner behind ``tinygen train``, its checkpoints and its pictures.

    from tinygen.training import train
    train("vae", {"epochs": 1, "limit": 2000}, out="runs/vae")

- ``runner``: ``train`` (config, data, the epoch loop, progress bars, per-epoch
  outputs, bit-for-bit ``resume``) and ``metrics.json``;
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
from .runner import (  # noqa: F401
    BASE_CONFIG, ConfigError, TrainResult, eval_mode, make_config, train,
)
from tinygen.serialization import CheckpointError  # noqa: F401
