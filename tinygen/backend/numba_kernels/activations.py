"""Activations and their fused backward products in one pass each (numba, parallel,
cached): the same functions, operations and operation order as
``tinygen.backend.reference.activations`` (read that first), tested against it.

numpy evaluates ``g * y * (1 - y)`` as three passes over memory with two temporaries;
here each element is read once and written once.  Constants are passed in the
array's dtype so that float32 arithmetic stays float32, as in numpy.  Below
PARALLEL_THRESHOLD elements the reference runs instead (bit-equal, and a numba
dispatch plus a thread-count switch cost more than numpy's passes over a small,
cached array: a 100-op chain on a 4x4 tensor spent half its backward there).
"""
import numpy as np
from numba import njit, prange

from . import PARALLEL_THRESHOLD, sized
from ..reference import activations as _reference


@njit(parallel=True, cache=True)
def _leaky_forward(x, slope, out):
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v > 0 else v * slope


@njit(parallel=True, cache=True)
def _leaky_backward(g, x, slope, out):
    for i in prange(g.size):
        out[i] = g[i] if x[i] > 0 else g[i] * slope


@njit(parallel=True, cache=True)
def _sigmoid_select(x, e, one, out):
    """e = exp(-|x|), computed by numpy (its SIMD exp; numba's is a scalar libm call)."""
    for i in prange(x.size):
        out[i] = one / (one + e[i]) if x[i] >= 0 else e[i] / (one + e[i])


@njit(parallel=True, cache=True)
def _relu_backward(g, y, one, zero, out):
    for i in prange(g.size):
        out[i] = g[i] * (one if y[i] > 0 else zero)


@njit(parallel=True, cache=True)
def _softplus_select(x, z, log1p_e, beta, threshold, zero, out):
    """log1p_e = log1p(exp(-|z|)) for z = beta x (numpy's SIMD exp and log1p)."""
    for i in prange(x.size):
        if z[i] > threshold:
            out[i] = x[i]
        else:
            positive_part = zero if z[i] < zero else z[i]     # NaN stays NaN
            out[i] = (positive_part + log1p_e[i]) / beta


@njit(parallel=True, cache=True)
def _softplus_backward(g, z, e, one, threshold, out):
    """e = exp(-|z|) for z = beta x; sigmoid(z) selected as in sigmoid_forward."""
    for i in prange(g.size):
        if z[i] > threshold:
            out[i] = g[i]
        else:
            s = one / (one + e[i]) if z[i] >= 0 else e[i] / (one + e[i])
            out[i] = g[i] * s


@njit(parallel=True, cache=True)
def _sigmoid_backward(g, y, one, out):
    for i in prange(g.size):
        out[i] = g[i] * y[i] * (one - y[i])


@njit(parallel=True, cache=True)
def _tanh_backward(g, y, one, out):
    for i in prange(g.size):
        out[i] = g[i] * (one - y[i] * y[i])


def _flat(a):
    return np.ascontiguousarray(a).reshape(-1)


def _run(kernel, shape_of, *arrays_then_scalars, dtype):
    out = np.empty(shape_of.shape, dtype=dtype)
    sized(kernel, out.size, *arrays_then_scalars, out.reshape(-1))
    return out


def leaky_relu_forward(x, slope):
    if x.size < PARALLEL_THRESHOLD:
        return _reference.leaky_relu_forward(x, slope)
    return _run(_leaky_forward, x, _flat(x), x.dtype.type(slope), dtype=x.dtype)


def leaky_relu_backward(g, x, slope):
    if g.size < PARALLEL_THRESHOLD:
        return _reference.leaky_relu_backward(g, x, slope)
    return _run(_leaky_backward, g, _flat(g), _flat(x), g.dtype.type(slope), dtype=g.dtype)


def _neg_abs_exp(x):
    """exp(-|x|) with numpy's vectorised exp, in one flat buffer."""
    e = np.abs(_flat(x))
    np.negative(e, out=e)
    return np.exp(e, out=e)


def sigmoid_forward(x):
    if x.size < PARALLEL_THRESHOLD:
        return _reference.sigmoid_forward(x)
    return _run(_sigmoid_select, x, _flat(x), _neg_abs_exp(x), x.dtype.type(1),
                dtype=x.dtype)


def relu_backward(g, y):
    if g.size < PARALLEL_THRESHOLD:
        return _reference.relu_backward(g, y)
    return _run(_relu_backward, g, _flat(g), _flat(y), g.dtype.type(1), g.dtype.type(0),
                dtype=g.dtype)


def softplus_forward(x, beta, threshold):
    if x.size < PARALLEL_THRESHOLD:
        return _reference.softplus_forward(x, beta, threshold)
    z = np.multiply(x, x.dtype.type(beta), dtype=x.dtype)   # an array even when 0-d
    log1p_e = np.log1p(_neg_abs_exp(z))
    return _run(_softplus_select, x, _flat(x), _flat(z), _flat(log1p_e), x.dtype.type(beta),
                x.dtype.type(threshold), x.dtype.type(0), dtype=x.dtype)


def softplus_backward(g, x, beta, threshold):
    if g.size < PARALLEL_THRESHOLD:
        return _reference.softplus_backward(g, x, beta, threshold)
    z = np.multiply(x, x.dtype.type(beta), dtype=x.dtype)
    return _run(_softplus_backward, g, _flat(g), _flat(z), _neg_abs_exp(z),
                g.dtype.type(1), g.dtype.type(threshold), dtype=g.dtype)


def sigmoid_backward(g, y):
    if g.size < PARALLEL_THRESHOLD:
        return _reference.sigmoid_backward(g, y)
    return _run(_sigmoid_backward, g, _flat(g), _flat(y), g.dtype.type(1), dtype=g.dtype)


def tanh_backward(g, y):
    if g.size < PARALLEL_THRESHOLD:
        return _reference.tanh_backward(g, y)
    return _run(_tanh_backward, g, _flat(g), _flat(y), g.dtype.type(1), dtype=g.dtype)
