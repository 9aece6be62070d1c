"""Data parallelism over a communicator: the same start, and averaged gradients.

``broadcast_module_(module, comm)``  every parameter and buffer of rank 0, on all ranks
``GradientReducer(params, comm)``    before each optimizer step, every rank's gradients
                                     replaced by their average over the ranks

Buckets.  The gradients are copied into flat buffers of about ``bucket_bytes`` each
(parameters in reverse order, the order backward tends to finish them in; a new bucket
also starts where the dtype or device changes) and each bucket is all-reduced as one
message: a few large collectives instead of one per parameter.  The layout is fixed
when the reducer is built, and buckets are sent in their fixed order on every rank, so
the sums are the same on all ranks and from run to run.

Overlap (``overlap=True``).  A hook on each parameter (the engine calls it once the
parameter's gradient for this backward is complete) copies the gradient into its bucket;
when a bucket is full -- and every bucket before it was sent -- its all-reduce starts,
while backward goes on with the earlier layers.  ``synchronize()`` (run by the optimizer's
step pre-hook) sends what is left, waits and writes the averages into ``.grad``.  It
assumes one backward per optimizer step; a second gradient for a parameter whose bucket
is already on its way is an error (use overlap=False to accumulate several).

A parameter without a gradient stays without one only if it has none on every rank; a
gradient present on some ranks but not others is an error (the ranks ran different
graphs), found by a small all-reduce of the presence flags.
"""
import time

import numpy as np

from ..autograd.tensor import Tensor
from ..backend import array_module, device_of
from .comm import DistributedError

DEFAULT_BUCKET_BYTES = 25 * 2 ** 20  # PyTorch DDP's default bucket size


def broadcast_module_(module, comm, root=0):
    """Overwrite every parameter and buffer of ``module`` with rank ``root``'s (in the
    order of its state_dict, the same on every rank). Returns ``module``."""
    for _, tensor in module.state_dict(keep_vars=True).items():
        if tensor is None:
            continue
        data = tensor.data
        if not data.flags.c_contiguous or not data.flags.writeable:
            data = array_module(data).ascontiguousarray(data)
            tensor.data = data
        comm.broadcast_(data, root)
    return module


