"""Gated activation family: ``gated_activation(x) = tanh(a) * sigmoid(b)`` with (a, b)
the two halves of x along an axis (PixelCNN's and WaveNet's gate), one fused Function.

Its backward is a Function of its own (``GatedActivationGrad``, a fused kernel), whose
backward is the closed form of the gate's second derivatives in tinygen ops, so
gradients of any order work.  Kernels: ``tinygen.backend.{reference,numba_kernels,
cuda_kernels}.gated_activation`` (kernels/gated_activation.cu), on ``(P, 2, Q)`` views.
"""
import math

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend.kernels import kernels
from .batch_norm import contiguous
from .elementwise import sigmoid, tanh
from .shape import concatenate, normalize_axis, split

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _gated_view(shape, axis):
    """(P, 2, Q) such that reshaping to it puts the two halves along axis 1."""
    outer = math.prod(shape[:axis])
    inner = (shape[axis] // 2) * math.prod(shape[axis + 1:])
    return outer, 2, inner


class GatedActivation(Function):
    def forward(self, x, axis):
        self.axis = axis
        self.save_inputs(0)
        out_shape = x.shape[:axis] + (x.shape[axis] // 2,) + x.shape[axis + 1:]
        x3 = contiguous(x).reshape(_gated_view(x.shape, axis))
        k = kernels("gated_activation", x, "gated_activation")
        return k.gated_forward(x3).reshape(out_shape)

    def backward(self, grad):
        (x,) = self.saved_inputs()
        return GatedActivationGrad.apply(grad, x, axis=self.axis)


class GatedActivationGrad(Function):
    """The gate's backward as one node (fused kernel): for x = [a, b] along ``axis``,
    t = tanh(a), s = sigmoid(b) and upstream g, returns [g (1 - t^2) s, g t s (1 - s)].

    Its own backward is the closed form of the gate's second derivatives, written with
    tinygen ops (so third derivatives work too); for upstream H = [Ha, Hb]:
        d/dg = Ha (1 - t^2) s + Hb t s (1 - s)
        d/da = g (1 - t^2) s (Hb (1 - s) - 2 t Ha)
        d/db = g s (1 - s) (Ha (1 - t^2) + Hb t (1 - 2 s))
    """

    def forward(self, g, x, axis):
        self.axis = axis
        self.save_inputs(0, 1)
        view = _gated_view(x.shape, axis)
        k = kernels("gated_activation", x, "gated_activation")
        return k.gated_backward(contiguous(g).reshape(view[0], view[2]),
                                contiguous(x).reshape(view)).reshape(x.shape)

    def backward(self, h):
        g, x = self.saved_inputs()
        half = x.shape[self.axis] // 2
        a, b = split(x, half, self.axis)
        ha, hb = split(h, half, self.axis)
        t, s = tanh(a), sigmoid(b)
        dt, ds = 1.0 - t * t, s * (1.0 - s)
        dg = ha * dt * s + hb * t * ds if self.needs_input_grad[0] else None
        dx = None
        if self.needs_input_grad[1]:
            da = g * dt * s * (hb * (1.0 - s) - ha * t * 2.0)
            db = g * ds * (ha * dt + hb * t * (1.0 - s * 2.0))
            dx = concatenate([da, db], self.axis)
        return dg, dx


def gated_activation(x, axis=1):
    """``tanh(a) * sigmoid(b)`` where ``a, b`` are the first and second halves of ``x``
    along ``axis`` (the channels by default): PixelCNN's and WaveNet's gate, fused."""
    op = "gated_activation"
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.dtype not in _FLOATS:
        raise TypeError(f"{op}: input must be float32 or float64, got {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{op}: input must have at least one dimension, got shape {x.shape}")
    axis = normalize_axis(axis, x.ndim, x.shape)
    if x.shape[axis] % 2:
        raise ValueError(
            f"{op}: the size of axis {axis} must be even to split it into two halves, got "
            f"shape {x.shape}"
        )
    return GatedActivation.apply(x, axis=axis)
