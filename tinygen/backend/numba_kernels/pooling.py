"""Pooling and nearest upsampling kernels (numba, cached, shared out among threads).

Same functions and signatures as ``tinygen.backend.reference.pooling`` (read
that file for the semantics); tested against it.  Pools work plane by plane:
the N * C planes are independent, so each kernel is a loop over a range of planes,
the ranges shared out among threads by ``chunks.share_range`` (small inputs on
the calling thread), and a scatter (an adjoint) never has two threads writing one
location.  Average pooling over windows that do not tile the input is a depthwise
convolution with a kernel of ones (``conv_depthwise``), scaled (see below).
"""
from typing import NamedTuple

import numpy as np
from numba import njit

from . import conv_depthwise
from .chunks import share_range


def _planes(kernel, planes, size, *args):
    """``kernel(*args, lo, hi)`` over planes [lo, hi) covering ``range(planes)``, shared
    out among threads when ``size`` (work in elements) is large enough."""
    share_range(kernel, planes, size, *args)


def _plane_size(a):
    """H * W of an (N, C, H, W) array (reshape's -1 cannot infer it for an empty batch)."""
    return a.shape[2] * a.shape[3]


# --- max pooling -------------------------------------------------------------------------------
@njit(cache=True)
def _tap_range(start, kernel, dilation, size):
    """The taps ``lo <= t < hi`` of a window starting at ``start`` that fall inside [0, size)."""
    lo = 0
    while lo < kernel and start + lo * dilation < 0:
        lo += 1
    hi = kernel
    while hi > lo and start + (hi - 1) * dilation >= size:
        hi -= 1
    return lo, hi


@njit(cache=True, nogil=True)
def _max_pool2d(x, kh, kw, sh, sw, ph, pw, dh, dw, values, indices, lo, hi):
    n, c, h, w = x.shape
    oh, ow = values.shape[2], values.shape[3]
    # Which taps of each window row / column are inside the input: the same for all planes.
    row_lo, row_hi = np.empty(oh, np.int64), np.empty(oh, np.int64)
    col_lo, col_hi = np.empty(ow, np.int64), np.empty(ow, np.int64)
    for i in range(oh):
        row_lo[i], row_hi[i] = _tap_range(i * sh - ph, kh, dh, h)
    for j in range(ow):
        col_lo[j], col_hi[j] = _tap_range(j * sw - pw, kw, dw, w)
    for plane in range(lo, hi):
        b = plane // c
        ch = plane - b * c
        for i in range(oh):
            h0 = i * sh - ph
            for j in range(ow):
                w0 = j * sw - pw
                if row_lo[i] >= row_hi[i] or col_lo[j] >= col_hi[j]:
                    values[b, ch, i, j] = -np.inf  # no input in the window
                    indices[b, ch, i, j] = -1
                    continue
                # The first position inside the window is the default argmax (all -inf).
                r = h0 + row_lo[i] * dh
                q = w0 + col_lo[j] * dw
                best = x[b, ch, r, q]
                where = r * w + q
                for u in range(row_lo[i], row_hi[i]):
                    r = h0 + u * dh
                    for v in range(col_lo[j], col_hi[j]):
                        q = w0 + v * dw
                        value = x[b, ch, r, q]
                        if value > best or value != value:  # NaN wins, like PyTorch
                            best = value
                            where = r * w + q
                values[b, ch, i, j] = best
                indices[b, ch, i, j] = where


@njit(cache=True, nogil=True)
def _max_pool2d_tiles(x, kh, kw, values, indices, lo, hi):
    """_max_pool2d when the windows tile the input (stride == kernel, no padding, no
    dilation): the same comparisons in the same (row-major) tap order, with no tap
    ranges to look up, on flat arrays (the planes here are small, 16x16 -> 8x8 in the
    models, and per-row views cost more than the comparisons)."""
    n, c, h, w = x.shape
    oh, ow = values.shape[2], values.shape[3]
    xf, vf, wf = x.reshape(-1), values.reshape(-1), indices.reshape(-1)
    for plane in range(lo, hi):
        xb = plane * h * w
        o = plane * oh * ow
        for i in range(oh):
            for j in range(ow):
                at = i * kh * w + j * kw  # the window's first position: the default argmax
                best = xf[xb + at]
                where = at
                for u in range(kh):
                    for v in range(kw):
                        value = xf[xb + at + u * w + v]
                        if value > best or value != value:  # NaN wins, like PyTorch
                            best = value
                            where = at + u * w + v
                vf[o] = best
                wf[o] = where
                o += 1


