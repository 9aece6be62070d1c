"""A tiny Experiment for the runner tests (also imported by the process that
test_kill_resume.py kills): registered as ``tiny-mlp-test``."""
import numpy as np

import tinygen as tg
from tinygen import nn
from tinygen.data import load_embedded_subset, to_unit
from tinygen.models.experiment import EXPERIMENTS, Experiment, register

TINY = "tiny-mlp-test"


class TinyExperiment(Experiment):
    """A 784-8-10 MLP with dropout: draws from the step generator (input noise) and
    from tinygen's global generator (dropout), reports a second loss every other step
    (so histories have gaps), keeps a counter in extra_state, and samples noise images
    from the generator it is given."""

    @classmethod
    def default_config(cls):
        return {"epochs": 2, "batch_size": 16, "lr": 1e-2, "hidden": 8, "dropout": 0.2}

    def __init__(self, config):
        super().__init__(config)
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(784, config["hidden"]), nn.ReLU(),
                                   nn.Dropout(config["dropout"]), nn.Linear(config["hidden"], 10))
        self.optimizer = tg.optim.Adam(self.model.parameters(), lr=config["lr"])
        self.steps = 0

    def load_data(self):
        (x, y), (xt, yt) = load_embedded_subset("train"), load_embedded_subset("test")
        limit, test_limit = self.config.get("limit"), self.config.get("test_limit")
        return (x[:limit], y[:limit]), (xt[:test_limit or 200], yt[:test_limit or 200])

    def modules(self):
        return {"mlp": self.model}

    def optimizers(self):
        return {"adam": self.optimizer}

    def extra_state(self):
        return {"steps": self.steps}

    def load_extra_state(self, state):
        self.steps = int(state["steps"])

    def train_step(self, batch, generator):
        images, labels = batch
        x = to_unit(images) + 0.01 * generator.standard_normal(images.shape).astype(np.float32)
        loss = tg.cross_entropy(self.model(tg.as_tensor(x)), tg.as_tensor(labels))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        out = {"loss": loss.item()}
        if self.steps % 2 == 0:
            out["half"] = loss.item() / 2
        return out

    def sample(self, n, generator):
        return generator.integers(0, 256, (n, 28, 28), dtype=np.uint8)

    def evaluate(self, test_arrays, generator):
        x, y = test_arrays
        logits = self.model(tg.as_tensor(to_unit(x)))
        return {"accuracy": float((logits.argmax(axis=1).numpy() == y).mean()),
                "training_flag": float(self.model.training)}


if TINY not in EXPERIMENTS:
    register(TINY)(TinyExperiment)


