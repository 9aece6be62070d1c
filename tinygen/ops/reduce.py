"""Reduction family: sum, mean, var, max/min, logsumexp, softmax, norms.

A reduction's backward broadcasts the upstream gradient back over the reduced
axes; ``_keep`` restores those axes (as size 1) when ``keepdims`` dropped them.
"""
import math
import numpy as np

from ..autograd.function import Function
from ..backend import array_module
from ..autograd._torch_names import torch_names
from ._operands import as_tensor, is_float
from .shape import normalize_axes, normalize_axis, reshape, broadcast_to, Reshape, BroadcastTo
from .elementwise import exp, sqrt, abs as _abs, cast, where, _const


def _keep_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _keep(grad, in_shape, axes):
    """``grad`` reshaped to the keepdims shape of the reduction."""
    return reshape(grad, _keep_shape(in_shape, axes))


class Sum(Function):
    def forward(self, a, axes, keepdims):
        self.in_shape, self.axes = a.shape, axes
        return a.sum(axis=axes, keepdims=keepdims)

    def backward(self, grad):
        # Reshape and BroadcastTo applied directly: both shapes are the forward's own, so
        # reshape()'s and broadcast_to()'s checks are not redone (a loss's sum and every
        # bias gradient run this on each step).
        keep = _keep_shape(self.in_shape, self.axes)
        if grad.data.shape != keep:
            grad = Reshape.apply(grad, shape=keep)
        if keep == self.in_shape:
            return grad
        return BroadcastTo.apply(grad, shape=self.in_shape)


@torch_names
def sum(x, axis=None, keepdims=False):
    x = as_tensor(x)
    axes = normalize_axes(axis, x.ndim, x.shape)
    return Sum.apply(x, axes=axes, keepdims=keepdims)


def _count(x, axes):
    return math.prod([x.shape[a] for a in axes])


@torch_names
def mean(x, axis=None, keepdims=False):
    x = as_tensor(x)
    if not is_float(x.dtype):
        x = cast(x, np.float32)
    axes = normalize_axes(axis, x.ndim, x.shape)
    n = _count(x, axes)
    if n == 0:
        raise ValueError(f"mean of an empty selection (shape {x.shape}, axis {axis})")
    return sum(x, axes, keepdims) * (1.0 / n)


