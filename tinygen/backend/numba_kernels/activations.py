"""Activations and their fused backward products in one pass each (numba, cached),
tested against ``tinygen.backend.reference.activations`` (read that first).

numpy evaluates ``g * y * (1 - y)`` as three passes over memory with two temporaries;
here each element is read once and written once.  Constants are passed in the
array's dtype so that float32 arithmetic stays float32, as in numpy.  Each kernel is
one loop over flat arrays (``_kernel``), run on consecutive slices shared out among
threads by ``chunks.share_rows`` (small arrays on the calling thread).

The exp-based ones (sigmoid, softplus) in float32 use the vectorisable exp and log1p
of ``_vmath.py`` (within 2 ulp of the exact value; numpy's are within 1 and 2), so
they match the reference to a few ulp rather than bit for bit; float64 (gradchecks)
takes the reference.  The others are bit-equal to the reference.
"""
import numpy as np
from numba import njit

from . import _ufunc_loops, chunks
from .chunks import parallel_range, share_rows
from ..reference import activations as _reference
from ._vmath import F32 as _F32, ZERO as _ZERO, exp_nonpositive as _exp_nonpositive, \
    log1p_unit as _log1p_unit, sigmoid as _sigmoid, wide_vectors as _wide_vectors


# The exp-based loops start with _wide_vectors(): compiled for 512-bit vectors
# (_vmath.py).  They are compute-bound and gain (2^20 float32, interleaved quiet, 1
# thread: sigmoid 0.469 -> 0.362 ms, softplus 1.241 -> 0.902; 2 threads: sigmoid 0.271
# -> 0.196, softplus 0.614 -> 0.441).  The loops below, bound by memory, are not
# marked: 512-bit made them 1-3% slower at 2 threads (relu fwd 0.150 -> 0.153 ms,
# bwd 0.229 -> 0.235, tanh bwd 0.231 -> 0.235).
def _sigmoid_f32_loop(x, out):
    _wide_vectors()
    for i in range(x.size):
        out[i] = _sigmoid(x[i])


def _softplus_f32_loop(x, beta, threshold, out):
    _wide_vectors()
    for i in range(x.size):
        z = x[i] * beta
        if z > threshold:
            out[i] = x[i]
        else:
            positive_part = _ZERO if z < _ZERO else z     # NaN stays NaN
            out[i] = (positive_part + _log1p_unit(_exp_nonpositive(-abs(z)))) / beta


def _softplus_backward_f32_loop(g, x, beta, threshold, out):
    _wide_vectors()
    for i in range(g.size):
        z = x[i] * beta
        out[i] = g[i] if z > threshold else g[i] * _sigmoid(z)


def _kernel(loop, contract=True):
    """The kernel compiled from a loop (cached, ``nogil``).  error_model="numpy": a
    division by zero gives inf/NaN like numpy, not a check per element that keeps LLVM
    from vectorising; ``contract`` lets it fuse a * b + c into one FMA (one rounding
    instead of two: more exact, but no longer bit-equal to numpy's separate multiply
    and add, so only for the kernels tested in ulp)."""
    options = dict(error_model="numpy")
    if contract:
        options["fastmath"] = {"contract"}
    return njit(cache=True, nogil=True, **options)(loop)


_SIGMOID_F32 = _kernel(_sigmoid_f32_loop)
_SOFTPLUS_F32 = _kernel(_softplus_f32_loop)
_SOFTPLUS_BACKWARD_F32 = _kernel(_softplus_backward_f32_loop)


def _run(kernel, shape_of, *arrays_then_scalars):
    """Run a kernel over flat arrays into a new array shaped like ``shape_of`` (and of
    its dtype), on consecutive slices of all of them shared out among threads
    (``chunks.share_rows``); the scalar arguments are passed whole."""
    out = np.empty(shape_of.shape, dtype=shape_of.dtype)
    share_rows(kernel, out.size, out.size, *arrays_then_scalars, out.reshape(-1))
    return out


def _leaky_forward_loop(x, slope, out):
    for i in range(x.size):
        v = x[i]
        out[i] = v if v > 0 else v * slope


def _leaky_backward_loop(g, x, slope, out):
    for i in range(g.size):
        out[i] = g[i] if x[i] > 0 else g[i] * slope


