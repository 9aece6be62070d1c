"""Vectorisable float32 math for the numba kernels: exp (of a non-positive number),
log1p (on [0, 1]), sigmoid and tanh, written in plain arithmetic.

numba has no vector math library here (no SVML): a libm ``expf``/``tanhf`` call per
element keeps LLVM from vectorising a loop (10-30x slower than numpy's SIMD loops),
while calling numpy's exp or tanh costs a pass over memory (and a temporary) of its
own.  These are inlined into a kernel's loop, which LLVM then vectorises.  Each is
within 2 ulp of the exact value over float32's whole range, subnormals, infinities
and NaN included (tests/ops/test_fused_activations.py); the polynomials are the
minimax ones of Cephes' expf, logf and tanhf.
"""
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

F32 = np.float32
ONE, HALF, ZERO = F32(1), F32(0.5), F32(0)
_LOG2E = F32(1.44269504088896341)
# ln 2 split in two (Cody and Waite): n * _LN2_HI is exact for |n| < 2^9.
_LN2_HI, _LN2_LO = F32(0.693359375), F32(-2.12194440e-4)
# exp(r) - 1 - r - r^2/2 ... on |r| <= ln(2)/2.
_P = tuple(F32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                               4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_TWO_M64 = F32(2.0 ** -64)
# log(1 + f) - f + f^2/2 = f^3 P(f) on f in [sqrt(1/2) - 1, sqrt(2) - 1].
_LP = tuple(F32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
                                -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                                2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))
_SQRT2 = F32(1.41421356237309505)
# tanh(v) = v + v^3 P(v^2) for |v| < 0.625.
_T = tuple(F32(c) for c in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                               1.33314422036e-1, -3.33332819422e-1))

# LLVM's tuning for AVX-512 cores prefers 256-bit vectors (host "rocketlake" here, on
# a Sapphire Rapids-class vCPU: avx512_fp16), which halves what a compute-bound loop
# gets from the cores' two 512-bit FMA units.  A kernel whose body calls
# ``wide_vectors()`` is compiled with LLVM's function attribute prefer-vector-width=512
# instead: the same operations per element (the same bits), twice the elements per
# instruction.  Measured quiet, 1 thread, 2^20 float32: sigmoid 0.453 -> 0.378 ms (a
# copy: 0.287).  Where the CPU has no 512-bit vectors LLVM uses the widest it has.
# (The attribute is not one llvmlite knows by name, so it is added to the function's
# attribute set directly; LLVM reads the quoted key="value" form as it is.)
WIDE = True     # (False: compile without the attribute, for side-by-side timings)


@intrinsic
def wide_vectors(typingctx):
    """Mark the kernel being compiled as preferring 512-bit vectors (see above)."""
    def codegen(context, builder, signature, args):
        if WIDE:
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.void(), codegen


# error_model="numpy": a division by zero gives inf/NaN, not a per-element check that
# blocks vectorisation; "contract": a * b + c as one FMA (one rounding, not two).
_inline = njit(inline="always", error_model="numpy", fastmath={"contract"})


@_inline
def exp_nonpositive(v):
    """exp(v) for float32 v <= 0 (NaN stays NaN): v = n ln2 + r, exp(r) by a polynomial,
    2^n written into a float's exponent bits.  The scale is taken as 2^(n+64) * 2^-64
    so that results below float32's normal range round to subnormals like numpy's;
    below -104 the result is 0."""
    v = F32(-104.0) if v < F32(-104.0) else v
    n = np.floor(v * _LOG2E + HALF)
    r = v - n * _LN2_HI - n * _LN2_LO
    p = _P[0]
    p = p * r + _P[1]
    p = p * r + _P[2]
    p = p * r + _P[3]
    p = p * r + _P[4]
    p = p * r + _P[5]
    p = p * r * r + r + ONE
    scale = np.int32((np.int32(n) + 191) << 23).view(np.float32)  # 2^(n + 64)
    return p * scale * _TWO_M64


@_inline
def log1p_unit(e):
    """log(1 + e) for float32 e in [0, 1] (softplus' log term).  u = 1 + e rounds;
    c = (e - (u - 1)) / u puts back what the rounding lost (to first order), and
    log(u) = k ln2 + log(1 + f) with u = 2^k (1 + f), k in {0, 1}."""
    u = ONE + e
    c = (e - (u - ONE)) / u
    big = u > _SQRT2
    f = (u * HALF if big else u) - ONE
    k = ONE if big else ZERO
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
    y = f * z * p + k * _LN2_LO - HALF * z
    return f + y + k * _LN2_HI + c


@_inline
def sigmoid(v):
    """1 / (1 + exp(-v)) for v >= 0, exp(v) / (1 + exp(v)) below: exp never overflows."""
    e = exp_nonpositive(-abs(v))
    return (ONE if v >= ZERO else e) / (ONE + e)


@_inline
def tanh(v):
    """The polynomial below |v| = 0.625, else (1 - e) / (1 + e) with e = exp(-2|v|) <=
    0.29, where 1 - e does not cancel.  (The Tanh op keeps numpy's tanh, which is
    faster alone: this one computes both branches for every element once vectorised;
    it serves the fused gate, gated_activation.py.)"""
    a = abs(v)
    if a < F32(0.625):
        z = v * v
        p = (((_T[0] * z + _T[1]) * z + _T[2]) * z + _T[3]) * z + _T[4]
        return p * z * v + v if a != ZERO else v     # tanh(-0) = -0
    e = exp_nonpositive(-(a + a))
    t = (ONE - e) / (ONE + e)
    return t if v > ZERO else -t
