"""``DistributedRun``: what ``tinygen train --distributed`` does differently.

The runner stays the one-process loop; at a few points it asks this object:

- ``loader_shard()``     rank and world size for the ``BatchLoader`` (``batch_size`` stays
                         the global batch; each rank gets ``batch_size / R`` samples);
- ``prepare(experiment)`` every batch norm synchronised across ranks, rank 0's
                         parameters and buffers broadcast, every optimizer's gradients
                         averaged before its step (``GradientReducer``), and a check that
                         every rank resumed from the same checkpoint;
- ``generator(g, batch)`` the runner's generator as a ``ShardedGenerator`` for the step;
- ``average(losses)``    the step's losses averaged over the ranks (what one process with
                         the whole batch reports);
- ``writer``             only rank 0 writes checkpoints, samples, plots and metrics and
                         prints; ``after_epoch`` keeps the others until it is done.
"""
import hashlib

import numpy as np

from .reducer import GradientReducer, broadcast_module_, DEFAULT_BUCKET_BYTES
from .sharded_random import ShardedGenerator


class DistributedRun:
    def __init__(self, comm, bucket_bytes=DEFAULT_BUCKET_BYTES, overlap=False,
                 sync_batchnorm=True):
        self.comm = comm
        self.rank, self.size = comm.rank, comm.size
        self.bucket_bytes, self.overlap = bucket_bytes, overlap
        self.sync_batchnorm = sync_batchnorm
        self.reducers = {}

    @classmethod
    def start(cls, device, **options):
        from . import init

        comm = init(device)
        if device == "cpu":
            share_cores(comm)
        return cls(comm, **options)

    @property
    def writer(self):
        return self.rank == 0

    def loader_shard(self):
        return {"rank": self.rank, "world_size": self.size}

    def prepare(self, experiment, resumed_step=0):
        from ..nn import SyncBatchNorm

        self.comm.check_same(float(resumed_step), "the step they resume from (every rank "
                             "must read the same checkpoint)")
        for name, module in experiment.modules().items():
            if self.sync_batchnorm:
                SyncBatchNorm.convert_sync_batchnorm(module, self.comm)
            fingerprint = _fingerprint(module)
            broadcast_module_(module, self.comm)
            if resumed_step:
                self.comm.check_same(fingerprint, f"the weights of {name!r} they resumed "
                                     "(every rank must read the same checkpoint)")
        for name, optimizer in experiment.optimizers().items():
            params = [p for group in optimizer.param_groups for p in group["params"]]
            reducer = GradientReducer(params, self.comm, self.bucket_bytes, self.overlap)
            reducer.attach(optimizer)
            self.reducers[name] = reducer
        return experiment

    def generator(self, generator, batch):
        if self.size == 1:
            return generator
        n = len(batch[0])  # the runner's loader drops the last partial batch: equal shards
        return ShardedGenerator(generator, self.rank * n, (self.rank + 1) * n, n * self.size)

    def average(self, losses):
        names = list(losses)  # the same keys in the same order on every rank
        values = np.array([float(losses[k]) for k in names], dtype=np.float64)
        self.comm.allreduce_(values, "sum")
        return {k: v / self.size for k, v in zip(names, values.tolist())}

    def after_epoch(self, metrics):
        """Rank 0 shares its end-of-epoch metrics; the others wait for them here."""
        return self.comm.broadcast_json(metrics if self.writer else None)

    def stats(self):
        return {name: dict(r.stats) for name, r in self.reducers.items()}


def share_cores(comm):
    """Give each of the ranks on a machine its share of the cores for numba's and BLAS's
    thread pools (by default each would use them all, and R ranks would oversubscribe
    the machine R times), unless the user set NUMBA_NUM_THREADS / OMP_NUM_THREADS."""
    import os

    if "NUMBA_NUM_THREADS" in os.environ or "OMP_NUM_THREADS" in os.environ:
        return None
    local = comm.local_size() if hasattr(comm, "local_size") else 1
    threads = max(1, (os.cpu_count() or 1) // max(1, local))
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except (ImportError, ValueError):
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass
    return threads


def _fingerprint(module):
    """A number that differs (almost surely) between two different sets of weights."""
    h = hashlib.sha256()
    from ..backend import to_numpy

    for key, t in module.state_dict(keep_vars=True).items():
        h.update(key.encode())
        h.update(np.ascontiguousarray(to_numpy(t.data)).tobytes())
    return float(int.from_bytes(h.digest()[:6], "little"))