@torch_names
def var(x, axis=None, keepdims=False, correction=1, unbiased=None):
    """Variance with ``correction`` (1: unbiased, PyTorch's default; 0: population)."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axes = normalize_axes(axis, x.ndim, x.shape)
    n = _count(x, axes)
    if n - correction <= 0:
        raise ValueError(
            f"var: {n} element(s) along axis {axis} of shape {x.shape} with correction "
            f"{correction} leaves no degrees of freedom"
        )
    centered = x - mean(x, axes, keepdims=True)
    return sum(centered * centered, axes, keepdims) * (1.0 / (n - correction))


@torch_names
def std(x, axis=None, keepdims=False, correction=1, unbiased=None):
    return sqrt(var(x, axis, keepdims, correction, unbiased))


class _Extreme(Function):
    """max/min over axes; ties share the gradient evenly (like torch.amax)."""

    reduce = None

    def forward(self, a, axes, keepdims):
        if a.size == 0:
            raise ValueError(f"{type(self).__name__.lower()} of an empty tensor (shape {a.shape})")
        xp = array_module(a)
        self.in_shape, self.axes = a.shape, axes
        out = getattr(xp, self.reduce)(a, axis=axes, keepdims=True)
        hits = (a == out)
        self.share = (hits / hits.sum(axis=axes, keepdims=True)).astype(a.dtype)
        return out if keepdims else out.reshape([s for i, s in enumerate(a.shape) if i not in axes])

    def backward(self, grad):
        return _keep(grad, self.in_shape, self.axes) * _const(self.share)


class Max(_Extreme):
    reduce = "amax"


class Min(_Extreme):
    reduce = "amin"


@torch_names(indices=lambda *a, **k: argmax(*a, **k))
def max(x, axis=None, keepdims=False):
    x = as_tensor(x)
    return Max.apply(x, axes=normalize_axes(axis, x.ndim, x.shape), keepdims=keepdims)


@torch_names(indices=lambda *a, **k: argmin(*a, **k))
def min(x, axis=None, keepdims=False):
    x = as_tensor(x)
    return Min.apply(x, axes=normalize_axes(axis, x.ndim, x.shape), keepdims=keepdims)


@torch_names
def argmax(x, axis=None, keepdims=False):
    """Index of the maximum (flattened when ``axis`` is None); not differentiable."""
    x = as_tensor(x)
    if axis is not None:
        axis = normalize_axis(axis, x.ndim, x.shape)
    return _const(array_module(x.data).argmax(x.data, axis=axis, keepdims=keepdims))


@torch_names
def argmin(x, axis=None, keepdims=False):
    x = as_tensor(x)
    if axis is not None:
        axis = normalize_axis(axis, x.ndim, x.shape)
    return _const(array_module(x.data).argmin(x.data, axis=axis, keepdims=keepdims))


def _stable_max(xp, a, axes):
    m = xp.amax(a, axis=axes, keepdims=True)
    return xp.where(xp.isfinite(m), m, 0)  # all -inf (or inf) slices: shift by 0


class LogSumExp(Function):
    def forward(self, a, axes, keepdims):
        xp = array_module(a)
        self.in_shape, self.axes = a.shape, axes
        self.save_inputs(0)
        self.save_outputs(0)
        m = _stable_max(xp, a, axes)
        with np.errstate(divide="ignore"):  # log(0) = -inf for all -inf slices, as intended
            out = xp.log(xp.sum(xp.exp(a - m), axis=axes, keepdims=True)) + m
        return out if keepdims else out.reshape([s for i, s in enumerate(a.shape) if i not in axes])

    def backward(self, grad):
        (a,) = self.saved_inputs()
        (out,) = self.saved_outputs()
        keep = _keep_shape(self.in_shape, self.axes)
        return reshape(grad, keep) * exp(a - reshape(out, keep))


@torch_names
def logsumexp(x, axis=None, keepdims=False):
    x = as_tensor(x)
    return LogSumExp.apply(x, axes=normalize_axes(axis, x.ndim, x.shape), keepdims=keepdims)


class Softmax(Function):
    def forward(self, a, axis):
        xp = array_module(a)
        self.axis = axis
        self.save_outputs(0)
        e = xp.exp(a - _stable_max(xp, a, axis))
        return e / e.sum(axis=axis, keepdims=True)

    def backward(self, grad):
        (out,) = self.saved_outputs()
        return out * (grad - sum(grad * out, self.axis, keepdims=True))


class LogSoftmax(Function):
    def forward(self, a, axis):
        xp = array_module(a)
        self.axis = axis
        self.save_outputs(0)
        shifted = a - _stable_max(xp, a, axis)
        return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))

    def backward(self, grad):
        (out,) = self.saved_outputs()
        return grad - exp(out) * sum(grad, self.axis, keepdims=True)


@torch_names
def softmax(x, axis=-1):
    x = as_tensor(x)
    return Softmax.apply(x, axis=normalize_axis(axis, x.ndim, x.shape))


@torch_names
def log_softmax(x, axis=-1):
    x = as_tensor(x)
    return LogSoftmax.apply(x, axis=normalize_axis(axis, x.ndim, x.shape))


class L2Norm(Function):
    """sqrt(sum x^2) whose gradient at the origin is 0 rather than NaN."""

    def forward(self, a, axes, keepdims):
        xp = array_module(a)
        self.in_shape, self.axes = a.shape, axes
        self.save_inputs(0)
        self.save_outputs(0)
        return xp.sqrt((a * a).sum(axis=axes, keepdims=keepdims))

    def backward(self, grad):
        (a,) = self.saved_inputs()
        (out,) = self.saved_outputs()
        keep = _keep_shape(self.in_shape, self.axes)
        out_k = reshape(out, keep)
        zero = out_k.data == 0
        safe = where(_const(zero), _const(array_module(a.data).ones((), dtype=a.dtype)), out_k)
        return reshape(grad, keep) * a / safe


@torch_names
def norm(x, p=2, axis=None, keepdims=False):
    """Vector p-norm over ``axis`` (all axes by default): p = 1, 2, inf or any p > 0."""
    x = as_tensor(x)
    axes = normalize_axes(axis, x.ndim, x.shape)
    if p == 2 or p == "fro":
        return L2Norm.apply(x, axes=axes, keepdims=keepdims)
    if p == 1:
        return sum(_abs(x), axes, keepdims)
    if p == float("inf"):
        return max(_abs(x), axes, keepdims)
    if isinstance(p, (int, float)) and p > 0:
        return sum(_abs(x) ** float(p), axes, keepdims) ** (1.0 / p)
    raise ValueError(f"norm: unsupported order p={p!r}")