def _relu_forward_loop(x, zero, out):
    for i in range(x.size):
        v = x[i]
        out[i] = v if v > zero or v != v else zero    # NaN stays NaN, -0 becomes +0


def _relu_backward_loop(g, y, one, zero, out):
    for i in range(g.size):
        out[i] = g[i] * (one if y[i] > 0 else zero)


def _sigmoid_backward_loop(g, y, one, out):
    for i in range(g.size):
        out[i] = g[i] * y[i] * (one - y[i])


def _tanh_backward_loop(g, y, one, out):
    for i in range(g.size):
        out[i] = g[i] * (one - y[i] * y[i])


_LEAKY_FORWARD = _kernel(_leaky_forward_loop, contract=False)
_LEAKY_BACKWARD = _kernel(_leaky_backward_loop, contract=False)
_RELU_FORWARD = _kernel(_relu_forward_loop, contract=False)
_RELU_BACKWARD = _kernel(_relu_backward_loop, contract=False)
_SIGMOID_BACKWARD = _kernel(_sigmoid_backward_loop, contract=False)
_TANH_BACKWARD = _kernel(_tanh_backward_loop, contract=False)


def _flat(a):
    return np.ascontiguousarray(a).reshape(-1)


def leaky_relu_forward(x, slope):
    return _run(_LEAKY_FORWARD, x, _flat(x), x.dtype.type(slope))


def leaky_relu_backward(g, x, slope):
    return _run(_LEAKY_BACKWARD, g, _flat(g), _flat(x), g.dtype.type(slope))


def sigmoid_forward(x):
    if x.dtype != np.float32:
        return _reference.sigmoid_forward(x)
    return _run(_SIGMOID_F32, x, _flat(x))


def relu_forward(x):
    if x.dtype.kind != "f":
        return _reference.relu_forward(x)
    return _run(_RELU_FORWARD, x, _flat(x), x.dtype.type(0))


def relu_backward(g, y):
    return _run(_RELU_BACKWARD, g, _flat(g), _flat(y), g.dtype.type(1), g.dtype.type(0))


def softplus_forward(x, beta, threshold):
    if x.dtype != np.float32:
        return _reference.softplus_forward(x, beta, threshold)
    return _run(_SOFTPLUS_F32, x, _flat(x), _F32(beta), _F32(threshold))


def softplus_backward(g, x, beta, threshold):
    if g.dtype != np.float32 or x.dtype != np.float32:
        return _reference.softplus_backward(g, x, beta, threshold)
    return _run(_SOFTPLUS_BACKWARD_F32, g, _flat(g), _flat(x), _F32(beta), _F32(threshold))


def sigmoid_backward(g, y):
    return _run(_SIGMOID_BACKWARD, g, _flat(g), _flat(y), g.dtype.type(1))


_COMPILED_FLOATS = (np.float32, np.float64)     # (numba's arrays: no float16)


def tanh_forward(x):
    """numpy's tanh (its SIMD loop beats the polynomial of ``_vmath``, which computes
    both of its branches once vectorised), on consecutive slices shared out among
    threads when the array is large: bit for bit numpy's result.  The slices run
    numpy's own loop from a numba kernel (``_ufunc_loops``: no GIL hand-over per
    slice); where that loop cannot be found, as Python calls of np.tanh."""
    if (x.size < chunks.PARALLEL_THRESHOLD or x.dtype.kind != "f"
            or not x.flags.c_contiguous or chunks.thread_count() <= 1):
        return np.tanh(x)   # (one thread: numpy's own allocation and call, nothing else)
    out = np.empty_like(x)
    x1, out1 = x.reshape(-1), out.reshape(-1)
    found = _ufunc_loops.loop(np.tanh, x.dtype) if x.dtype in _COMPILED_FLOATS else None
    if found is not None:
        share_rows(_ufunc_loops.unary, x.size, 2 * x.size, *found, x1, out1)
        return out
    # (numpy's loop is no numba kernel: the slices go out as Python calls)
    parallel_range(lambda lo, hi: np.tanh(x1[lo:hi], out=out1[lo:hi]), x.size, x.size)
    return out


def tanh_backward(g, y):
    return _run(_TANH_BACKWARD, g, _flat(g), _flat(y), g.dtype.type(1))
