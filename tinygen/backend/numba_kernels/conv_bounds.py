"""What the conv paths share: the in-bounds stretch of an output row (conv.py's im2col,
conv_rows.py's unfold) and the bias and residual their forwards add (``add_terms`` from
Python, ``add_terms_images`` from compiled code: the same float additions; the terms
handed to compiled code by ``terms_for_kernel``)."""
import numpy as np
from numba import njit


@njit(cache=True, fastmath=False)
def valid_range(offset, stride, size, count):
    """The output positions q in [0, count) whose input q*stride + offset lies in
    [0, size), as a half-open range (lo, hi): the loops then need no per-element
    bounds test."""
    # lo is clamped to count too: the callers zero-fill [0, lo) and [hi, count), and
    # a padding wider than the whole output (a length-1 causal conv with dilation 4)
    # would otherwise send those loops past the end of the row.
    lo = min(count, max(0, -(offset // stride)))
    hi = min(count, max(0, (size - 1 - offset) // stride + 1))
    return lo, max(lo, hi)


def terms_for_kernel(a, dtype):
    """A bias or residual as a compiled kernel takes it: flat and contiguous, or an
    empty array of ``dtype`` when there is none (``add_terms_images`` tests the size)."""
    return np.empty(0, dtype) if a is None else np.ascontiguousarray(a).reshape(-1)


def add_terms(y, bias, residual=None):
    """y (k, O, ...) += bias (O,), then += residual (y's shape), in place: a forward
    adds them per chunk, while the chunk's outputs are still in cache, instead of later
    passes over fresh arrays.  The same float additions as ``residual + (conv + bias)``,
    so the same numbers."""
    if bias is not None:
        np.add(y, bias.reshape((-1,) + (1,) * (y.ndim - 2)), out=y)
    if residual is not None:
        np.add(y, residual, out=y)


@njit(cache=True, nogil=True, fastmath=False)
def add_terms_images(y, bias, residual, start, stop, out_channels, plane):
    """``add_terms`` from compiled code, for the images [start, stop) of a flat y (N, O,
    plane): y[n] += bias (per channel; none if empty), then += residual[n] (flat, y's
    order; none if empty).  (Through views of the image: indexing the flat arrays
    directly, the loops did not vectorise, 4.6x slower.)"""
    size = out_channels * plane
    for n in range(start, stop):
        at = n * size
        if bias.size:
            for o in range(out_channels):
                row, b = y[at + o * plane:at + (o + 1) * plane], bias[o]
                for i in range(plane):
                    row[i] += b
        if residual.size:
            image, terms = y[at:at + size], residual[at:at + size]
            for i in range(size):
                image[i] += terms[i]
