"""``tinygen train`` in a process that signals itself at a chosen point of the run.

    python kill_driver.py POINT NTH SIGNAL -- ARGV...

POINT is where (``train_step``, ``evaluate``, ``sample``: the tiny experiment's methods;
``checkpoint``: inside the checkpoint's atomic write, the temp file half made;
``metrics``: inside metrics.json's atomic write), NTH the how-manieth such call of this
process, SIGNAL ``KILL`` or ``INT`` (``none``: run to the end). Used by
test_kill_resume.py; not a test itself.
"""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tiny_experiment  # noqa: E402  (registers tiny-mlp-test)
from tinygen import serialization  # noqa: E402
from tinygen.cli import main  # noqa: E402


def arm(point, nth, signum):
    calls = [0]

    def hit():
        calls[0] += 1
        if calls[0] == nth:
            os.kill(os.getpid(), signum)

    def wrap(owner, name):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if point == "checkpoint":  # the temp file holds the data; not renamed yet
                result = original(*args, **kwargs)
                hit()
                return result
            hit()
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)

    targets = {"train_step": (tiny_experiment.TinyExperiment, "train_step"),
               "evaluate": (tiny_experiment.TinyExperiment, "evaluate"),
               "sample": (tiny_experiment.TinyExperiment, "sample"),
               "checkpoint": (serialization.np, "savez"),
               "metrics": (json, "dump")}
    wrap(*targets[point])


if __name__ == "__main__":
    point, nth, sig = sys.argv[1:4]
    assert sys.argv[4] == "--"
    if point != "none":
        arm(point, int(nth), {"KILL": signal.SIGKILL, "INT": signal.SIGINT}[sig])
    sys.exit(main(sys.argv[5:]))