@njit(cache=True, nogil=True)
def _max_pool2d_2x2(x, values, indices, lo, hi):
    """_max_pool2d_tiles for 2x2 windows: the taps unrolled, each comparison a select
    rather than a branch (random data mispredicts a branch about every other window),
    over views that start at each row (2.5x faster than the general kernel on the
    models' (64, 64, 16, 16) activations)."""
    n, c, h, w = x.shape
    oh, ow = values.shape[2], values.shape[3]
    xf, vf, wf = x.reshape(-1), values.reshape(-1), indices.reshape(-1)
    for plane in range(lo, hi):
        xb = plane * h * w
        o = plane * oh * ow
        for i in range(oh):
            top = xf[xb + 2 * i * w:xb + 2 * i * w + w]
            bottom = xf[xb + 2 * i * w + w:xb + 2 * i * w + 2 * w]
            best_row, where_row = vf[o:o + ow], wf[o:o + ow]
            at = 2 * i * w
            for j in range(ow):
                best = top[2 * j]
                where = at + 2 * j
                value = top[2 * j + 1]
                take = value > best or value != value  # NaN wins, like PyTorch
                best = value if take else best
                where = at + 2 * j + 1 if take else where
                value = bottom[2 * j]
                take = value > best or value != value
                best = value if take else best
                where = at + w + 2 * j if take else where
                value = bottom[2 * j + 1]
                take = value > best or value != value
                best = value if take else best
                where = at + w + 2 * j + 1 if take else where
                best_row[j] = best
                where_row[j] = where
            o += ow


def max_pool2d_forward(x, kernel, stride, padding, dilation, out_size):
    n, c = x.shape[:2]
    values = np.empty((n, c) + tuple(out_size), dtype=x.dtype)
    indices = np.empty((n, c) + tuple(out_size), dtype=np.int64)
    work = values.size * kernel[0] * kernel[1]
    tiles = _tiles(kernel, stride, padding, out_size, x.shape[2:]) and tuple(dilation) == (1, 1)
    if tiles and tuple(kernel) == (2, 2):
        _planes(_max_pool2d_2x2, n * c, work, x, values, indices)
    elif tiles:
        _planes(_max_pool2d_tiles, n * c, work, x, kernel[0], kernel[1], values, indices)
    else:
        _planes(_max_pool2d, n * c, work, x, kernel[0], kernel[1], stride[0], stride[1],
                padding[0], padding[1], dilation[0], dilation[1], values, indices)
    return values, indices


@njit(cache=True, nogil=True)
def _gather_plane(x3, idx3, out, lo, hi):
    n, c, m = idx3.shape
    for plane in range(lo, hi):
        b, ch = plane // c, plane % c
        for k in range(m):
            out[b, ch, k] = x3[b, ch, idx3[b, ch, k]]


def gather_plane(x, indices):
    n, c = x.shape[:2]
    idx3 = np.ascontiguousarray(indices).reshape(n, c, _plane_size(indices))
    out = np.empty(idx3.shape, dtype=x.dtype)
    _planes(_gather_plane, n * c, idx3.size, x.reshape(n, c, _plane_size(x)), idx3, out)
    return out.reshape(indices.shape)


@njit(cache=True, nogil=True)
def _scatter_plane(g3, idx3, out, lo, hi):
    n, c, m = idx3.shape
    for plane in range(lo, hi):
        b, ch = plane // c, plane % c
        for k in range(m):
            out[b, ch, idx3[b, ch, k]] += g3[b, ch, k]


