"""Pooling family: max_pool2d, avg_pool2d and nearest upsampling (interpolate).

All of them are linear in their input once the discrete choices are fixed, so
each forward has an adjoint and the two are written as a pair of Functions whose
backwards call each other; gradients of any order then come for free:

* max pooling is a *gather* of the input at each window's argmax (the argmax is
  a constant almost everywhere); its adjoint is the *scatter-add* of a gradient
  back to those positions (``PlaneGather`` <-> ``PlaneScatter``);
* average pooling is a fixed weighted sum (``AvgPool2d`` <-> ``AvgPool2dAdjoint``);
* nearest upsampling is a gather at fixed source pixels; its adjoint sums every
  output pixel's gradient back into its source (a sum-pool for an integer
  factor) (``UpsampleNearest`` <-> ``UpsampleNearestAdjoint``).

Window arithmetic (output sizes, ceil mode, divisors) lives here; the kernels
(``tinygen.backend.{reference,numba_kernels}.pooling``) only move numbers.
"""
import math
import numbers

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module
from ..backend.kernels import kernels
from .batch_norm import contiguous
from .shape import reshape

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# --- argument checks -----------------------------------------------------------------------------
def _pair(op, name, value, minimum):
    """An int or a pair of ints, each >= ``minimum``, as a tuple (h, w)."""
    if isinstance(value, (tuple, list)):
        items = tuple(value)
        if len(items) == 1:
            items = items * 2
    else:
        items = (value, value)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                              for v in items):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    items = tuple(int(v) for v in items)
    if any(v < minimum for v in items):
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{op}: {name} must be {kind}, got {value!r}")
    return items


def _pool_input(op, x):
    """(x as 4-D, whether it was an unbatched 3-D input)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {x.shape}"
        )
    if x.dtype not in _FLOATS:
        raise TypeError(f"{op}: input must be float32 or float64, got {x.dtype}")
    if x.ndim == 3:
        return reshape(x, (1,) + x.shape), True
    return x, False


def _output_size(op, size, kernel, pad, stride, dilation, ceil_mode):
    """PyTorch's pooling_output_shape for one dimension."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1  # the last window must start inside the input or its left padding
    return out


