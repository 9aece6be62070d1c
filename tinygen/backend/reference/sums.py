"""Reference sums, for any array module: the autograd engine's gradient sums (two
gradients of one tensor added) and ``sum_to``'s sum over broadcast axes.

Read these to see what the numba kernels (``numba_kernels/sums.py``) compute; on the
GPU these expressions are what runs.
"""
import numpy as np


def add(a, b):
    """``a + b`` in a new array (``a`` and ``b`` of one shape and dtype)."""
    return a + b


def add_into(total, part):
    """``total += part`` in place (one shape and dtype)."""
    total += part


# From this many elements a sum over axes that include the last one runs as numpy's
# einsum: its SIMD loop over the contiguous axis is 2-4x faster than ndarray.sum's
# there (a conv bias' gradient, (32, 96, 28, 28) -> (96,): 0.52 -> 0.22 ms), with
# the same float32 accuracy (several partial sums, no single long one).
EINSUM_SUM_FROM = 1 << 16
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def sum_axes(a, axes):
    """``a.sum(axis=axes)`` (``axes`` sorted, not empty)."""
    if (type(a) is np.ndarray and a.size >= EINSUM_SUM_FROM and axes[-1] == a.ndim - 1
            and a.dtype.kind == "f" and a.ndim <= len(_LETTERS)):
        kept = "".join(_LETTERS[i] for i in range(a.ndim) if i not in axes)
        return np.einsum(f"{_LETTERS[:a.ndim]}->{kept}", a)
    return a.sum(axis=axes)
