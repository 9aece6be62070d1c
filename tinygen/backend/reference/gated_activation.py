"""The gated activation tanh(a) * sigmoid(b) in plain numpy, in float64: the oracle.

Inputs are ``(P, 2, Q)`` views (a = x3[:, 0], b = x3[:, 1]) made by the op layer
(``tinygen.ops.gated_activation``).
"""
import numpy as np


def _sigmoid(b):
    e = np.exp(-np.abs(b))  # exp of a non-positive number only: no overflow
    return np.where(b >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def gated_forward(x3):
    """``tanh(a) * sigmoid(b)`` for ``x3`` of shape (P, 2, Q): a = x3[:, 0], b = x3[:, 1]."""
    a, b = x3[:, 0].astype(np.float64), x3[:, 1].astype(np.float64)
    return (np.tanh(a) * _sigmoid(b)).astype(x3.dtype)


def gated_backward(g, x3):
    """Gradient w.r.t. ``x3`` (P, 2, Q): ``[g (1 - t^2) s, g t s (1 - s)]``."""
    a, b = x3[:, 0].astype(np.float64), x3[:, 1].astype(np.float64)
    t, s = np.tanh(a), _sigmoid(b)
    g = g.astype(np.float64)
    return np.stack([g * (1.0 - t * t) * s, g * t * s * (1.0 - s)], axis=1).astype(x3.dtype)
