"""Softmax cross-entropy family: ``-log softmax(x)[target]`` over the class axis 1 at
every position, with class-index targets, as one fused Function.

``cross_entropy`` (``loss.py``) takes this path for integer targets without class
weights or label smoothing; the composition it replaces, ``nll_loss(log_softmax(x))``,
stays the definition (tests/ops/softmax_cross_entropy pin the two together).

Forward: the per-position losses (N, d...), or their sum or mean (cross_entropy's
reductions, in the node itself), and, kept for backward, the log-sum-exp of each
position's logits.  Backward: ``g * (softmax(x) - onehot(target))`` as a node of its
own, ``SoftmaxCrossEntropyGrad``: one fused kernel from the saved log-sum-exp, whose own
backward is the closed-form second derivative in tinygen ops, so gradients of any order
flow through it (no branch on grad mode; the design's fused-gradient rule).
Kernels: ``tinygen.backend.{reference,numba_kernels}.softmax_cross_entropy`` on
``(N, K, S)`` views of the logits (S: every position after the class axis).
"""
import math

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module
from ..backend.kernels import kernels
from .reduce import softmax
from .shape import unsqueeze

IGNORED = -1   # the kernels' target for a position that has no loss


def _view(shape):
    """(N, K, S) of a logits shape (N, K, d...)."""
    return shape[0], shape[1], math.prod(shape[2:])  # (math.prod: exact, cheaper than np.prod)


class SoftmaxCrossEntropy(Function):
    """Per-position ``logsumexp(x[:, :, s]) - x[:, target, s]`` for logits x (N, K, d...)
    and ``target`` (N, d...) int64 class indices, ``IGNORED`` (-1) where there is no
    loss (0 there, and no gradient).  With ``scale`` (a float), the 0-d
    ``scale * sum(losses)`` instead: cross_entropy's "sum" (scale 1) or "mean" (1 / the
    count of positions not ignored), made in this node rather than by a Sum and a Mul
    node after it (two nodes forward and backward, ~20 us of Python per step)."""

    def forward(self, x, target, scale=None):
        self.save_inputs(0)
        self.target, self.scale = target, scale
        view = _view(x.shape)
        k = kernels("softmax_cross_entropy", x, "cross_entropy")
        loss, self.lse = k.cross_entropy_forward(
            array_module(x).ascontiguousarray(x).reshape(view), target.reshape(view[0], view[2]))
        loss = loss.reshape(target.shape)
        if scale is None:
            return loss
        # (as sum() then * scale did: numpy's sum, then one product in x's dtype)
        return loss.sum() * x.dtype.type(scale)

    def backward(self, grad):
        (x,) = self.saved_inputs()
        return SoftmaxCrossEntropyGrad.apply(grad, x, target=self.target, lse=self.lse,
                                             scale=self.scale)


class SoftmaxCrossEntropyGrad(Function):
    """``SoftmaxCrossEntropy``'s backward as one node: for upstream g (N, d...) and
    logits x, ``gx = unsqueeze(g v, 1) (p - onehot)`` with p = softmax(x) over the class
    axis and v = 1 where the target is a class, 0 where ``IGNORED``; by the fused kernel.
    With ``scale`` (the reduced loss' backward: ``SoftmaxCrossEntropy``), g is 0-d and
    v is ``scale`` where the target is a class: each position's upstream gradient is
    ``scale * g``, as the Mul and Sum nodes of an unreduced loss would pass it on.

    Its own backward (upstream H, shaped like x), in tinygen ops with p recomputed from
    x, so third derivatives work too:

        d/dg = v sum_k(H (p - onehot))
        d/dx = q - p sum_k(q),   q = p H unsqueeze(g v, 1)
    """

    def forward(self, g, x, target, lse, scale=None):
        self.save_inputs(0, 1)
        self.target, self.scale = target, scale
        view = _view(x.shape)
        if scale is not None:   # (a filled array: numpy's broadcast_to costs ~3 us)
            full = array_module(x).empty(target.shape, dtype=x.dtype)
            full[...] = g * x.dtype.type(scale)
            g = full
        k = kernels("softmax_cross_entropy", x, "cross_entropy")
        dx = k.cross_entropy_backward(g.reshape(view[0], view[2]), x.reshape(view),
                                      target.reshape(view[0], view[2]), lse)
        return dx.reshape(x.shape)

    def _constants(self, x):
        xp = array_module(x.data)
        classes = xp.arange(x.shape[1]).reshape((1, -1) + (1,) * (x.ndim - 2))
        onehot = Tensor._make((classes == self.target[:, None]).astype(x.dtype))
        valid = (self.target >= 0).astype(x.dtype)
        if self.scale is not None:
            valid *= x.dtype.type(self.scale)
        return onehot, Tensor._make(valid)

    def backward(self, h):
        g, x = self.saved_inputs()
        need_g, need_x = self.needs_input_grad[:2]
        onehot, valid = self._constants(x)
        p = softmax(x, axis=1)
        d_g = d_x = None
        if need_g:
            d_g = (h * (p - onehot)).sum(axis=1) * valid
        if need_x:
            q = p * h * unsqueeze(g * valid, 1)
            d_x = q - p * q.sum(axis=1, keepdims=True)
        return d_g, d_x


def softmax_cross_entropy(logits, target, scale=None):
    """Per-position losses (N, d...) for logits (N, K, d...) and an int64 target array
    (N, d...) already checked by the caller (``loss.cross_entropy``): class indices in
    [0, K), or ``IGNORED``; with ``scale``, their sum times ``scale`` (0-d)."""
    return SoftmaxCrossEntropy.apply(logits, target=target, scale=scale)
