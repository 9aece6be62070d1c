"""The engine's gradient sums and ``sum_to``'s sums over broadcast axes as numba
kernels shared out among threads (``chunks.share_rows``, ``share_range``), tested against
``tinygen.backend.reference.sums`` (read that first).

Why: numpy's ``a + b``, ``total += part`` and ``a.sum(axis=...)`` run on the calling
thread only.  In a training step at 2 threads they were the largest serial pieces
left: the gated PixelCNN (h=48, batch 32) spent ~22 ms of a step adding the
gradients of tensors used several times and ~15 ms summing bias gradients over batch
and space, while the other core waited.

Exactness: an elementwise sum is exact however it is cut (``add``, ``add_into``:
bit-equal to numpy).  A sum over axes is cut only over the elements it keeps (a bias'
channels), so each output element is summed by one thread, in one fixed order, whatever
the thread count: the results are the same at 1 and 2 threads and run to run.  Each
output element is a float64 sum of blocks of its contiguous run (``Q``), each block
summed in the array's dtype with several partial sums (their order the compiled loop's,
fixed by ``Q``): as accurate as numpy's pairwise sum, but not its bits (the last ones
differ).
"""
import math

import numpy as np
from numba import njit

from .chunks import share_range, share_rows
from ..reference import sums as _reference

_KERNEL = dict(cache=True, nogil=True, error_model="numpy")


# Loops over range(x.size), slices given by share_rows: an index from range(lo, hi) may
# be negative as far as numba knows, and the wrap-around check it then makes per element
# kept LLVM from vectorising (twice numpy's time).
@njit(**_KERNEL)
def _add(a, b, out):
    for i in range(out.size):
        out[i] = a[i] + b[i]


@njit(**_KERNEL)
def _add_into(total, part):
    for i in range(total.size):
        total[i] += part[i]


# The q axis is summed in blocks of BLOCK elements, each in the array's dtype with
# several partial sums (reassoc lets LLVM vectorise it: float32 at full SIMD width),
# the blocks' sums added up in float64.  Accumulating every element in float64 was 10-40%
# slower than numpy's einsum on one thread (a conversion per element, half the lanes).
BLOCK = 256
# Runs shorter than this are summed by the reference: einsum vectorises across them
# where this kernel sums each alone (DCGAN's 7x7 bias, (64, 128, 49): 56 us against 43 on
# one thread); a linear bias (runs of 1) is summed by numpy as fast (rows in turn, 6 us
# for 128 x 512).
SHORTEST_RUN = 64


@njit(fastmath={"reassoc"}, **_KERNEL)
def _sum_pcq(a, zero, out, lo, hi):
    """out[c] = sum over p, q of a[p, c, q] for c in [lo, hi)."""
    n_p, _, n_q = a.shape
    totals = np.zeros(hi - lo, dtype=np.float64)
    for p in range(n_p):        # (p outermost: the range's rows read in memory order)
        for c in range(lo, hi):
            total = totals[c - lo]
            for q0 in range(0, n_q, BLOCK):
                block = a[p, c, q0:q0 + BLOCK]  # (a slice: range(q0, ...) indices are
                part = zero                     # checked for wrap-around, not vectorised)
                for q in range(block.size):
                    part += block[q]
                total += part
            totals[c - lo] = total
    for c in range(lo, hi):
        out[c] = totals[c - lo]


def _flat_pair(a, b):
    """1-D views of a and b when both are C-contiguous float arrays of one shape and
    dtype (else None: numpy handles broadcasting, mixed dtypes and strides)."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape
            and a.dtype == b.dtype and a.dtype.kind == "f" and a.flags.c_contiguous
            and b.flags.c_contiguous):
        return a.reshape(-1), b.reshape(-1)
    return None


def add(a, b):
    flat = _flat_pair(a, b)
    if flat is None:
        return _reference.add(a, b)
    out = np.empty(a.shape, dtype=a.dtype)
    share_rows(_add, a.size, 3 * a.size, flat[0], flat[1], out.reshape(-1))
    return out


def add_into(total, part):
    flat = _flat_pair(total, part)
    if flat is None:
        _reference.add_into(total, part)
        return
    share_rows(_add_into, total.size, 3 * total.size, flat[0], flat[1])


def sum_axes(a, axes):
    """``a.sum(axis=axes)`` where the kept axes are one run followed by summed axes (a
    conv bias' channels): the array as (P, C, Q), summed over P and Q, C cut among
    threads.  Small arrays, one kept element (a full sum: nothing to cut), runs
    shorter than SHORTEST_RUN and other layouts: the reference."""
    if (type(a) is not np.ndarray or a.size < _reference.EINSUM_SUM_FROM
            or a.dtype.kind != "f" or not a.flags.c_contiguous):
        return _reference.sum_axes(a, axes)
    kept = [i for i in range(a.ndim) if i not in axes]
    if not kept or kept[-1] - kept[0] != len(kept) - 1:
        return _reference.sum_axes(a, axes)
    shape = a.shape[kept[0]:kept[-1] + 1]
    n_c, n_q = math.prod(shape), math.prod(a.shape[kept[-1] + 1:])
    if n_c < 2 or n_q < SHORTEST_RUN:
        return _reference.sum_axes(a, axes)
    out = np.empty(n_c, dtype=a.dtype)
    share_range(_sum_pcq, n_c, a.size, a.reshape(-1, n_c, n_q), a.dtype.type(0), out)
    return out.reshape(shape)