def scatter_plane(g, indices, in_shape):
    n, c = in_shape[:2]
    size = int(np.prod(in_shape[2:]))
    idx3 = np.ascontiguousarray(indices).reshape(n, c, _plane_size(indices))
    out = np.zeros((n, c, size), dtype=g.dtype)
    _planes(_scatter_plane, n * c, idx3.size + out.size, g.reshape(n, c, _plane_size(g)),
            idx3, out)
    return out.reshape(in_shape)


# --- average pooling ---------------------------------------------------------------------------
# Two paths.  Windows that tile the input (stride == kernel, no padding: the 2x2 pools
# of the models) are summed a window row at a time (``_avg_pool2d_tiles``), and each
# input pixel of the adjoint gets its one share written once.  Every other pool
# (overlapping windows, padding, ceil mode) is a depthwise convolution with a kernel of
# ones: ``conv_depthwise``'s stencils, each tap one loop over a whole plane, which scale
# each output by its window's 1 / divisor as they write it (``scale``), and their input
# gradient for the adjoint (the gradient scaled as it is read: no scaled copy, which
# made the step's peak memory twice PyTorch's).  The per-window loops they replace,
# clipped at the borders, vectorised nothing: 32 images of 64 channels 28x28, 3x3
# stride 1 pad 1, 1 thread, quiet, interleaved: forward 25.5 -> 2.1 ms, adjoint 23.6 ->
# 2.2; stride 2: 5.1 -> 1.8 and 6.0 -> 1.9.  (The tiled case, (64, 64, 16, 16) 2x2, on
# the stencils / on its loops: forward 1.62 / 1.65 ms, adjoint 1.91 / 1.13: so it keeps
# its own loops.)
@njit(cache=True, nogil=True)
def _avg_pool2d_tiles(x, kh, kw, inv_divisor, out, lo, hi):
    """The windows tile the input: the sums a window row at a time over a whole output
    row, so that the loop over j has no bounds to clip and vectorises."""
    n, c, h, w = x.shape
    oh, ow = inv_divisor.shape
    for plane in range(lo, hi):
        b, ch = plane // c, plane % c
        total = np.empty(ow, dtype=np.float64)
        for i in range(oh):
            total[:] = 0.0
            for r in range(i * kh, i * kh + kh):
                row = x[b, ch, r]
                for q in range(kw):
                    for j in range(ow):
                        total[j] += row[j * kw + q]
            y, inv = out[b, ch, i], inv_divisor[i]
            for j in range(ow):
                y[j] = total[j] * inv[j]


def _tiles(kernel, stride, padding, out_size, in_size):
    """Whether the windows tile the input: stride == kernel, no padding, and every window
    inside the input (ceil mode's last window may run past it)."""
    return tuple(stride) == tuple(kernel) and not any(padding) and all(
        o * k <= s for o, k, s in zip(out_size, kernel, in_size))


class _Windows(NamedTuple):
    """A pool's windows as the geometry of a depthwise conv (the attributes
    ``conv_depthwise`` reads).  Padding (top, bottom, left, right): the pool's own on the
    top and left, and on the bottom and right as much as the last window reaches past
    the input (in ceil mode more than the pool's padding; the conv's zeros there add
    nothing, and the divisor counts what PyTorch counts)."""
    stride: tuple
    padding: tuple
    dilation: tuple
    in_size: tuple
    out_size: tuple
    kernel: tuple


def _stencil(kernel, stride, padding, in_size, out_size, channels, dtype):
    """(geometry, taps, weight of ones) of the depthwise conv that sums a pool's windows."""
    far = [max(0, (o - 1) * s + k - n - p)
           for o, s, k, n, p in zip(out_size, stride, kernel, in_size, padding)]
    windows = _Windows(tuple(stride), (padding[0], far[0], padding[1], far[1]), (1, 1),
                       tuple(in_size), tuple(out_size), tuple(kernel))
    taps = np.argwhere(np.ones(kernel, dtype=bool)).astype(np.int64)
    return windows, taps, np.ones((channels, 1) + tuple(kernel), dtype=dtype)


