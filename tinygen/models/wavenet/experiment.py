"""``tinygen train wavenet``: WaveNet on mu-law audio.

Data (option ``audio``): ``"melody"`` (the default) is ``synthetic_melody(seconds,
sample_rate, seed=melody_seed)``; otherwise a folder of 16-bit WAV files (sorted by name,
all at one sample rate, concatenated).  The audio is mu-law encoded to ``quantization``
codes; its first 90% is cut into ``train_windows`` windows of ``window`` samples at
random (seeded) starts, the last 10% into consecutive non-overlapping test windows.
``limit`` / ``test_limit`` cap the number of windows.  (The runner's ``dataset`` option
is ignored: it only knows image sets.)

Training minimises the NLL (nats per sample, every position of the window; the first
ones see zero-padded context) with Adam.  ``evaluate`` reports the test NLL in bits per
sample.  There is no image ``sample`` (the runner then draws no grids);
``generate_audio`` returns float audio from the fast generator.
"""
import math
from pathlib import Path

import numpy as np

from ... import optim, no_grad
from ...data.audio import mu_law_decode, mu_law_encode, read_wav, synthetic_melody
from ...data.errors import DataError
from ..experiment import Experiment, register
from .model import WaveNet

DEFAULTS = {
    "batch_size": 8,
    "lr": 1e-3,
    "audio": "melody",          # or a folder of 16-bit WAV files
    "seconds": 30.0,            # length of the synthetic melody
    "sample_rate": 16000,
    "melody_seed": 0,
    "window": 1024,             # samples per training/test window
    "train_windows": 2000,
    "n_layers": 10,
    "dilation_cycle": [2 ** i for i in range(10)],
    "residual_channels": 32,
    "skip_channels": 64,
    "quantization": 256,
    "kernel_size": 2,
}


@register("wavenet")
class WaveNetExperiment(Experiment):
    datasets = None  # audio comes from the ``audio`` option

    @classmethod
    def default_config(cls):
        return dict(DEFAULTS)

    def __init__(self, config):
        super().__init__(config)
        config = self.config
        self.model = WaveNet(int(config["n_layers"]), tuple(config["dilation_cycle"]),
                             int(config["residual_channels"]), int(config["skip_channels"]),
                             int(config["quantization"]), int(config["kernel_size"]))
        self.model.reset_parameters(np.random.default_rng([int(config["seed"]), 1]))
        if config["device"] != "cpu":
            self.model.to(device=config["device"])
        self.optimizer = optim.Adam(self.model.parameters(), lr=float(config["lr"]))

    # --- data ----------------------------------------------------------------------------------
    def load_audio(self):
        """Float audio in [-1, 1] and its sample rate."""
        c = self.config
        if c["audio"] == "melody":
            rate = int(c["sample_rate"])
            return synthetic_melody(float(c["seconds"]), rate, seed=int(c["melody_seed"])), rate
        folder = Path(c["audio"])
        files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
        if not files:
            raise DataError(f"{folder}: not a folder holding .wav files")
        parts, rate = [], None
        for f in files:
            x, r = read_wav(f)
            if rate is not None and r != rate:
                raise DataError(f"{f}: sample rate {r} differs from the other files' {rate}")
            rate = r
            parts.append(x.astype(np.float64) / 32768.0)
        return np.concatenate(parts), rate

    def load_data(self):
        c = self.config
        codes = mu_law_encode(self.load_audio()[0], int(c["quantization"]))
        w = int(c["window"])
        split = int(0.9 * len(codes))
        train, test = codes[:split], codes[split:]
        if len(train) < w or len(test) < w:
            raise DataError(f"audio of {len(codes)} samples is too short for windows of {w} "
                            "(90% train / 10% test)")
        n = int(c["train_windows"]) if c.get("limit") is None else int(c["limit"])
        rng = np.random.default_rng([int(c["seed"]), 2])
        starts = rng.integers(0, len(train) - w + 1, n)
        train_windows = np.stack([train[s:s + w] for s in starts])
        test_windows = test[:len(test) // w * w].reshape(-1, w)
        if c.get("test_limit") is not None:
            test_windows = test_windows[:int(c["test_limit"])]
        return (train_windows,), (test_windows,)

    # --- checkpointed state --------------------------------------------------------------------
    def modules(self):
        return {"wavenet": self.model}

    def optimizers(self):
        return {"adam": self.optimizer}

    # --- training / results --------------------------------------------------------------------
    def train_step(self, batch, generator):
        self.model.train()
        loss = self.model.loss(np.asarray(batch[0]))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        value = float(loss.item())
        return {"loss": value, "bits_per_sample": value / math.log(2)}

    def evaluate(self, test_arrays, generator, batch=8):
        windows = np.asarray(test_arrays[0])
        total = 0.0
        with no_grad():
            for lo in range(0, len(windows), batch):
                xb = windows[lo:lo + batch]
                total += float(self.model.loss(xb).item()) * xb.size
        nats = total / max(windows.size, 1)
        return {"test_nll_bits_per_sample": nats / math.log(2),
                "test_samples": int(windows.size)}

    def generate_audio(self, n_samples, generator, temperature=1.0):
        """Float audio in [-1, 1] from the fast (queue-based) generator."""
        codes = self.model.generate(n_samples, generator, temperature)
        return mu_law_decode(codes, self.model.quantization)
