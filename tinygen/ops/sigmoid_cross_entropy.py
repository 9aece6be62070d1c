"""Sigmoid cross-entropy family: binary cross-entropy on logits, elementwise, as one fused
Function (the Bernoulli likelihood of a VAE's decoder, a GAN's loss on logits).

``binary_cross_entropy_with_logits`` (``loss.py``) takes this path for a floating input,
a target that needs no gradient and no ``pos_weight``; the composition it replaces,
``(1 - t) x + softplus(-x)``, stays the definition (tests/ops/sigmoid_cross_entropy pin
the two together).

Forward: ``max(x, 0) - x t + log1p(exp(-|x|))`` per element.  Backward: ``g (sigmoid(x)
- t)`` as a node of its own, ``SigmoidCrossEntropyGrad``, whose backward is the closed
form in tinygen ops, so gradients of any order flow through it (the design's
fused-gradient rule, as Chainer's ``ReLUGrad2``).  Kernels:
``tinygen.backend.{reference,numba_kernels}.sigmoid_cross_entropy``.
"""
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend.kernels import kernels
from .elementwise import sigmoid


def _kernels(x):
    return kernels("sigmoid_cross_entropy", x, "binary_cross_entropy_with_logits")


class SigmoidCrossEntropy(Function):
    """Per-element BCE of logits x against ``target`` (an array of x's shape and dtype,
    a constant: no gradient reaches it)."""

    def forward(self, x, target):
        self.save_inputs(0)
        self.target = target
        return _kernels(x).forward(x, target)

    def backward(self, grad):
        (x,) = self.saved_inputs()
        return SigmoidCrossEntropyGrad.apply(grad, x, target=self.target)


class SigmoidCrossEntropyGrad(Function):
    """``g (sigmoid(x) - t)``, by the fused kernel.  Linear in g; its own backward for
    upstream h:

        d/dg = h (s - t),   d/dx = h g s (1 - s),   s = sigmoid(x)
    """

    def forward(self, g, x, target):
        self.save_inputs(0, 1)
        self.target = target
        return _kernels(x).backward(g, x, target)

    def backward(self, h):
        g, x = self.saved_inputs()
        s = sigmoid(x)
        d_g = h * (s - Tensor._make(self.target)) if self.needs_input_grad[0] else None
        d_x = h * g * s * (1.0 - s) if self.needs_input_grad[1] else None
        return d_g, d_x


def sigmoid_cross_entropy(logits, target):
    """Per-element losses for floating ``logits`` (a Tensor) and ``target`` (an array of
    the same shape, dtype and device, already checked by the caller:
    ``loss.binary_cross_entropy_with_logits``)."""
    return SigmoidCrossEntropy.apply(logits, target=target)
