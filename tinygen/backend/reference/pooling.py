"""Pooling and nearest upsampling in plain numpy: the oracle.

Inputs are contiguous ``(N, C, H, W)`` arrays.  The window arithmetic (output
sizes, ceil mode, the average's divisors) is done once by the op layer
(``tinygen.ops.pooling``) and passed in, so these functions only move numbers.

Window ``(oh, ow)`` of a pool covers the input rows
``oh * stride_h - pad_h + i * dilation_h`` for ``i < kernel_h`` (columns alike);
positions outside the input are padding.  Each function loops over the
``kernel_h * kernel_w`` taps and handles all windows of a tap at once with a
strided slice of the padded input.

The code is written against the inputs' array module (``xp``: numpy here, cupy for
GPU arrays), so the 'cuda' family serves pooling and upsampling with these same
functions until they get kernels of their own; the scatters therefore use
``bincount`` (both modules have it) rather than ``np.add.at``.
"""
import numpy as np

from .. import array_module


def _padded(xp, x, pad_h, pad_w, need_h, need_w, fill):
    """``x`` inside a border of ``fill``: pad_h/pad_w before, enough after to hold
    ``need_h`` x ``need_w`` (ceil mode may let the last window run past the padding)."""
    n, c, h, w = x.shape
    out = xp.full((n, c, max(need_h, h + 2 * pad_h), max(need_w, w + 2 * pad_w)), fill,
                  dtype=x.dtype)
    out[:, :, pad_h:pad_h + h, pad_w:pad_w + w] = x
    return out


def _tap(array, i, j, out_h, out_w, stride, dilation):
    """The element at tap (i, j) of every window, as an (..., out_h, out_w) view."""
    (sh, sw), (dh, dw) = stride, dilation
    return array[..., i * dh: i * dh + (out_h - 1) * sh + 1: sh,
                 j * dw: j * dw + (out_w - 1) * sw + 1: sw]


def _needed(out_size, kernel, stride, dilation):
    return (out_size - 1) * stride + (kernel - 1) * dilation + 1


def _scatter_add(xp, index, values, size, dtype):
    """zeros(size) with ``values`` added at the flat int64 ``index`` (summed in float64)."""
    total = xp.bincount(index.ravel(), weights=values.ravel().astype(xp.float64),
                        minlength=size)
    return total.astype(dtype)


# --- max pooling -------------------------------------------------------------------------------
def max_pool2d_forward(x, kernel, stride, padding, dilation, out_size):
    """Window maxima and their positions (``h * W + w`` in the unpadded input plane).

    Ties go to the first position in row-major window order, and NaN wins, as in
    PyTorch.  Returns ``(values, indices)``; indices are int64.
    """
    xp = array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (ph, pw), (oh, ow) = kernel, padding, out_size
    need_h = _needed(oh, kh, stride[0], dilation[0])
    need_w = _needed(ow, kw, stride[1], dilation[1])
    padded = _padded(xp, x, ph, pw, need_h, need_w, -xp.inf)
    # Where each padded position comes from (-1: padding).
    plane = xp.arange(h * w, dtype=xp.int64).reshape(h, w)
    source = _padded(xp, plane[None, None], ph, pw, need_h, need_w, -1)[0, 0]

    best = xp.full((n, c, oh, ow), -xp.inf, dtype=x.dtype)
    index = xp.full((n, c, oh, ow), -1, dtype=xp.int64)
    for i in range(kh):
        for j in range(kw):
            value = _tap(padded, i, j, oh, ow, stride, dilation)
            where = _tap(source, i, j, oh, ow, stride, dilation)
            # the first real position of a window is its default argmax (all -inf)
            take = (value > best) | xp.isnan(value) | ((index < 0) & (where >= 0))
            best = xp.where(take, value, best)
            index = xp.where(take, where, index)
    return best, index


