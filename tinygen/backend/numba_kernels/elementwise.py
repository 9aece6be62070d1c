"""The elementwise family on the CPU: an array and a number, shared out among threads.

Same functions and signatures as ``tinygen.backend.reference.elementwise`` (read that
first).  Below ``chunks.SHARE_THRESHOLD`` elements, at one thread, and for a layout or
dtype the kernels do not take, they are the reference (numpy's own loop: nothing to
share out).  Above it, one numba pass over consecutive slices shared out by
``chunks.share_rows``: each element is one IEEE operation, so the bits are the
reference's.

Why share out an operation this cheap (a 64K-element float32 product: ~8 us): at two
threads an elementwise chain runs fastest when EVERY op of it is shared out.  Sharing
only the costlier ops (sigmoid, tanh) made the 100-op chain at 2 threads 5% slower
than sharing none: each shared op leaves half its output in the other core's cache,
and the next unshared op reads it from there.  With these ops (and every activation
from SHARE_THRESHOLD) shared out too, each thread mostly works on the same half of
every array (the caller claims the first range, a helper in time the second), and
the chain took 0.84x the time of sharing none (benchmarks/results/cpu-2core.md,
session 20).
"""
import numpy as np
from numba import njit

from . import chunks
from ..reference import elementwise as _reference

_FLOATS = (np.float32, np.float64)


def _kernel(loop):
    # error_model="numpy": a division by zero gives inf/NaN as numpy's, not a check per
    # element that keeps LLVM from vectorising.  No fastmath: one operation each, exact.
    return njit(cache=True, nogil=True, error_model="numpy")(loop)


@_kernel
def _add(a, c, out):
    for i in range(a.size):
        out[i] = a[i] + c


@_kernel
def _mul(a, c, out):
    for i in range(a.size):
        out[i] = a[i] * c


@_kernel
def _div(a, c, out):
    for i in range(a.size):
        out[i] = a[i] / c


@_kernel
def _sub_from(a, c, out):
    for i in range(a.size):
        out[i] = c - a[i]


def _shared(kernel, a, c):
    """``kernel`` over a large array shared out, or None to take the reference (one
    thread, a layout or dtype the kernels do not take)."""
    if a.dtype not in _FLOATS or not a.flags.c_contiguous or chunks.thread_count() <= 1:
        return None
    out = np.empty(a.shape, dtype=a.dtype)
    chunks.share_rows(kernel, a.size, a.size, a.reshape(-1), a.dtype.type(c), out.reshape(-1))
    return out


def _with_number(kernel, reference):
    """The family's function of ``reference``'s name: ``kernel`` shared out for a large
    array, else ``reference``.  (The size is checked first, here: these run for every
    x * 0.9 of a model, most of them small, where one Python call more is a tenth of
    the op.)"""
    def function(a, c):
        if a.size >= chunks.SHARE_THRESHOLD and (out := _shared(kernel, a, c)) is not None:
            return out
        return reference(a, c)

    function.__name__ = function.__qualname__ = reference.__name__
    function.__doc__ = reference.__doc__
    return function


add_constant = _with_number(_add, _reference.add_constant)
mul_constant = _with_number(_mul, _reference.mul_constant)
div_constant = _with_number(_div, _reference.div_constant)
sub_from_constant = _with_number(_sub_from, _reference.sub_from_constant)
