"""``ShardedGenerator``: per-sample noise that does not depend on how a batch is split.

Every rank holds the same numpy Generator (same seed, same state).  Inside one training
step this rank has rows ``[start, stop)`` of a global batch of ``total`` samples.  A draw
whose leading dimension is this rank's batch size is *per sample* (latents, the VAE's
reparameterisation noise, dynamic binarisation, WGAN-GP's interpolation weights): the
wrapper draws it for the whole global batch and returns this rank's rows, so rank r gets
exactly the numbers one process with the whole batch would give those samples, and every
rank's generator advances as that process's would.  Any other draw (scalars, shapes not
led by the batch) is made as asked, the same on every rank.
"""
import functools

import numpy as np

# method -> position of its ``size`` argument
_SIZE_AT = {"random": 0, "standard_normal": 0, "normal": 2, "uniform": 2, "integers": 2,
            "exponential": 1, "logistic": 2, "binomial": 2}


class ShardedGenerator(np.random.Generator):
    """A numpy Generator sharing ``generator``'s bit generator (drawing from it advances
    it), whose per-sample draws return rows ``[start, stop)`` of a ``total``-row draw.
    It *is* a ``numpy.random.Generator``, so code that checks for one accepts it; the
    methods in ``_SIZE_AT`` shard, any other draws as asked (not per sample)."""

    def __init__(self, generator, start, stop, total):
        if not isinstance(generator, np.random.Generator):
            raise TypeError(f"ShardedGenerator wraps a numpy.random.Generator, got "
                            f"{type(generator).__name__}")
        if not 0 <= start <= stop <= total:
            raise ValueError(f"bad shard [{start}, {stop}) of a batch of {total}")
        super().__init__(generator.bit_generator)
        self.start, self.stop, self.total = int(start), int(stop), int(total)

    def _draw(self, name, args, kwargs):
        method = getattr(super(), name)
        position = _SIZE_AT[name]
        args = list(args)
        if "out" in kwargs:
            raise TypeError(f"ShardedGenerator.{name}: out= is not supported")
        size = kwargs["size"] if "size" in kwargs else \
            args[position] if len(args) > position else None
        shape = (size,) if isinstance(size, (int, np.integer)) else size
        local = self.stop - self.start
        if shape is None or len(shape) == 0 or shape[0] != local or local == self.total:
            return method(*args, **kwargs)
        for a in args[:position] + [v for k, v in kwargs.items() if k != "size"]:
            if isinstance(a, (np.ndarray, list, tuple)) and np.ndim(a) > 0:
                raise TypeError(f"ShardedGenerator.{name}: per-sample draws take scalar "
                                f"parameters only, got an array of shape {np.shape(a)}")
        full = (self.total,) + tuple(shape[1:])
        if "size" in kwargs:
            kwargs["size"] = full
        else:
            args[position] = full
        return method(*args, **kwargs)[self.start:self.stop]

    def __repr__(self):
        return f"ShardedGenerator(rows [{self.start}, {self.stop}) of {self.total})"


def _sharded(name):
    @functools.wraps(getattr(np.random.Generator, name))
    def draw(self, *args, **kwargs):
        return self._draw(name, args, kwargs)

    return draw


for _name in _SIZE_AT:
    setattr(ShardedGenerator, _name, _sharded(_name))