def gather_plane(x, indices):
    """``out[n, c, ...] = x[n, c].flat[indices[n, c, ...]]`` (max pooling given argmaxes)."""
    n, c = x.shape[:2]
    # (sizes spelled out: reshape cannot infer a -1 for an empty batch)
    flat = x.reshape(n, c, int(np.prod(x.shape[2:])))
    chosen = indices.reshape(n, c, int(np.prod(indices.shape[2:])))
    return array_module(x).take_along_axis(flat, chosen, axis=2).reshape(indices.shape)


def scatter_plane(g, indices, in_shape):
    """The adjoint of ``gather_plane``: zeros of ``in_shape`` with ``g`` added at ``indices``."""
    xp = array_module(g)
    n, c = in_shape[:2]
    plane = int(np.prod(in_shape[2:]))
    offsets = (xp.arange(n * c, dtype=xp.int64) * plane).reshape(n, c, 1)
    # positions in the (N*C*plane,) output
    flat = indices.reshape(n, c, int(np.prod(indices.shape[2:]))) + offsets
    return _scatter_add(xp, flat, g, n * c * plane, g.dtype).reshape(in_shape)


# --- average pooling ---------------------------------------------------------------------------
def avg_pool2d_forward(x, kernel, stride, padding, out_size, inv_divisor):
    """Window sums times ``inv_divisor`` (an (out_h, out_w) float64 array; 0 for
    windows with no input in them).  Padding counts as zeros."""
    xp = array_module(x)
    (kh, kw), (ph, pw), (oh, ow) = kernel, padding, out_size
    need_h = _needed(oh, kh, stride[0], 1)
    need_w = _needed(ow, kw, stride[1], 1)
    padded = _padded(xp, x, ph, pw, need_h, need_w, 0).astype(xp.float64)
    total = xp.zeros(x.shape[:2] + (oh, ow))
    for i in range(kh):
        for j in range(kw):
            total += _tap(padded, i, j, oh, ow, stride, (1, 1))
    return (total * xp.asarray(inv_divisor)).astype(x.dtype)


def avg_pool2d_adjoint(g, kernel, stride, padding, in_size, inv_divisor):
    """The transpose of ``avg_pool2d_forward``: each window spreads its gradient
    times ``inv_divisor`` back over its taps (overlapping windows add up)."""
    xp = array_module(g)
    (kh, kw), (ph, pw), (h, w) = kernel, padding, in_size
    oh, ow = g.shape[2:]
    need_h = max(_needed(oh, kh, stride[0], 1), h + 2 * ph)
    need_w = max(_needed(ow, kw, stride[1], 1), w + 2 * pw)
    padded = xp.zeros(g.shape[:2] + (need_h, need_w))
    share = g.astype(xp.float64) * xp.asarray(inv_divisor)
    for i in range(kh):
        for j in range(kw):
            _tap(padded, i, j, oh, ow, stride, (1, 1))[...] += share
    return padded[:, :, ph:ph + h, pw:pw + w].astype(g.dtype)


# --- nearest upsampling --------------------------------------------------------------------------
def upsample_nearest_forward(x, rows, cols):
    """``out[n, c, i, j] = x[n, c, rows[i], cols[j]]`` (rows/cols: source indices)."""
    xp = array_module(x)
    rows, cols = xp.asarray(rows), xp.asarray(cols)
    return x[:, :, rows[:, None], cols[None, :]]


def upsample_nearest_adjoint(g, rows, cols, in_size):
    """The transpose: every output pixel's gradient goes back to its source pixel
    (for an integer scale factor s this is a sum over s x s blocks)."""
    xp = array_module(g)
    n, c = g.shape[:2]
    h, w = in_size
    rows, cols = xp.asarray(rows, dtype=xp.int64), xp.asarray(cols, dtype=xp.int64)
    plane = (rows[:, None] * w + cols[None, :]).reshape(1, 1, -1)
    offsets = (xp.arange(n * c, dtype=xp.int64) * (h * w)).reshape(n, c, 1)
    return _scatter_add(xp, plane + offsets, g, n * c * h * w, g.dtype).reshape(n, c, h, w)
