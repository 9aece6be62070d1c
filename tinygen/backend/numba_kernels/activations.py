"""Activations and their fused backward products in one pass each (numba, cached),
tested against ``tinygen.backend.reference.activations`` (read that first).

numpy evaluates ``g * y * (1 - y)`` as three passes over memory with two temporaries;
here each element is read once and written once.  Constants are passed in the
array's dtype so that float32 arithmetic stays float32, as in numpy.  Each kernel is
a parallel and a serial twin compiled from one loop (``_twins``): the serial one
below ELEMENTWISE_PARALLEL_THRESHOLD elements, so a small array neither wakes the
thread pool nor pays for numpy's extra passes.

The exp-based ones (sigmoid, softplus) in float32 use ``_exp_nonpositive`` (and
softplus ``_log1p_unit``), written in plain arithmetic: numba has no vector math
library here, and a libm ``expf`` call per element keeps LLVM from vectorising the
loop (10x slower than numpy's SIMD exp), while numpy's exp costs a pass (and a
temporary) of its own.  Both are within 2 ulp of the exact value (numpy's within 1
and 2), so these kernels match the reference to a few ulp rather than bit for bit;
float64 (gradchecks) takes the reference.  The others are bit-equal to the reference.
"""
import numpy as np
from numba import njit, prange

from ..reference import activations as _reference

# A parallel region costs a wake-up of the pool's (passive, see __init__.py) threads:
# measured on the 2-core machine at 2 threads, tanh's backward on 64K float32 took 23 us
# parallel against 6 us on one thread.  One pass over a few hundred thousand elements
# is worth splitting, a few tens of thousands (the 100-op chain's 256x256) is not.
ELEMENTWISE_PARALLEL_THRESHOLD = 1 << 18

_F32 = np.float32
_ONE, _HALF, _ZERO = _F32(1), _F32(0.5), _F32(0)
_LOG2E = _F32(1.44269504088896341)
# ln 2 split in two (Cody and Waite): n * _LN2_HI is exact for |n| < 2^9.
_LN2_HI, _LN2_LO = _F32(0.693359375), _F32(-2.12194440e-4)
# exp(r) - 1 - r - r^2/2 ... on |r| <= ln(2)/2: the minimax polynomial of Cephes' expf.
_P = tuple(_F32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_TWO_M64 = _F32(2.0 ** -64)


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _exp_nonpositive(v):
    """exp(v) for float32 v <= 0 (NaN stays NaN), vectorisable: v = n ln2 + r, exp(r)
    by a polynomial, 2^n written into a float's exponent bits.  The scale is taken as
    2^(n+64) * 2^-64 so that results below float32's normal range round to subnormals
    like numpy's; below -104 the result is 0."""
    v = _F32(-104.0) if v < _F32(-104.0) else v
    n = np.floor(v * _LOG2E + _HALF)
    r = v - n * _LN2_HI - n * _LN2_LO
    p = _P[0]
    p = p * r + _P[1]
    p = p * r + _P[2]
    p = p * r + _P[3]
    p = p * r + _P[4]
    p = p * r + _P[5]
    p = p * r * r + r + _ONE
    scale = np.int32((np.int32(n) + 191) << 23).view(np.float32)  # 2^(n + 64)
    return p * scale * _TWO_M64


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _sigmoid(v):
    """1 / (1 + exp(-v)) for v >= 0, exp(v) / (1 + exp(v)) below: exp never overflows."""
    e = _exp_nonpositive(-abs(v))
    return (_ONE if v >= _ZERO else e) / (_ONE + e)


# tanh(v) = v + v^3 P(v^2) for |v| < 0.625 (the minimax polynomial of Cephes' tanhf),
# else (1 - e) / (1 + e) with e = exp(-2|v|) <= 0.29, where 1 - e does not cancel.
_T = tuple(_F32(c) for c in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                1.33314422036e-1, -3.33332819422e-1))


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _tanh(v):
    """tanh of a float32 within 2 ulp, vectorisable: the fused gate's (gated_activation.py).
    The Tanh op keeps numpy's tanh, which is faster alone (this one computes both
    branches for every element once vectorised)."""
    a = abs(v)
    if a < _F32(0.625):
        z = v * v
        p = (((_T[0] * z + _T[1]) * z + _T[2]) * z + _T[3]) * z + _T[4]
        return p * z * v + v if a != _ZERO else v     # tanh(-0) = -0
    e = _exp_nonpositive(-(a + a))
    t = (_ONE - e) / (_ONE + e)
    return t if v > _ZERO else -t


# log(1 + f) - f + f^2/2 = f^3 P(f) on f in [sqrt(1/2) - 1, sqrt(2) - 1]: the minimax
# polynomial of Cephes' logf.
_LP = tuple(_F32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
                                 -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                                 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))
