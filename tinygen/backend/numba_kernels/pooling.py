"""Pooling and nearest upsampling kernels (numba, cached, shared out among threads).

Same functions and signatures as ``tinygen.backend.reference.pooling`` (read
that file for the semantics); tested against it.  Pools work plane by plane:
the N * C planes are independent, so each kernel is a loop over a range of planes,
the ranges shared out among threads by ``chunks.share_range`` (small inputs on
the calling thread), and a scatter (an adjoint) never has two threads writing one
location.
"""
import numpy as np
from numba import njit

from .chunks import share_range


def _planes(kernel, planes, size, *args):
    """``kernel(*args, lo, hi)`` over planes [lo, hi) covering ``range(planes)``, shared
    out among threads when ``size`` (work in elements) is large enough."""
    share_range(kernel, planes, size, *args)


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
    idx3 = np.ascontiguousarray(indices).reshape(n, c, -1)
    out = np.empty(idx3.shape, dtype=x.dtype)
    _planes(_gather_plane, n * c, idx3.size, x.reshape(n, c, -1), idx3, out)
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
    idx3 = np.ascontiguousarray(indices).reshape(n, c, -1)
    out = np.zeros((n, c, size), dtype=g.dtype)
    _planes(_scatter_plane, n * c, idx3.size + out.size, g.reshape(n, c, -1), idx3, out)
    return out.reshape(in_shape)


# --- average pooling ---------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _avg_pool2d(x, kh, kw, sh, sw, ph, pw, inv_divisor, out, lo, hi):
    n, c, h, w = x.shape
    oh, ow = inv_divisor.shape
    for plane in range(lo, hi):
        b, ch = plane // c, plane % c
        for i in range(oh):
            r0 = max(i * sh - ph, 0)
            r1 = min(i * sh - ph + kh, h)
            for j in range(ow):
                q0 = max(j * sw - pw, 0)
                q1 = min(j * sw - pw + kw, w)
                total = 0.0
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        total += x[b, ch, r, q]
                out[b, ch, i, j] = total * inv_divisor[i, j]


@njit(cache=True, nogil=True)
def _avg_pool2d_tiles(x, kh, kw, inv_divisor, out, lo, hi):
    """_avg_pool2d when the windows tile the input (stride == kernel, no padding): the
    same sums in the same order, a window row at a time over a whole output row, so
    that the loop over j has no bounds to clip and vectorises."""
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


def avg_pool2d_forward(x, kernel, stride, padding, out_size, inv_divisor):
    n, c = x.shape[:2]
    out = np.empty((n, c) + inv_divisor.shape, dtype=x.dtype)
    work = out.size * kernel[0] * kernel[1]
    if _tiles(kernel, stride, padding, out_size, x.shape[2:]):
        _planes(_avg_pool2d_tiles, n * c, work, x, kernel[0], kernel[1], inv_divisor, out)
    else:
        _planes(_avg_pool2d, n * c, work, x, kernel[0], kernel[1], stride[0], stride[1],
                padding[0], padding[1], inv_divisor, out)
    return out


@njit(cache=True, nogil=True)
def _avg_pool2d_adjoint(g, kh, kw, sh, sw, ph, pw, inv_divisor, out, lo, hi):
    n, c, oh, ow = g.shape
    h, w = out.shape[2], out.shape[3]
    for plane in range(lo, hi):
        b, ch = plane // c, plane % c
        for i in range(oh):
            r0 = max(i * sh - ph, 0)
            r1 = min(i * sh - ph + kh, h)
            for j in range(ow):
                q0 = max(j * sw - pw, 0)
                q1 = min(j * sw - pw + kw, w)
                share = g[b, ch, i, j] * inv_divisor[i, j]
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        out[b, ch, r, q] += share


@njit(cache=True, nogil=True)
def _avg_pool2d_adjoint_tiles(g, kh, kw, inv_divisor, out, lo, hi):
    """_avg_pool2d_adjoint when the windows tile the input: each input pixel gets one
    share, written once (no zero fill, no scatter-add); the rows and columns past the
    last whole window get zero."""
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
    work = g.size * kernel[0] * kernel[1]
    if _tiles(kernel, stride, padding, g.shape[2:], in_size):
        out = np.empty((n, c) + tuple(in_size), dtype=g.dtype)
        _planes(_avg_pool2d_adjoint_tiles, n * c, work, g, kernel[0], kernel[1], inv_divisor,
                out)
    else:
        out = np.zeros((n, c) + tuple(in_size), dtype=g.dtype)
        _planes(_avg_pool2d_adjoint, n * c, work, g, kernel[0], kernel[1], stride[0], stride[1],
                padding[0], padding[1], inv_divisor, out)
    return out


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
