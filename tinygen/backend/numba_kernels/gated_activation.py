"""The gated activation tanh(a) * sigmoid(b) on the CPU, in the input's precision.

Same functions and signatures as ``tinygen.backend.reference.gated_activation``; tested
against it.  float32 runs one numba pass each way (ranges of the P rows shared out
among threads by ``chunks.share_rows``), with the vectorisable tanh and sigmoid of
``_vmath.py`` (a libm tanhf/expf call per element would keep LLVM from
vectorising the loop: ~30x slower than numpy's SIMD loops).  float64 (gradchecks)
takes numpy, in the input's own precision, with as few temporaries as the formula
allows.
"""
import numpy as np
from ._vmath import ONE as _ONE, sigmoid as _sigmoid_f32, tanh as _tanh_f32, \
    wide_vectors as _wide_vectors
from .activations import _kernel
from .chunks import share_rows


def _forward_f32_loop(x3, out):
    _wide_vectors()      # (512-bit vectors: _vmath.py)
    for i in range(x3.shape[0]):
        a, b, y = x3[i, 0], x3[i, 1], out[i]
        for j in range(a.size):
            y[j] = _tanh_f32(a[j]) * _sigmoid_f32(b[j])


def _backward_f32_loop(g, x3, out):
    _wide_vectors()
    # One tanh and one sigmoid per element, and one store per loop: with two stores in
    # one loop LLVM cannot rule out that they overlap the inputs and gives up
    # vectorising it (4x slower).  So t goes into da and s into a row of scratch
    # first, then db and at last da are formed from them (the row stays in cache).
    for i in range(x3.shape[0]):
        a, b, gi, da, db = x3[i, 0], x3[i, 1], g[i], out[i, 0], out[i, 1]
        s = np.empty(a.size, dtype=np.float32)
        for j in range(a.size):
            da[j] = _tanh_f32(a[j])
        for j in range(a.size):
            s[j] = _sigmoid_f32(b[j])
        for j in range(a.size):
            db[j] = gi[j] * s[j] * da[j] * (_ONE - s[j])
        for j in range(a.size):
            da[j] = gi[j] * s[j] * (_ONE - da[j] * da[j])


_FORWARD_F32 = _kernel(_forward_f32_loop)
_BACKWARD_F32 = _kernel(_backward_f32_loop)


def _by_rows(kernel, *arrays):
    """``kernel(*arrays)`` on ranges of the arrays' rows (axis 0), shared out among threads."""
    share_rows(kernel, arrays[0].shape[0], arrays[0].size, *arrays)


def _sigmoid(b):
    """exp(min(b, 0)) / (1 + exp(-|b|)): stable both ways, and no np.where (slow)."""
    num = np.exp(np.minimum(b, 0))
    den = np.exp(-np.abs(b))
    den += 1
    return np.divide(num, den, out=num)


def gated_forward(x3):
    """``tanh(x3[:, 0]) * sigmoid(x3[:, 1])`` for x3 (P, 2, Q), in x3's dtype."""
    if x3.dtype == np.float32:
        out = np.empty((x3.shape[0], x3.shape[2]), dtype=np.float32)
        _by_rows(_FORWARD_F32, np.ascontiguousarray(x3), out)
        return out
    t = np.tanh(x3[:, 0])
    t *= _sigmoid(x3[:, 1])
    return t


def gated_backward(g, x3):
    """``[g (1 - t^2) s, g t s (1 - s)]`` stacked on axis 1, shape (P, 2, Q)."""
    out = np.empty_like(x3)
    if x3.dtype == np.float32 and g.dtype == np.float32:
        _by_rows(_BACKWARD_F32, np.ascontiguousarray(g), np.ascontiguousarray(x3), out)
        return out
    t = np.tanh(x3[:, 0])
    s = _sigmoid(x3[:, 1])
    gs = g * s
    da, db = out[:, 0], out[:, 1]
    np.multiply(t, t, out=da)
    np.subtract(1, da, out=da)
    da *= gs
    np.subtract(1, s, out=db)
    db *= gs
    db *= t
    return out