_SQRT2 = _F32(1.41421356237309505)


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _log1p_unit(e):
    """log(1 + e) for float32 e in [0, 1] (softplus' log term) within 2 ulp, vectorisable.
    u = 1 + e rounds; c = (e - (u - 1)) / u puts back what the rounding lost (to first
    order), and log(u) = k ln2 + log(1 + f) with u = 2^k (1 + f), k in {0, 1}."""
    u = _ONE + e
    c = (e - (u - _ONE)) / u
    big = u > _SQRT2
    f = (u * _HALF if big else u) - _ONE
    k = _ONE if big else _ZERO
    z = f * f
    p = _LP[0]
    p = p * f + _LP[1]
    p = p * f + _LP[2]
    p = p * f + _LP[3]
    p = p * f + _LP[4]
    p = p * f + _LP[5]
    p = p * f + _LP[6]
    p = p * f + _LP[7]
    p = p * f + _LP[8]
    y = f * z * p + k * _LN2_LO - _HALF * z
    return f + y + k * _LN2_HI + c


def _sigmoid_f32_loop(x, out):
    for i in prange(x.size):
        out[i] = _sigmoid(x[i])


def _softplus_f32_loop(x, beta, threshold, out):
    for i in prange(x.size):
        z = x[i] * beta
        if z > threshold:
            out[i] = x[i]
        else:
            positive_part = _ZERO if z < _ZERO else z     # NaN stays NaN
            out[i] = (positive_part + _log1p_unit(_exp_nonpositive(-abs(z)))) / beta


def _softplus_backward_f32_loop(g, x, beta, threshold, out):
    for i in prange(g.size):
        z = x[i] * beta
        out[i] = g[i] if z > threshold else g[i] * _sigmoid(z)


def _twins(loop, contract=True):
    """(parallel, serial) kernels compiled from one loop (prange is range when serial).
    error_model="numpy": a division by zero gives inf/NaN like numpy, not a check per
    element that keeps LLVM from vectorising; ``contract`` lets it fuse a * b + c into
    one FMA (one rounding instead of two: more exact, but no longer bit-equal to
    numpy's separate multiply and add, so only for the kernels tested in ulp)."""
    options = dict(cache=True, error_model="numpy", fastmath={"contract"} if contract else {})
    return njit(parallel=True, **options)(loop), njit(**options)(loop)


_SIGMOID_F32 = _twins(_sigmoid_f32_loop)
_SOFTPLUS_F32 = _twins(_softplus_f32_loop)
_SOFTPLUS_BACKWARD_F32 = _twins(_softplus_backward_f32_loop)


def _run(twins, shape_of, *arrays_then_scalars):
    """Run a twin into a new array shaped like ``shape_of`` (and of its dtype): the
    parallel one from ELEMENTWISE_PARALLEL_THRESHOLD elements."""
    out = np.empty(shape_of.shape, dtype=shape_of.dtype)
    parallel = out.size >= ELEMENTWISE_PARALLEL_THRESHOLD
    twins[0 if parallel else 1](*arrays_then_scalars, out.reshape(-1))
    return out


def _leaky_forward_loop(x, slope, out):
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v > 0 else v * slope


def _leaky_backward_loop(g, x, slope, out):
    for i in prange(g.size):
        out[i] = g[i] if x[i] > 0 else g[i] * slope


def _relu_forward_loop(x, zero, out):
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v > zero or v != v else zero    # NaN stays NaN, -0 becomes +0


def _relu_backward_loop(g, y, one, zero, out):
    for i in prange(g.size):
        out[i] = g[i] * (one if y[i] > 0 else zero)


def _sigmoid_backward_loop(g, y, one, out):
    for i in prange(g.size):
        out[i] = g[i] * y[i] * (one - y[i])


def _tanh_backward_loop(g, y, one, out):
    for i in prange(g.size):
        out[i] = g[i] * (one - y[i] * y[i])


_LEAKY_FORWARD = _twins(_leaky_forward_loop, contract=False)
_LEAKY_BACKWARD = _twins(_leaky_backward_loop, contract=False)
_RELU_FORWARD = _twins(_relu_forward_loop, contract=False)
_RELU_BACKWARD = _twins(_relu_backward_loop, contract=False)
_SIGMOID_BACKWARD = _twins(_sigmoid_backward_loop, contract=False)
_TANH_BACKWARD = _twins(_tanh_backward_loop, contract=False)


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


def tanh_backward(g, y):
    return _run(_TANH_BACKWARD, g, _flat(g), _flat(y), g.dtype.type(1))
