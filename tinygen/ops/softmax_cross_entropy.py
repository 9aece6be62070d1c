"""Softmax cross-entropy family: ``-log softmax(x)[target]`` over the class axis 1 at
every position, with class-index targets, as one fused Function.

``cross_entropy`` (``loss.py``) takes this path for integer targets without class
weights or label smoothing; the composition it replaces, ``nll_loss(log_softmax(x))``,
stays the definition (tests/ops/softmax_cross_entropy pin the two together).

Forward: the per-position losses (N, d...) and, kept for backward, the log-sum-exp of
each position's logits.  Backward: ``g * (softmax(x) - onehot(target))``, written two
ways:
- no graph being built (``backward()``, ``grad()``): one fused kernel from the saved
  log-sum-exp;
- ``create_graph``: the same formula in tinygen ops (``softmax`` and constants), so
  gradients of any order flow through it.
Kernels: ``tinygen.backend.{reference,numba_kernels}.softmax_cross_entropy`` on
``(N, K, S)`` views of the logits (S: every position after the class axis).
"""
import numpy as np

from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from ..backend import array_module
from ..backend.kernels import kernels
from .reduce import softmax
from .shape import unsqueeze

IGNORED = -1   # the kernels' target for a position that has no loss


def _view(shape):
    """(N, K, S) of a logits shape (N, K, d...)."""
    return shape[0], shape[1], int(np.prod(shape[2:], dtype=np.int64))


class SoftmaxCrossEntropy(Function):
    """Per-position ``logsumexp(x[:, :, s]) - x[:, target, s]`` for logits x (N, K, d...)
    and ``target`` (N, d...) int64 class indices, ``IGNORED`` (-1) where there is no
    loss (0 there, and no gradient)."""

    def forward(self, x, target):
        self.save_inputs(0)
        self.target = target
        view = _view(x.shape)
        k = kernels("softmax_cross_entropy", x, "cross_entropy")
        loss, self.lse = k.cross_entropy_forward(
            array_module(x).ascontiguousarray(x).reshape(view), target.reshape(view[0], view[2]))
        return loss.reshape(target.shape)

    def backward(self, grad):
        (x,) = self.saved_inputs()
        target = self.target
        if is_grad_enabled():  # create_graph: differentiable ops
            xp = array_module(x.data)
            classes = xp.arange(x.shape[1]).reshape((1, -1) + (1,) * (x.ndim - 2))
            onehot = Tensor._make((classes == target[:, None]).astype(x.dtype))
            valid = Tensor._make((target >= 0).astype(x.dtype))
            return (softmax(x, axis=1) - onehot) * unsqueeze(grad * valid, 1)
        view = _view(x.shape)
        k = kernels("softmax_cross_entropy", x.data, "cross_entropy")
        dx = k.cross_entropy_backward(
            grad.data.reshape(view[0], view[2]), x.data.reshape(view),
            target.reshape(view[0], view[2]), self.lse)
        return Tensor._make(dx.reshape(x.shape))


def softmax_cross_entropy(logits, target):
    """Per-position losses (N, d...) for logits (N, K, d...) and an int64 target array
    (N, d...) already checked by the caller (``loss.cross_entropy``): class indices in
    [0, K), or ``IGNORED``."""
    return SoftmaxCrossEntropy.apply(logits, target=target)
