"""Gradient clipping, in place on ``p.grad`` (PyTorch's formulas)."""
import math

import numpy as np

from ...autograd.tensor import Tensor
from ...backend import array_module


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their joint ``norm_type`` norm is at most ``max_norm``.

    The norm is taken over all gradients as if concatenated into one vector;
    every gradient is multiplied by ``min(1, max_norm / (total_norm + 1e-6))``.
    Returns the total norm (before clipping) as a 0-d Tensor.
    """
    grads = _grads(parameters)
    max_norm = float(max_norm)
    norm_type = float(norm_type)
    if not max_norm >= 0:   # (NaN fails this too; inf is allowed: the norm, unclipped)
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm} (a negative "
                         f"bound would flip every gradient's sign)")
    if not grads:
        return Tensor(0.0)
    xp = array_module(grads[0].data)
    dtype = grads[0].dtype
    if norm_type == math.inf:
        norms = [xp.abs(g.data).max() if g.data.size else xp.zeros((), dtype) for g in grads]
        total = xp.max(xp.stack(norms))
    elif norm_type == 0:
        total = xp.asarray(sum(xp.count_nonzero(g.data) for g in grads), dtype=dtype)
    else:
        # sum over tensors of |g|^p, then the p-th root (one pass, no concatenation).
        total = sum(xp.sum(xp.abs(g.data) ** norm_type) for g in grads) ** (1.0 / norm_type)
    total = xp.asarray(total, dtype=dtype)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            "so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    coef = min(max_norm / (float(total) + 1e-6), 1.0)
    with np.errstate(invalid="ignore"):  # a non-finite norm gives nan gradients, as in PyTorch
        for g in grads:
            g.data *= g.data.dtype.type(coef)
    return Tensor._make(total)


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element into [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        array_module(g.data).clip(g.data, -clip_value, clip_value, out=g.data)
