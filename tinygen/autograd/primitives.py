"""The differentiable ops the engine itself needs, so that it needs no op layer.

``sum_to`` undoes broadcasting: the engine sums every gradient back to its input's
shape with it (the one place broadcasting is undone).  Its adjoint is
``broadcast_to``, and each one's backward is the other, so gradients of gradients
stay inside this module.  ``clone`` copies a gradient into a leaf's ``.grad`` when
``create_graph`` keeps the graph.

The op layer re-exports all three (``tinygen.ops.shape``, ``tinygen.ops.elementwise``):
users find them where they find every other op.
"""
import numpy as np

from ..backend import array_module
from ..backend.kernels import kernels
from .function import Function


class BroadcastTo(Function):
    def forward(self, a, shape):
        self.in_shape = a.shape
        return array_module(a).broadcast_to(a, shape)

    def backward(self, grad):
        return sum_to(grad, self.in_shape)


def broadcast_to(x, shape):
    shape = tuple(int(s) for s in shape)
    if shape == x.shape:
        return x
    try:
        if np.broadcast_shapes(x.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"cannot broadcast a tensor of shape {x.shape} to {shape}") from None
    return BroadcastTo.apply(x, shape=shape)


def _sum_to_axes(in_shape, shape):
    """Axes to sum to bring ``in_shape`` down to ``shape`` (an error if it is not a
    broadcast of ``shape``)."""
    lead = len(in_shape) - len(shape)
    if lead < 0:
        raise ValueError(f"cannot sum a tensor of shape {in_shape} to {shape}")
    axes = list(range(lead))
    for i, s in enumerate(shape):
        n = in_shape[lead + i]
        if s == n:
            continue
        if s != 1:
            raise ValueError(f"cannot sum a tensor of shape {in_shape} to {shape}")
        axes.append(lead + i)
    return tuple(axes)


def _sum_axes(a, axes):
    """``a.sum(axis=axes)`` (axes sorted, not empty), by the backend's ``sums`` kernels:
    on the CPU a large gradient's sum (a bias' gradient over batch and space) is
    shared out among threads."""
    return kernels("sums", a).sum_axes(a, axes)


def sum_to_array(a, shape):
    """A raw array ``a`` summed over its broadcast axes back to ``shape`` (a ValueError if
    it is not a broadcast of it, or has that shape already): SumTo's forward, and the
    engine's own sum when it builds no graph of the gradient."""
    return _sum_axes(a, _sum_to_axes(a.shape, shape)).reshape(shape)


class SumTo(Function):
    """Sum over broadcast axes: the adjoint of broadcast_to."""

    def forward(self, a, shape):
        self.in_shape = a.shape
        return sum_to_array(a, shape)

    def backward(self, grad):
        return broadcast_to(grad, self.in_shape)


def sum_to(x, shape):
    shape = tuple(shape)
    if shape == x.shape:
        return x
    _sum_to_axes(x.shape, shape)  # validate before recording
    return SumTo.apply(x, shape=shape)


class Clone(Function):
    def forward(self, a):
        return a.copy()

    def backward(self, grad):
        return grad


def clone(x):
    """A copy of ``x`` in a fresh array, differentiable (the gradient passes through)."""
    return Clone.apply(x)