class _Bucket:
    def __init__(self, index, params, dtype, device, xp):
        self.index, self.params = index, params
        self.sizes = [int(np.prod(p.shape, dtype=np.int64)) for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.buffer = xp.zeros(int(self.offsets[-1]), dtype=dtype)
        self.dtype, self.device = dtype, device
        self.nbytes = self.buffer.nbytes
        self.reset()

    def reset(self):
        self.ready = set()
        self.request = None

    def slot(self, i):
        return self.buffer[self.offsets[i]:self.offsets[i + 1]]


class GradientReducer:
    """Average the gradients of ``params`` over the ranks of ``comm`` (see module doc).

    Hook it to an optimizer with ``reducer.attach(optimizer)`` (a step pre-hook), or call
    ``synchronize()`` between backward and step yourself.  ``stats`` counts bytes sent
    and seconds spent waiting, for benchmarks.
    """

    def __init__(self, params, comm, bucket_bytes=DEFAULT_BUCKET_BYTES, overlap=False):
        self.params = list(params)
        if not self.params:
            raise ValueError("GradientReducer got no parameters")
        if not bucket_bytes or bucket_bytes <= 0:
            raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes!r}")
        self.comm, self.overlap = comm, bool(overlap)
        self.bucket_bytes = int(bucket_bytes)
        self.buckets, self._where = self._layout()
        self._handles = []
        self._next_to_send = 0
        self.stats = {"steps": 0, "bytes": 0, "wait_seconds": 0.0, "allreduces": 0}
        if self.overlap:
            for p in self.params:
                self._handles.append(p.register_hook(self._hook_for(p)))

    def _layout(self):
        buckets, where, current, size, key = [], {}, [], 0, None
        order = list(reversed(self.params))
        if len({id(p) for p in order}) != len(order):
            raise ValueError("GradientReducer: a parameter is listed twice")

        def close():
            if current:
                p0 = current[0]
                buckets.append(_Bucket(len(buckets), list(current), p0.dtype, p0.device,
                                       array_module(p0.data)))

        for p in order:
            k = (p.dtype, device_of(p.data))
            nbytes = p.data.nbytes
            if current and (k != key or size + nbytes > self.bucket_bytes):
                close()
                current, size = [], 0
            key = k
            current.append(p)
            size += nbytes
        close()
        for b in buckets:
            for i, p in enumerate(b.params):
                where[id(p)] = (b, i)
        return buckets, where

    # --- the optimizer hook ----------------------------------------------------------------
    def attach(self, optimizer):
        """Run ``synchronize()`` before every ``optimizer.step()``; returns the handle."""
        return optimizer.register_step_pre_hook(lambda opt, args, kwargs: self.synchronize())

    def remove(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    # --- overlap: gradients as backward produces them ----------------------------------------
    def _hook_for(self, p):
        def hook(grad):
            bucket, i = self._where[id(p)]
            if bucket.request is not None or i in bucket.ready:
                raise DistributedError(
                    f"a second gradient for a parameter of shape {p.shape} arrived after its "
                    "bucket was sent: GradientReducer(overlap=True) supports one backward "
                    "per optimizer step; use overlap=False to accumulate several")
            slot = bucket.slot(i)
            # the value .grad will hold once the engine has accumulated this gradient
            value = grad.data if p.grad is None else p.grad.data + grad.data
            slot[...] = value.reshape(-1)
            bucket.ready.add(i)
            self._send_ready()
            return None

        return hook

    def _send_ready(self):
        while self._next_to_send < len(self.buckets):
            bucket = self.buckets[self._next_to_send]
            if len(bucket.ready) < len(bucket.params):
                break
            self._send(bucket)
        for bucket in self.buckets[:self._next_to_send]:  # let MPI progress
            bucket.request.test()

    def _send(self, bucket):
        bucket.request = self.comm.start_allreduce(bucket.buffer, "sum")
        self._next_to_send += 1
        self.stats["bytes"] += bucket.nbytes
        self.stats["allreduces"] += 1

    # --- the averaging --------------------------------------------------------------------------
    def synchronize(self):
        """Replace every parameter's ``.grad`` by its average over the ranks."""
        present = np.array([p.grad is not None for p in self.params], dtype=np.int32)
        for bucket in self.buckets[self._next_to_send:]:
            if not self.overlap:
                for i, p in enumerate(bucket.params):
                    slot = bucket.slot(i)
                    if p.grad is None:
                        slot[...] = 0
                    else:
                        slot[...] = p.grad.data.reshape(-1)
            else:
                for i, p in enumerate(bucket.params):
                    if i not in bucket.ready:  # no gradient in this backward
                        bucket.slot(i)[...] = 0 if p.grad is None else p.grad.data.reshape(-1)
            self._send(bucket)
        start = time.perf_counter()
        counts = self.comm.allreduce_(present.copy(), "sum")
        for bucket in self.buckets:
            bucket.request.wait()
        self.stats["wait_seconds"] += time.perf_counter() - start
        self.stats["steps"] += 1
        self._next_to_send = 0
        size = self.comm.size
        mixed = [i for i, c in enumerate(counts) if 0 < c < size]
        if mixed:
            i = mixed[0]
            raise DistributedError(
                f"parameter {i} (shape {self.params[i].shape}) has a gradient on "
                f"{counts[i]} of {size} ranks: the ranks ran different graphs")
        scale = 1.0 / size
        for bucket in self.buckets:
            for i, p in enumerate(bucket.params):
                if not counts[self._index(p)]:
                    continue
                average = bucket.slot(i).reshape(p.shape) * scale
                if p.grad is None or p.grad.grad_fn is not None:
                    p.grad = Tensor._make(average.astype(p.dtype, copy=False))
                else:
                    p.grad.data[...] = average
            bucket.reset()

    def _index(self, p):
        if not hasattr(self, "_positions"):
            self._positions = {id(q): i for i, q in enumerate(self.params)}
        return self._positions[id(p)]
