"""Binary cross-entropy on logits on the CPU: one numba pass each way.

Same functions and signatures as ``tinygen.backend.reference.sigmoid_cross_entropy``
(read that first); tested against it.  The composition it replaces in a VAE's Bernoulli
likelihood, ``(1 - t) x + softplus(-x)``, makes four passes forward (a negation,
softplus, a product, a sum) and, backward, a product, softplus' backward, a negation
and the sum of the two gradients that reach x; here each way reads its inputs once and
writes one array.  Slices of the flat arrays are shared out among threads by
``chunks.share_rows`` (from its SHARE_THRESHOLD elements).

float32 uses the vectorisable exp, log1p and sigmoid of ``_vmath.py`` (within 2 ulp of
the exact values), so it matches the reference to a few ulp, not bit for bit; float64
(gradchecks) and other dtypes take the reference.
"""
import numpy as np

from ._vmath import ZERO as _ZERO, exp_nonpositive as _exp_nonpositive, \
    log1p_unit as _log1p_unit, sigmoid as _sigmoid, wide_vectors as _wide_vectors
from .activations import _flat, _kernel
from .chunks import share_rows as _share_rows
from ..reference import sigmoid_cross_entropy as _reference


def _forward_f32_loop(x, t, out):
    _wide_vectors()
    for i in range(x.size):
        v = x[i]
        positive_part = _ZERO if v < _ZERO else v       # NaN stays NaN (v - v t below)
        out[i] = positive_part - v * t[i] + _log1p_unit(_exp_nonpositive(-abs(v)))


def _backward_f32_loop(g, x, t, out):
    _wide_vectors()
    for i in range(g.size):
        out[i] = g[i] * (_sigmoid(x[i]) - t[i])


_FORWARD_F32 = _kernel(_forward_f32_loop)
_BACKWARD_F32 = _kernel(_backward_f32_loop)


def _fast(*arrays):
    """Whether the compiled float32 kernels take these arrays (else the reference)."""
    for a in arrays:
        if a.dtype != np.float32:
            return False
    return True


def forward(x, t):
    if not _fast(x, t):
        return _reference.forward(x, t)
    out = np.empty(x.shape, dtype=np.float32)
    _share_rows(_FORWARD_F32, out.size, 2 * out.size, _flat(x), _flat(t), out.reshape(-1))
    return out


def backward(g, x, t):
    if not _fast(g, x, t):
        return _reference.backward(g, x, t)
    out = np.empty(x.shape, dtype=np.float32)
    _share_rows(_BACKWARD_F32, out.size, 3 * out.size, _flat(g), _flat(x), _flat(t),
                out.reshape(-1))
    return out
