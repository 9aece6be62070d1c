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
the thread count: the results are the same at 1 and 2 threads and run to run.  Over
the contiguous summed axes (``Q``) each element accumulates in float64 (vectorised:
the order among the lanes is the compiled loop's, fixed by ``Q``); a sum over leading
axes only (a linear bias) adds the rows one after another, in float64 too.  So a float32
sum is closer to the exact one than numpy's pairwise sum, and differs from it in the
last bits.
"""
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


# reassoc: lets LLVM vectorise the float64 accumulation over q (several partial sums);
# no other fast-math flag, so NaN and inf propagate as in numpy.
@njit(fastmath={"reassoc"}, **_KERNEL)
def _sum_pcq(a, out, lo, hi):
    """out[c] = sum over p, q of a[p, c, q] for c in [lo, hi): q innermost, in float64."""
    n_p, _, n_q = a.shape
    for c in range(lo, hi):
        total = 0.0
        for p in range(n_p):
            row = 0.0
            for q in range(n_q):
                row += np.float64(a[p, c, q])
            total += row
        out[c] = total


@njit(**_KERNEL)
def _sum_pc(a, out, lo, hi):
    """out[c] = a[0, c] + a[1, c] + ... for c in [lo, hi), in float64: rows added one
    after another (vectorised over c)."""
    total = np.zeros(hi - lo, dtype=np.float64)
    for p in range(a.shape[0]):
        row = a[p, lo:hi]
        for c in range(hi - lo):
            total[c] += row[c]
    for c in range(hi - lo):
        out[lo + c] = total[c]


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
    """``a.sum(axis=axes)`` where the kept axes are one run (a bias' channels): the
    array as (P, C, Q), summed over P and Q, C cut among threads.  Small arrays, one
    kept element (a full sum: nothing to cut) and other layouts: the reference."""
    if (type(a) is not np.ndarray or a.size < _reference.EINSUM_SUM_FROM
            or a.dtype.kind != "f" or not a.flags.c_contiguous):
        return _reference.sum_axes(a, axes)
    kept = [i for i in range(a.ndim) if i not in axes]
    if not kept or kept[-1] - kept[0] != len(kept) - 1:
        return _reference.sum_axes(a, axes)
    shape = a.shape[kept[0]:kept[-1] + 1]
    n_c, n_q = int(np.prod(shape)), int(np.prod(a.shape[kept[-1] + 1:]))
    if n_c < 2:
        return _reference.sum_axes(a, axes)
    out = np.empty(n_c, dtype=a.dtype)
    if n_q == 1:
        share_range(_sum_pc, n_c, a.size, a.reshape(-1, n_c), out)
    else:
        share_range(_sum_pcq, n_c, a.size, a.reshape(-1, n_c, n_q), out)
    return out.reshape(shape)