def avg_pool2d_forward(x, kernel, stride, padding, out_size, inv_divisor):
    n, c = x.shape[:2]
    if _tiles(kernel, stride, padding, out_size, x.shape[2:]):
        out = np.empty((n, c) + inv_divisor.shape, dtype=x.dtype)
        _planes(_avg_pool2d_tiles, n * c, out.size * kernel[0] * kernel[1], x, kernel[0],
                kernel[1], inv_divisor, out)
        return out
    return _avg_pool2d_stencil(x, kernel, stride, padding, out_size, inv_divisor)


def _avg_pool2d_stencil(x, kernel, stride, padding, out_size, inv_divisor):
    windows, taps, ones = _stencil(kernel, stride, padding, x.shape[2:], out_size,
                                   x.shape[1], x.dtype)
    return conv_depthwise.forward(x, ones, windows, taps, scale=inv_divisor)


@njit(cache=True, nogil=True)
def _avg_pool2d_adjoint_tiles(g, kh, kw, inv_divisor, out, lo, hi):
    """The adjoint when the windows tile the input: each input pixel gets one share,
    written once (no zero fill, no scatter-add); the rows and columns past the last
    whole window get zero."""
    n, c, oh, ow = g.shape
    for plane in range(lo, hi):
        b, ch = plane // c, plane % c
        for i in range(oh):
            gi, inv = g[b, ch, i], inv_divisor[i]
            for r in range(i * kh, i * kh + kh):
                row = out[b, ch, r]
                for q in range(kw):
                    for j in range(ow):
                        row[j * kw + q] = gi[j] * inv[j]
                row[ow * kw:] = 0
        out[b, ch, oh * kh:] = 0


def avg_pool2d_adjoint(g, kernel, stride, padding, in_size, inv_divisor):
    n, c = g.shape[:2]
    if _tiles(kernel, stride, padding, g.shape[2:], in_size):
        out = np.empty((n, c) + tuple(in_size), dtype=g.dtype)
        _planes(_avg_pool2d_adjoint_tiles, n * c, g.size * kernel[0] * kernel[1], g,
                kernel[0], kernel[1], inv_divisor, out)
        return out
    return _avg_pool2d_adjoint_stencil(g, kernel, stride, padding, in_size, inv_divisor)


def _avg_pool2d_adjoint_stencil(g, kernel, stride, padding, in_size, inv_divisor):
    windows, taps, ones = _stencil(kernel, stride, padding, in_size, g.shape[2:], g.shape[1],
                                   g.dtype)
    return conv_depthwise.input_grad(g, ones, windows, taps, scale=inv_divisor)


# --- nearest upsampling --------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _upsample_nearest(x, rows, cols, out, lo, hi):
    c = x.shape[1]
    oh, ow = rows.shape[0], cols.shape[0]
    for plane in range(lo, hi):
        b, ch = plane // c, plane % c
        for i in range(oh):
            r = rows[i]
            for j in range(ow):
                out[b, ch, i, j] = x[b, ch, r, cols[j]]


def upsample_nearest_forward(x, rows, cols):
    n, c = x.shape[:2]
    out = np.empty((n, c, rows.size, cols.size), dtype=x.dtype)
    _planes(_upsample_nearest, n * c, out.size, x, rows, cols, out)
    return out


@njit(cache=True, nogil=True)
def _upsample_nearest_adjoint(g, rows, cols, out, lo, hi):
    n, c, oh, ow = g.shape
    for plane in range(lo, hi):
        b, ch = plane // c, plane % c
        for i in range(oh):
            r = rows[i]
            for j in range(ow):
                out[b, ch, r, cols[j]] += g[b, ch, i, j]


def upsample_nearest_adjoint(g, rows, cols, in_size):
    n, c = g.shape[:2]
    out = np.zeros((n, c) + tuple(in_size), dtype=g.dtype)
    _planes(_upsample_nearest_adjoint, n * c, g.size, g, rows, cols, out)
    return out