def pool_arguments(op, kernel_size, stride, padding, dilation):
    """The checks that need no input (the pooling modules make them when built): kernel
    size, stride, padding and dilation as pairs (h, w)."""
    kernel = _pair(op, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else _pair(op, "stride", stride, 1)
    padding = _pair(op, "padding", padding, 0)
    dilation = _pair(op, "dilation", dilation, 1)
    for p, k in zip(padding, kernel):
        if p > k // 2:  # PyTorch's rule (the kernel's size, not its dilated extent)
            raise ValueError(
                f"{op}: padding should be at most half of kernel size, but got "
                f"padding={padding} and kernel_size={kernel}"
            )
    return kernel, stride, padding, dilation


def _pool_geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    kernel, stride, padding, dilation = pool_arguments(op, kernel_size, stride, padding,
                                                       dilation)
    in_size = x.shape[2:]
    out_size = tuple(_output_size(op, s, k, p, st, d, ceil_mode)
                     for s, k, p, st, d in zip(in_size, kernel, padding, stride, dilation))
    if min(out_size) < 1:
        raise ValueError(
            f"{op}: output size is too small: input of shape {x.shape} (spatial {in_size}) with "
            f"kernel_size={kernel}, stride={stride}, padding={padding}, dilation={dilation} "
            f"gives spatial output {out_size}"
        )
    return kernel, stride, padding, dilation, out_size


# --- max pooling -------------------------------------------------------------------------------
class PlaneGather(Function):
    """``out[n, c, ...] = x[n, c].flat[indices[n, c, ...]]``.

    Max pooling passes the window maxima it already has as ``values``, so its
    forward does not gather twice.
    """

    def forward(self, x, indices, values=None):
        self.indices, self.in_shape = indices, x.shape
        if values is not None:
            return values
        return kernels("pooling", x, "max_pool2d").gather_plane(contiguous(x), indices)

    def backward(self, grad):
        return PlaneScatter.apply(grad, indices=self.indices, in_shape=self.in_shape)


class PlaneScatter(Function):
    """Zeros of ``in_shape`` with ``g`` added at ``indices``: the adjoint of PlaneGather."""

    def forward(self, g, indices, in_shape):
        self.indices = indices
        return kernels("pooling", g, "max_pool2d").scatter_plane(contiguous(g), indices, in_shape)

    def backward(self, grad):
        return PlaneGather.apply(grad, indices=self.indices)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """PyTorch's ``F.max_pool2d`` for (N, C, H, W) or (C, H, W) inputs.

    ``stride`` defaults to ``kernel_size``; padding counts as -inf.  With
    ``return_indices`` also returns the argmax of every window as an int64 tensor
    of positions ``h * W + w`` in the input plane (PyTorch's convention).
    """
    op = "max_pool2d"
    x4, unbatched = _pool_input(op, x)
    kernel, stride, padding, dilation, out_size = _pool_geometry(
        op, x4, kernel_size, stride, padding, dilation, ceil_mode)
    k = kernels("pooling", x4.data, op)
    values, indices = k.max_pool2d_forward(contiguous(x4.data), kernel, stride, padding,
                                           dilation, out_size)
    out = PlaneGather.apply(x4, indices=indices, values=values)
    if unbatched:
        out, indices = reshape(out, out.shape[1:]), indices[0]
    if return_indices:
        return out, Tensor._make(indices)
    return out


# --- average pooling ---------------------------------------------------------------------------
def _axis_divisors(size, kernel, pad, stride, out, count_include_pad):
    """(window extent counted by PyTorch, window extent inside the input) per output index."""
    start = np.arange(out) * stride - pad
    end = np.minimum(start + kernel, size + pad)
    counted = end - start  # padding included, but not the part past it (ceil mode)
    inside = np.minimum(end, size) - np.maximum(start, 0)
    return counted if count_include_pad else inside, inside


def _inv_divisor(in_size, kernel, padding, stride, out_size, count_include_pad,
                 divisor_override):
    (rows, rows_in), (cols, cols_in) = (
        _axis_divisors(s, k, p, st, o, count_include_pad)
        for s, k, p, st, o in zip(in_size, kernel, padding, stride, out_size))
    divisor = np.outer(rows, cols).astype(np.float64)
    if divisor_override is not None:
        divisor[...] = divisor_override
    empty = np.outer(rows_in <= 0, np.ones_like(cols_in, bool)) | np.outer(
        np.ones_like(rows_in, bool), cols_in <= 0)
    inv = np.zeros_like(divisor)
    inv[~empty] = 1.0 / divisor[~empty]  # a window with no input in it gives 0, like PyTorch
    return inv


class AvgPool2d(Function):
    def forward(self, x, kernel, stride, padding, out_size, inv_divisor):
        xp = array_module(x)
        self.geometry = (kernel, stride, padding)
        self.in_size, self.inv_divisor = x.shape[2:], xp.asarray(inv_divisor)
        return kernels("pooling", x, "avg_pool2d").avg_pool2d_forward(
            contiguous(x), kernel, stride, padding, out_size, self.inv_divisor)

    def backward(self, grad):
        kernel, stride, padding = self.geometry
        return AvgPool2dAdjoint.apply(grad, kernel=kernel, stride=stride, padding=padding,
                                      in_size=self.in_size, inv_divisor=self.inv_divisor)


class AvgPool2dAdjoint(Function):
    """The transpose of AvgPool2d (its input gradient), itself differentiable."""

    def forward(self, g, kernel, stride, padding, in_size, inv_divisor):
        self.geometry = (kernel, stride, padding)
        self.out_size, self.inv_divisor = g.shape[2:], inv_divisor
        return kernels("pooling", g, "avg_pool2d").avg_pool2d_adjoint(
            contiguous(g), kernel, stride, padding, in_size, inv_divisor)

    def backward(self, grad):
        kernel, stride, padding = self.geometry
        return AvgPool2d.apply(grad, kernel=kernel, stride=stride, padding=padding,
                               out_size=self.out_size, inv_divisor=self.inv_divisor)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """PyTorch's ``F.avg_pool2d`` (same arguments, same divisors at the borders)."""
    op = "avg_pool2d"
    x4, unbatched = _pool_input(op, x)
    kernel, stride, padding, _, out_size = _pool_geometry(
        op, x4, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (
            isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral)
            or divisor_override == 0):
        raise ValueError(f"{op}: divisor_override must be a non-zero int, got {divisor_override!r}")
    inv = _inv_divisor(x4.shape[2:], kernel, padding, stride, out_size, count_include_pad,
                       divisor_override)
    out = AvgPool2d.apply(x4, kernel=kernel, stride=stride, padding=padding, out_size=out_size,
                          inv_divisor=inv)
    return reshape(out, out.shape[1:]) if unbatched else out


# --- nearest upsampling --------------------------------------------------------------------------
class UpsampleNearest(Function):
    def forward(self, x, rows, cols):
        self.rows, self.cols, self.in_size = rows, cols, x.shape[2:]
        return kernels("pooling", x, "interpolate").upsample_nearest_forward(contiguous(x), rows,
                                                                              cols)

    def backward(self, grad):
        return UpsampleNearestAdjoint.apply(grad, rows=self.rows, cols=self.cols,
                                            in_size=self.in_size)


class UpsampleNearestAdjoint(Function):
    """Sum every output pixel's gradient into its source pixel (the transpose)."""

    def forward(self, g, rows, cols, in_size):
        self.rows, self.cols = rows, cols
        return kernels("pooling", g, "interpolate").upsample_nearest_adjoint(
            contiguous(g), rows, cols, in_size)

    def backward(self, grad):
        return UpsampleNearest.apply(grad, rows=self.rows, cols=self.cols)


def _nearest_sources(in_size, out_size, scale):
    """Source index of every output index, as PyTorch's ``nearest`` computes it
    (in float32: ``min(floor(dst * scale), in - 1)``, scale = 1/scale_factor when
    a factor was given, else in/out)."""
    if out_size == in_size:
        return np.arange(out_size, dtype=np.int64)
    if out_size == 2 * in_size:
        return np.arange(out_size, dtype=np.int64) >> 1
    ratio = np.float32(1.0 / scale) if scale is not None and scale > 0 \
        else np.float32(in_size) / np.float32(out_size)
    src = np.floor(np.arange(out_size, dtype=np.float32) * ratio).astype(np.int64)
    return np.minimum(src, in_size - 1)


def _tuple_of(op, name, value, n, kind):
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(items) != n:
        raise ValueError(
            f"{op}: {name} must have {n} element(s) for {n} spatial dimension(s), got {value!r}")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, kind):
            raise TypeError(f"{op}: {name} must be a number or a tuple of numbers, got {value!r}")
    return items


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """PyTorch's ``F.interpolate`` for ``mode='nearest'`` on (N, C, L) and (N, C, H, W)."""
    op = "interpolate"
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if mode != "nearest":
        raise ValueError(f"{op}: unsupported mode={mode!r}; the supported mode is 'nearest'")
    if align_corners is not None:
        raise ValueError(f"{op}: align_corners option can only be set with the interpolating "
                         f"modes: linear | bilinear | bicubic | trilinear, got mode={mode!r}")
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{op}: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got shape {x.shape}")
    if x.dtype not in _FLOATS:
        raise TypeError(f"{op}: input must be float32 or float64, got {x.dtype}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: exactly one of size and scale_factor must be given, got "
                         f"size={size!r} and scale_factor={scale_factor!r}")
    spatial = x.shape[2:]
    n = len(spatial)
    if size is not None:
        out = tuple(int(s) for s in _tuple_of(op, "size", size, n, numbers.Integral))
        scales = (None,) * n
    else:
        scales = tuple(float(s) for s in _tuple_of(op, "scale_factor", scale_factor, n,
                                                   numbers.Real))
        if any(not s > 0 for s in scales):
            raise ValueError(f"{op}: scale_factor must be positive, got {scale_factor!r}")
        out = tuple(int(math.floor(s * f)) for s, f in zip(spatial, scales))
    if any(o < 1 for o in out):
        raise ValueError(f"{op}: output size {out} for an input of shape {x.shape} must be "
                         "positive in every spatial dimension")
    sources = [_nearest_sources(s, o, f) for s, o, f in zip(spatial, out, scales)]
    if n == 1:  # (N, C, L) as (N, C, 1, L)
        rows, cols = np.zeros(1, dtype=np.int64), sources[0]
        x4 = reshape(x, x.shape[:2] + (1,) + spatial)
    else:
        (rows, cols), x4 = sources, x
    xp = array_module(x.data)
    y = UpsampleNearest.apply(x4, rows=xp.asarray(rows), cols=xp.asarray(cols))
    return reshape(y, x.shape[:2] + out) if n == 1 else y


def upsample_nearest(x, size=None, scale_factor=None):
    """Nearest-neighbour upsampling (``interpolate(..., mode='nearest')``)."""
    return interpolate(x, size=size, scale_factor=scale_factor, mode="nearest")
