"""Resumable evaluation: ``tinygen eval`` of a long bound (IS-5000 on all 10,000 test
images decodes 5 x 10^7 samples: hours on a CPU) keeps its finished batches in the
run's ``eval-progress.npz`` as it goes, so that an evaluation stopped part-way (a
session ends, the process is killed) continues where it stopped when the same
evaluation is asked for again, and gives the numbers an uninterrupted one gives.

The file holds the evaluation's key (model, checkpoint epoch and step, the full
config and the seed: anything that changes the numbers), how many test images are
done, each per-image result array up to there, and the random generator's state after
them.  It is written atomically after every batch (``atomic_open``: a kill while
writing leaves the previous one), and removed once the evaluation finishes.  A file
with another key (a different k, checkpoint or seed) is ignored and replaced.
"""
import json
from pathlib import Path

import numpy as np

from ..serialization import atomic_open

NAME = "eval-progress.npz"


class EvalProgress:
    """The saved progress of one evaluation, ``key`` a JSON-able dict naming it."""

    def __init__(self, path, key):
        self.path = Path(path)
        self.key = json.dumps(key, sort_keys=True, default=str)

    def load(self, generator):
        """(images done, {name: per-image array}) of a saved evaluation with this key, the
        generator put back in its saved state; (0, None) when there is none."""
        if not self.path.exists():
            return 0, None
        try:
            with np.load(self.path, allow_pickle=False) as f:
                saved = {name: f[name] for name in f.files}
            key, done = str(saved.pop("key")), int(saved.pop("done"))
            state = json.loads(str(saved.pop("generator")))
        except Exception as e:
            raise ValueError(f"{self.path} is not a readable evaluation progress file "
                             f"({type(e).__name__}: {e}); delete it to start the evaluation "
                             "afresh") from None
        if key != self.key:
            return 0, None
        generator.bit_generator.state = state
        return done, {name[len("result_"):]: value for name, value in saved.items()}

    def save(self, done, results, generator):
        """Record that the first ``done`` images are evaluated, with ``results`` (name ->
        array over the images, only its first ``done`` entries are kept along the
        last axis) and the generator's state after them."""
        arrays = {f"result_{name}": np.asarray(value)[..., :done]
                  for name, value in results.items()}
        with atomic_open(self.path, "wb") as f:
            np.savez(f, key=np.array(self.key), done=np.array(done),
                     generator=np.array(json.dumps(generator.bit_generator.state)), **arrays)

    def finish(self):
        """The evaluation is complete: its progress file goes."""
        self.path.unlink(missing_ok=True)
