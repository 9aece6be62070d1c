"""BatchLoader: minibatches over in-memory numpy arrays, resumable bit for bit.

The order of epoch k is a pure function of (seed, k): the permutation comes from
numpy.random.default_rng([seed, k]). Nothing depends on how many epochs this process has
run or on any global random state, so a run restarted from a checkpoint sees exactly
the batches it would have seen had it never stopped. state_dict() records the seed, the
epoch and how many batches of it were already handed out (all plain ints, so they fit
in an .npz checkpoint); load_state_dict() continues from there, mid-epoch included.

Sharding (data-parallel training): with ``world_size=R`` and ``rank=r`` the loader walks
the very same global batches of ``batch_size`` samples and yields only rank r's
contiguous part of each, ``batch_size / R`` samples (a last partial batch is split as
evenly as it goes, lower ranks taking the extra samples).  Concatenating the ranks'
parts in rank order gives the one-process batch, so R ranks with B/R each follow the
data order of one process with B.  The state is the same on every rank and counts
global batches: any rank's state_dict resumes every rank, with any number of ranks.
"""

import operator

import numpy as np


class BatchLoader:
    """Iterate over aligned arrays in minibatches.

    arrays: tuple of numpy arrays with equal first dimension (e.g. (images, labels)).
    Each iteration over the loader is one epoch (or the rest of one, after a resume) and
    yields tuples of batches, one per array, in the order of `arrays`.

    epoch: the epoch the next batch comes from (after a complete pass, the number of
    passes completed). Without shuffling, batches are views into the arrays; with it,
    copies.
    """

    def __init__(self, arrays, batch_size, shuffle=True, seed=0, drop_last=False, rank=0,
                 world_size=1):
        if isinstance(arrays, np.ndarray) or not isinstance(arrays, (tuple, list)):
            raise TypeError(f"arrays must be a tuple of numpy arrays, e.g. (images,) or "
                            f"(images, labels); got {type(arrays).__name__}")
        if len(arrays) == 0:
            raise ValueError("arrays must hold at least one array")
        arrays = tuple(np.asarray(a) for a in arrays)
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(f"arrays[{i}] is 0-dimensional; each array needs a "
                                 f"first (sample) dimension")
        lengths = [a.shape[0] for a in arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"arrays must have equal first dimensions, got lengths {lengths}")
        self.arrays = arrays
        self.num_samples = lengths[0]
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.shuffle = bool(shuffle)
        self.seed = _nonnegative_int(seed, "seed")
        self.drop_last = bool(drop_last)
        self.world_size = _positive_int(world_size, "world_size")
        self.rank = _nonnegative_int(rank, "rank")
        if self.rank >= self.world_size:
            raise ValueError(f"rank {self.rank} is not below world_size {self.world_size}")
        if self.batch_size % self.world_size:
            raise ValueError(f"batch_size {self.batch_size} (the global batch) must be a "
                             f"multiple of world_size {self.world_size}, so that every rank "
                             f"gets batch_size / world_size samples")
        self.epoch = 0
        self._position = 0  # batches of self.epoch already yielded

    def __len__(self):
        """Number of batches in one full epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def order(self, epoch):
        """The sample indices of `epoch`, in the order they are visited."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)

    def __iter__(self):
        self._roll_over_finished_epoch()
        epoch, start = self.epoch, self._position
        order = self.order(epoch) if self.shuffle else None
        for b in range(start, len(self)):
            lo = b * self.batch_size
            hi = min(lo + self.batch_size, self.num_samples)
            # Record progress before handing the batch out: a state_dict taken in the
            # loop body then resumes after this batch, not with it again.
            self._position = b + 1
            lo, hi = self.shard_bounds(lo, hi)
            if order is None:
                yield tuple(a[lo:hi] for a in self.arrays)
            else:
                idx = order[lo:hi]
                yield tuple(a[idx] for a in self.arrays)
        if len(self) == 0:
            self.epoch += 1  # an epoch with no batches is still a pass
        self._roll_over_finished_epoch()

    def shard_bounds(self, lo, hi):
        """This rank's ``[lo', hi')`` of the global batch ``[lo, hi)``."""
        if self.world_size == 1:
            return lo, hi
        base, extra = divmod(hi - lo, self.world_size)
        start = lo + self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def state_dict(self):
        """Plain-int state from which load_state_dict resumes bit for bit."""
        self._roll_over_finished_epoch()
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self._position,
            "num_samples": self.num_samples,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state):
        """Continue from a state_dict(): same seed, epoch, and place within the epoch.

        The loader must have been built over data of the same length and batch size,
        since those fix what a position within an epoch means.
        """
        required = ("seed", "epoch", "position")
        missing = [k for k in required if k not in state]
        if missing:
            raise KeyError(f"BatchLoader state is missing {missing} (has {sorted(state)})")
        for key, mine in (("num_samples", self.num_samples), ("batch_size", self.batch_size)):
            if key in state and _as_int(state[key], key) != mine:
                raise ValueError(f"BatchLoader state was saved with {key}={int(state[key])}, "
                                 f"this loader has {key}={mine}")
        seed = _nonnegative_int(state["seed"], "seed")
        epoch = _nonnegative_int(state["epoch"], "epoch")
        position = _nonnegative_int(state["position"], "position")
        if position > len(self):
            raise ValueError(f"BatchLoader state position {position} is past the "
                             f"{len(self)} batches of an epoch")
        self.seed, self.epoch, self._position = seed, epoch, position
        self._roll_over_finished_epoch()

    def _roll_over_finished_epoch(self):
        # After the last batch of an epoch has been yielded, that epoch is done even if
        # the consumer never asked for the StopIteration that follows it.
        if self._position >= len(self) and self._position > 0:
            self.epoch += 1
            self._position = 0

    def __repr__(self):
        shapes = ", ".join(str(a.shape) for a in self.arrays)
        shard = f", rank={self.rank}, world_size={self.world_size}" \
            if self.world_size > 1 else ""
        return (f"BatchLoader(arrays=[{shapes}], batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
                f"epoch={self.epoch}{shard})")


def _as_int(value, name):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # accepts int and numpy integers (0-d arrays too)
    except TypeError:
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu":
            return int(value)
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def _positive_int(value, name):
    value = _as_int(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def _nonnegative_int(value, name):
    value = _as_int(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value
