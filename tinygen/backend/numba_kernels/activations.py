"""Activations and their fused backward products in one pass each (numba, parallel,
cached): the same functions, operations and operation order as
``tinygen.backend.reference.activations`` (read that first), tested against it.

numpy evaluates ``g * y * (1 - y)`` as three passes over memory with two temporaries;
here each element is read once and written once.  Constants are passed in the
array's dtype so that float32 arithmetic stays float32, as in numpy.
"""
import numpy as np
from numba import njit, prange

from . import sized


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
def _sigmoid_forward(x, one, out):
    for i in prange(x.size):
        v = x[i]
        e = np.exp(-abs(v))
        out[i] = one / (one + e) if v >= 0 else e / (one + e)


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
    return _run(_leaky_forward, x, _flat(x), x.dtype.type(slope), dtype=x.dtype)


def leaky_relu_backward(g, x, slope):
    return _run(_leaky_backward, g, _flat(g), _flat(x), g.dtype.type(slope), dtype=g.dtype)


def sigmoid_forward(x):
    return _run(_sigmoid_forward, x, _flat(x), x.dtype.type(1), dtype=x.dtype)


def sigmoid_backward(g, y):
    return _run(_sigmoid_backward, g, _flat(g), _flat(y), g.dtype.type(1), dtype=g.dtype)


def tanh_backward(g, y):
    return _run(_tanh_backward, g, _flat(g), _flat(y), g.dtype.type(1), dtype=g.dtype)
