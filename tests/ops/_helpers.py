"""Shared helpers for the op tests: float32 leaves, small shapes, tie-free draws, numpy
oracles (float64 leaves, check_grads and assert_close are public: tinygen.testing)."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg
from tinygen.testing import strategies as tst

# Small shapes: finite differences cost two evaluations per input element, and
# gradgradcheck doubles the inputs (x and the upstream gradient).
SMALL = dict(max_dims=3, max_side=3)


def small_shapes(min_dims=0, max_dims=3, max_side=3):
    return tst.shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side)


def f32(array, requires_grad=True):
    return tg.tensor(np.asarray(array, dtype=np.float32), dtype=tg.float32,
                     requires_grad=requires_grad)


@st.composite
def distinct_tensors(draw, shape=None, requires_grad=True):
    """float64 tensors whose values are pairwise far apart (>= 0.2), whose absolute
    values are pairwise far apart too, and which stay >= 0.2 away from 0.

    max/min (and norm with p=inf) are not differentiable at ties; this keeps the
    finite differences of gradcheck well away from them while the shape, the
    order of the values and their signs are still drawn by hypothesis.
    """
    if shape is None:
        shape = small_shapes()
    if not isinstance(shape, tuple):
        shape = draw(shape)
    n = int(np.prod(shape, dtype=np.int64))
    order = np.array(draw(st.permutations(range(n))), dtype=np.float64).reshape(shape)
    jitter = draw(hnp.arrays(np.float64, shape, elements=st.floats(-0.1, 0.1)))
    signs = draw(hnp.arrays(np.bool_, shape, elements=st.booleans()))
    magnitude = 0.3 + 0.4 * order + jitter
    values = np.where(signs, magnitude, -magnitude)
    t = tg.tensor(np.ascontiguousarray(values), dtype=tg.float64)
    if requires_grad:
        t.requires_grad = True
    return t


def quantized(array, offset):
    """``array`` rounded to a multiple of 0.5, plus ``offset``: two arrays quantized
    with offsets 0 and 0.25 differ by at least 0.25 everywhere (no ties)."""
    return np.floor(np.asarray(array) * 2.0) / 2.0 + offset


class np_special:
    """Plain numpy oracles for logsumexp/softmax/log_softmax (float64, max-shifted),
    so the op tests need nothing beyond numpy."""

    @staticmethod
    def logsumexp(x, axis=None, keepdims=False):
        x = np.asarray(x, dtype=np.float64)
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        with np.errstate(divide="ignore"):
            out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
        return out if keepdims else np.squeeze(out, axis=axis)

    @staticmethod
    def log_softmax(x, axis=-1):
        x = np.asarray(x, dtype=np.float64)
        return x - np_special.logsumexp(x, axis=axis, keepdims=True)

    @staticmethod
    def softmax(x, axis=-1):
        return np.exp(np_special.log_softmax(x, axis=axis))
