"""The global random generator behind factories, dropout and init.

``manual_seed(s)`` makes everything that draws from the default generator
reproducible.  Every consumer also accepts an explicit ``numpy.random.Generator``.
Random numbers are always drawn on the CPU (and copied to the GPU when needed),
so one seed gives the same numbers on every device.
"""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Reseed the default generator; returns it."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator():
    return _generator


def get_rng_state():
    """The default generator's state (a JSON-friendly dict), for checkpoints."""
    return _generator.bit_generator.state


def set_rng_state(state):
    _generator.bit_generator.state = state
