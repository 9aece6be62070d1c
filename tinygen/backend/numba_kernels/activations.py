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
from .chunks import parallel_range, share_range, share_rows
from ..reference import activations as _reference
from ..reference.activations import MASK_BLOCK as _BLOCK, _check_mask, _mask_bytes
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


# ReLU and LeakyReLU: the forward writes the output and the packed mask of x > 0
# (reference/activations.py: bit k of byte 32 b + j is element 256 b + 32 k + j), the
# backward reads g and the mask, not g and a saved 4-byte array.  Both run on whole
# blocks [lo, hi) of 256 elements (share_range: two threads never write one mask
# byte); a full block as eight rows of 32 elements, each row one vectorised pass
# (32 elements, 32 mask bytes), the last partial block element by element.
_ROW = 32
_U1 = np.uint8(1)
# (A full block is taken as views x[base:base + 256], ...: indices k * 32 + j of
# range()s are provably non-negative, so numba's negative-index wrap-around drops
# out and the rows vectorise; indexed from base + ..., they ran 3-4x slower.)  The
# forwards build each mask byte in a register over its 8 rows (the k loop unrolled,
# the j loop vectorised) and are compiled for 512-bit vectors: 2^20 float32, quiet, 1
# thread, 316 -> 300 us (the unmasked relu forward: 286); the backwards are at that
# floor already (~295 us, either way; unmasked: 427).


def _leaky_forward_loop(x, slope, out, mask, lo, hi):
    _wide_vectors()
    n = x.size
    for b in range(lo, hi):
        base, m = b * _BLOCK, b * _ROW
        if base + _BLOCK <= n:
            xs, outs, ms = x[base:base + _BLOCK], out[base:base + _BLOCK], mask[m:m + _ROW]
            for j in range(_ROW):
                byte = np.uint8(0)
                for k in range(8):
                    v = xs[k * _ROW + j]
                    positive = v > 0
                    outs[k * _ROW + j] = v if positive else v * slope
                    byte |= np.uint8(positive) << np.uint8(k)
                ms[j] = byte
        else:
            mask[m:m + _ROW] = 0
            for i in range(base, n):
                v = x[i]
                out[i] = v if v > 0 else v * slope
                if v > 0:
                    r = i - base
                    mask[m + r % _ROW] |= np.uint8(1) << np.uint8(r // _ROW)


def _leaky_backward_loop(g, mask, slope, out, lo, hi):
    n = g.size
    for b in range(lo, hi):
        base, m = b * _BLOCK, b * _ROW
        if base + _BLOCK <= n:
            gs, outs, ms = g[base:base + _BLOCK], out[base:base + _BLOCK], mask[m:m + _ROW]
            for k in range(8):
                for j in range(_ROW):
                    v = gs[k * _ROW + j]
                    outs[k * _ROW + j] = v if (ms[j] >> np.uint8(k)) & _U1 else v * slope
        else:
            for i in range(base, n):
                r = i - base
                positive = (mask[m + r % _ROW] >> np.uint8(r // _ROW)) & _U1
                out[i] = g[i] if positive else g[i] * slope


def _relu_forward_loop(x, zero, out, mask, lo, hi):
    _wide_vectors()
    n = x.size
    for b in range(lo, hi):
        base, m = b * _BLOCK, b * _ROW
        if base + _BLOCK <= n:
            xs, outs, ms = x[base:base + _BLOCK], out[base:base + _BLOCK], mask[m:m + _ROW]
            for j in range(_ROW):
                byte = np.uint8(0)
                for k in range(8):
                    v = xs[k * _ROW + j]
                    positive = v > zero
                    outs[k * _ROW + j] = v if positive or v != v else zero  # NaN stays, -0 -> +0
                    byte |= np.uint8(positive) << np.uint8(k)
                ms[j] = byte
        else:
            mask[m:m + _ROW] = 0
            for i in range(base, n):
                v = x[i]
                out[i] = v if v > zero or v != v else zero
                if v > zero:
                    r = i - base
                    mask[m + r % _ROW] |= np.uint8(1) << np.uint8(r // _ROW)


def _relu_backward_loop(g, mask, one, zero, out, lo, hi):
    # (a product, not a select: g * 0 is -0 for g < 0 and NaN for g NaN or infinite)
    n = g.size
    for b in range(lo, hi):
        base, m = b * _BLOCK, b * _ROW
        if base + _BLOCK <= n:
            gs, outs, ms = g[base:base + _BLOCK], out[base:base + _BLOCK], mask[m:m + _ROW]
            for k in range(8):
                for j in range(_ROW):
                    positive = (ms[j] >> np.uint8(k)) & _U1
                    outs[k * _ROW + j] = gs[k * _ROW + j] * (one if positive else zero)
        else:
            for i in range(base, n):
                r = i - base
                positive = (mask[m + r % _ROW] >> np.uint8(r // _ROW)) & _U1
                out[i] = g[i] * (one if positive else zero)


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
    """``a`` as a flat C-contiguous array: a view when ``a`` is C-contiguous, else a
    copy (the view taken directly: ``np.ascontiguousarray`` cost 0.3 us more a call)."""
    return a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)


def _with_mask(kernel, x, *scalars):
    """A masked forward: (the output, the packed mask of x > 0)."""
    mask = np.empty(_mask_bytes(x.size), dtype=np.uint8)
    out = np.empty(x.shape, dtype=x.dtype)
    share_range(kernel, -(-x.size // _BLOCK), 2 * x.size, _flat(x), *scalars,
                out.reshape(-1), mask)
    return out, mask


def leaky_relu_forward(x, slope):
    """(the output, the packed mask of x > 0 for the backward)."""
    if x.dtype not in _COMPILED_FLOATS:
        return _reference.leaky_relu_forward(x, slope)
    return _with_mask(_LEAKY_FORWARD, x, x.dtype.type(slope))


def leaky_relu_backward(g, mask, slope):
    _check_mask(mask, g.shape)
    if g.dtype not in _COMPILED_FLOATS:
        return _reference.leaky_relu_backward(g, mask, slope)
    out = np.empty(g.shape, dtype=g.dtype)
    share_range(_LEAKY_BACKWARD, -(-g.size // _BLOCK), 2 * g.size, _flat(g), mask,
                g.dtype.type(slope), out.reshape(-1))
    return out


def sigmoid_forward(x):
    if x.dtype != np.float32:
        return _reference.sigmoid_forward(x)
    return _run(_SIGMOID_F32, x, _flat(x))


def relu_forward(x):
    """(relu(x), the packed mask of x > 0 for the backward)."""
    if x.dtype not in _COMPILED_FLOATS:
        return _reference.relu_forward(x)
    return _with_mask(_RELU_FORWARD, x, x.dtype.type(0))


def relu_backward(g, mask):
    _check_mask(mask, g.shape)
    if g.dtype not in _COMPILED_FLOATS:
        return _reference.relu_backward(g, mask)
    out = np.empty(g.shape, dtype=g.dtype)
    share_range(_RELU_BACKWARD, -(-g.size // _BLOCK), 2 * g.size, _flat(g), mask,
                g.dtype.type(1), g.dtype.type(0), out.reshape(-1))
    return out


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
    if (x.size < chunks.SHARE_THRESHOLD or x.dtype.kind != "f"
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
