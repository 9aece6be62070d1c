"""Softmax cross-entropy with class-index targets, in plain array ops: the reference.

Inputs are views made by the op layer (``tinygen.ops.softmax_cross_entropy``):
``x3`` (N, K, S), the logits with the K classes on axis 1 and every other position
flattened into S; ``target`` (N, S) int64, the class index at each position, or -1
where the position is ignored (its loss and gradient are 0).

    lse[n, s]   = log sum_k exp(x3[n, k, s])          (shifted by the max: no overflow)
    loss[n, s]  = lse[n, s] - x3[n, target[n, s], s]
    dx3[n, k, s] = g[n, s] (exp(x3[n, k, s] - lse[n, s]) - [k == target[n, s]])

Generic over the array module (numpy here, cupy on the GPU: kernels._ALIASES), in the
input's own precision.
"""
from .. import array_module


def cross_entropy_forward(x3, target):
    """(loss (N, S), lse (N, S)) in x3's dtype; loss is 0 where target is -1."""
    xp = array_module(x3)
    top = x3.max(axis=1)
    shifted = x3 - top[:, None, :]
    lse = xp.log(xp.exp(shifted).sum(axis=1)) + top
    valid = target >= 0
    safe = xp.where(valid, target, 0)
    picked = xp.take_along_axis(x3, safe[:, None, :], axis=1)[:, 0, :]
    loss = xp.where(valid, lse - picked, xp.zeros((), dtype=x3.dtype))
    return loss.astype(x3.dtype, copy=False), lse.astype(x3.dtype, copy=False)


def cross_entropy_backward(g, x3, target, lse):
    """dx3 (N, K, S): the loss' gradient for upstream ``g`` (N, S); 0 where target is -1."""
    xp = array_module(x3)
    valid = target >= 0
    g = xp.where(valid, g, xp.zeros((), dtype=g.dtype))
    classes = xp.arange(x3.shape[1]).reshape(1, -1, 1)
    onehot = (classes == target[:, None, :]).astype(x3.dtype)
    return ((xp.exp(x3 - lse[:, None, :]) - onehot) * g[:, None, :]).astype(x3.dtype,
                                                                           copy=False)
