"""PixelCNN training recipes for the shared runner: ``tinygen train pixelcnn`` (masked
convs, van den Oord et al. 2016) and ``tinygen train gated-pixelcnn`` (gated stacks;
``conditional: true`` conditions on the Fashion-MNIST class).

Data: the 8-bit images themselves (inputs scaled to [-1, 1], targets the uint8 values).
The output head is a 256-way softmax per pixel (``output: softmax``, the default) or,
with ``-o output=dlm [-o mixtures=10]``, PixelCNN++'s discretized logistic mixture of
``mixtures`` components.  Training minimises the mean NLL (nats per image) with Adam;
the progress bar also shows bits/dim.  ``evaluate`` reports the test NLL in bits
per dimension on the first ``test_limit`` test images (1000 by default, for per-epoch
speed).  Samples are drawn pixel by pixel (``n_samples`` per epoch, 16 by default: each
costs H*W network passes on a window of rows); ``visualize("completions", ...)`` fills
the bottom half of test images.
"""
import math
import time

import numpy as np

from ... import optim
from ...data import load_dataset
from ..experiment import Experiment, register
from .networks import GatedPixelCNN, PixelCNN

COMMON_DEFAULTS = {
    "batch_size": 64,
    "lr": 1e-3,
    "hidden": 64,
    "test_limit": 1000,
    "eval_batch": 100,
    "n_samples": 16,
    "output": "softmax",     # or "dlm": discretized logistic mixture (PixelCNN++)
    "mixtures": 10,          # mixture components of the dlm head
}


class PixelCNNExperiment(Experiment):
    network = PixelCNN
    kinds = ("samples", "completions")  # what visualize draws
    options = {"n_residual": 5}

    @classmethod
    def default_config(cls):
        return {**COMMON_DEFAULTS, **cls.options}

    def __init__(self, config):
        super().__init__(config)
        config = self.config
        self.model = self.network(channels=1, hidden=int(config["hidden"]), image_size=28,
                                  output=config["output"], mixtures=config["mixtures"],
                                  **self._network_options())
        self.model.reset_parameters(np.random.default_rng([int(config["seed"]), 1]))
        if config["device"] != "cpu":
            self.model.to(device=config["device"])
        self.optimizer = optim.Adam(self.model.parameters(), lr=float(config["lr"]))

    def _network_options(self):
        return {"n_residual": int(self.config["n_residual"])}

    def _classes(self, labels):
        return None

    def _sample_classes(self, n):
        return None

    # --- data --------------------------------------------------------------------------------
    def load_data(self):
        c = self.config
        return load_dataset(c.get("dataset") or "fashion-mnist", root=c.get("data"),
                            limit=c.get("limit"), test_limit=c.get("test_limit"))

    # --- checkpointed state ------------------------------------------------------------------
    def modules(self):
        return {"pixelcnn": self.model}

    def optimizers(self):
        return {"adam": self.optimizer}

    # --- training ----------------------------------------------------------------------------
    def train_step(self, batch, generator):
        self.model.train()
        images = np.asarray(batch[0])
        loss = self.model.nll(images, self._classes(batch[1])).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        nats = float(loss.item())
        return {"loss": nats, "bpd": nats / (images[0].size * math.log(2))}

    # --- results -----------------------------------------------------------------------------
    def sample(self, n, generator):
        return self.model.sample(n, generator, classes=self._sample_classes(n))[:, 0]

    def evaluate(self, test_arrays, generator):
        start = time.perf_counter()
        images, labels = np.asarray(test_arrays[0]), np.asarray(test_arrays[1])
        n = self.config.get("test_limit")
        n = len(images) if n is None else min(int(n), len(images))
        batch = max(1, int(self.config["eval_batch"]))
        bpd = []
        for lo in range(0, n, batch):
            hi = min(n, lo + batch)
            bpd.append(self.model.bits_per_dim(images[lo:hi], self._classes(labels[lo:hi]))
                       * (hi - lo))
        value = float(np.sum(bpd) / n)
        return {"test_bpd": value, "test_nll_nats": value * 28 * 28 * math.log(2),
                "eval_images": n, "eval_seconds": time.perf_counter() - start}

    def visualize(self, kind, n, generator, test_arrays):
        """``samples`` or ``completions``: pairs (test image, its bottom half re-drawn)."""
        if kind == "samples":
            return self.sample(n, generator)
        if kind == "completions":
            m = max(1, n // 2)
            images, labels = np.asarray(test_arrays[0][:m]), np.asarray(test_arrays[1][:m])
            done = self.model.complete(images, 14, generator, classes=self._classes(labels))
            return np.stack([images, done[:, 0]], axis=1).reshape(-1, 28, 28)
        raise ValueError(f"unknown visualisation {kind!r}; choose samples or completions")


@register("pixelcnn")
class MaskedPixelCNNExperiment(PixelCNNExperiment):
    """``tinygen train pixelcnn``: the masked-conv PixelCNN (see the module doc)."""


@register("gated-pixelcnn")
class GatedPixelCNNExperiment(PixelCNNExperiment):
    """``tinygen train gated-pixelcnn``: the gated PixelCNN, class-conditional with
    ``conditional: true`` (samples then cycle through the 10 classes)."""

    network = GatedPixelCNN
    options = {"n_layers": 10, "conditional": False}

    def _network_options(self):
        return {"n_layers": int(self.config["n_layers"]),
                "num_conditions": 10 if self.config["conditional"] else None}

    def _classes(self, labels):
        return np.asarray(labels) if self.config["conditional"] else None

    def _sample_classes(self, n):
        return np.arange(n) % 10 if self.config["conditional"] else None
