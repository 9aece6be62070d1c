"""Depthwise convolutions (one filter per channel: as many groups as input channels, one
output per group) as stencils over each plane.

Same results as ``tinygen/backend/reference/conv.py`` (to rounding); ``conv.py`` in
this package sends it the convs ``serves`` accepts.

Why.  A depthwise layer has no sum over channels: output plane c is input plane c
convolved with its own kh x kw filter.  As GEMMs (im2col, conv_rows) that is one
product per channel of a single weight row by kh*kw rows of columns, nothing for BLAS
to block, and im2col's input gradient is an outer product as large as its column
matrix (32 images of 64 channels, 28x28, 3x3: 42 ms, where this file takes 3.2).  Here
each op loops over a plane's kept taps, and for each over the outputs it reaches, the
innermost loop along the output: at stride 1 over the whole plane at once, on a
zero-padded copy of it (the padded-plane kernels below), at other strides along each
output row.  With (i_t, j_t) the kept taps (a mask keeps some), p, q an output's row
and column:

    forward      y[n, c, p, q]  = sum_t w[c, t] x[n, c, p*sh - top + i_t*dh, q*sw - left + j_t*dw]
                 (+ bias[c], then + residual[n, c, p, q], as the other paths add them)
    input grad   gx[n, c, r(p, t), s(q, t)] += w[c, t] gy[n, c, p, q]   (the same indices)
    weight grad  gw[c, t] = sum over n, p, q of gy[n, c, p, q] x[n, c, r(p, t), s(q, t)]

The row kernels visit only the in-bounds outputs of each tap
(``conv_bounds.valid_range``): the padding is zero and adds nothing.  Threads (``chunks.share_range``): the forward and
the input gradient share out planes (n, c), which are independent; the weight gradient
shares out channels, each summed over every image by one thread.  Every sum runs in
the same order whatever the thread count, so results are the same bits run to run.
The weight gradient sums each tap's products into a row (or plane) of partial sums,
a loop LLVM vectorises without reordering any sum, then adds those up.
"""
import numpy as np
from numba import njit

from .chunks import share_range
from .conv_bounds import terms_for_kernel as _terms, valid_range as _valid_range

# Every buffer and output the code below fills comes from ``_empty`` (the tests swap in
# a NaN-filled one, so that an element a kernel forgets to write cannot pass for a zero
# that fresh memory happened to hold).
_empty = np.empty


def serves(geom, taps, in_per_group, out_per_group):
    """One input and one output channel per group, more than one group (any kernel,
    stride, dilation and padding)."""
    return geom.groups > 1 and in_per_group == 1 and out_per_group == 1


@njit(cache=True, nogil=True, inline="always")
def _segments(out_plane, in_plane, p, row_off, col_off, q_lo, q_hi, wout, width, sh, sw):
    """Output row p's in-bounds stretch [q_lo, q_hi) and the input it reads for one tap
    (every sw-th element from column q_lo*sw + col_off of input row p*sh + row_off), as
    two views of equal length: the loops over them index from 0 with no offset that
    could be negative, so numba adds no wraparound test and LLVM vectorises them (with
    the offsets in the index, the stride-1 forward ran ~3x slower)."""
    out_row = out_plane[p * wout + q_lo:p * wout + q_hi]
    start = (p * sh + row_off) * width + q_lo * sw + col_off
    return out_row, in_plane[start:start + (q_hi - q_lo - 1) * sw + 1:sw]


@njit(cache=True, nogil=True, inline="always")
def _reach(i, j, height, width, hout, wout, sh, sw, top, left, dh, dw):
    """Tap (i, j)'s offsets into the input (row, column) and the outputs whose input it
    reads lies inside the plane: rows [p_lo, p_hi), columns [q_lo, q_hi)."""
    row_off, col_off = i * dh - top, j * dw - left
    p_lo, p_hi = _valid_range(row_off, sh, height, hout)
    q_lo, q_hi = _valid_range(col_off, sw, width, wout)
    return row_off, col_off, p_lo, p_hi, q_lo, q_hi


@njit(cache=True, nogil=True, inline="always")
def _add_terms(out_plane, bias, residual, plane, c):
    """out_plane += bias[c], then += the residual's plane (none when empty): the other
    paths' order, residual + (conv + bias)."""
    if bias.size:
        b = bias[c]
        for k in range(out_plane.size):
            out_plane[k] += b
    if residual.size:
        terms = residual[plane * out_plane.size:(plane + 1) * out_plane.size]
        for k in range(out_plane.size):
            out_plane[k] += terms[k]


@njit(cache=True, nogil=True, fastmath=False)
def _forward_planes(x, w, y, bias, residual, tap_i, tap_j, channels, height, width, hout,
                    wout, sh, sw, top, left, dh, dw, lo, hi):
    """Planes [lo, hi) of y (N*C, hout*wout) from x (N*C, H*W) and w (C, T)."""
    zero = y.dtype.type(0)
    for plane in range(lo, hi):
        c = plane % channels
        xp, yp = x[plane], y[plane]
        for k in range(hout * wout):
            yp[k] = zero
        for t in range(tap_i.size):
            wt = w[c, t]
            row_off, col_off, p_lo, p_hi, q_lo, q_hi = _reach(
                tap_i[t], tap_j[t], height, width, hout, wout, sh, sw, top, left, dh, dw)
            for p in range(p_lo, p_hi):
                y_seg, x_seg = _segments(yp, xp, p, row_off, col_off, q_lo, q_hi, wout,
                                         width, sh, sw)
                for k in range(y_seg.size):
                    y_seg[k] += wt * x_seg[k]
        _add_terms(yp, bias, residual, plane, c)


@njit(cache=True, nogil=True, fastmath=False)
def _input_grad_planes(gy, w, gx, tap_i, tap_j, channels, height, width, hout, wout, sh,
                       sw, top, left, dh, dw, lo, hi):
    """Planes [lo, hi) of gx (N*C, H*W) from gy (N*C, hout*wout) and w (C, T)."""
    zero = gx.dtype.type(0)
    for plane in range(lo, hi):
        c = plane % channels
        gxp, gyp = gx[plane], gy[plane]
        for k in range(height * width):
            gxp[k] = zero
        for t in range(tap_i.size):
            wt = w[c, t]
            row_off, col_off, p_lo, p_hi, q_lo, q_hi = _reach(
                tap_i[t], tap_j[t], height, width, hout, wout, sh, sw, top, left, dh, dw)
            for p in range(p_lo, p_hi):
                gy_seg, gx_seg = _segments(gyp, gxp, p, row_off, col_off, q_lo, q_hi, wout,
                                           width, sh, sw)
                for k in range(gy_seg.size):
                    gx_seg[k] += wt * gy_seg[k]


@njit(cache=True, nogil=True, fastmath=False)
def _weight_grad_channels(x, gy, gw, partial, tap_i, tap_j, images, channels, height,
                          width, hout, wout, sh, sw, top, left, dh, dw, lo, hi):
    """Channels [lo, hi) of gw (C, T) from x (N*C, H*W) and gy (N*C, hout*wout);
    ``partial`` holds a row of partial sums per channel (C, wout)."""
    zero = gw.dtype.type(0)
    for c in range(lo, hi):
        row_sums = partial[c]
        for t in range(tap_i.size):
            for q in range(wout):
                row_sums[q] = zero
            row_off, col_off, p_lo, p_hi, q_lo, q_hi = _reach(
                tap_i[t], tap_j[t], height, width, hout, wout, sh, sw, top, left, dh, dw)
            for n in range(images):
                xp, gyp = x[n * channels + c], gy[n * channels + c]
                sums = row_sums[q_lo:q_hi]
                for p in range(p_lo, p_hi):
                    gy_seg, x_seg = _segments(gyp, xp, p, row_off, col_off, q_lo, q_hi, wout,
                                              width, sh, sw)
                    for k in range(sums.size):
                        sums[k] += gy_seg[k] * x_seg[k]
            total = zero
            for q in range(wout):
                total += row_sums[q]
            gw[c, t] = total


# --- stride 1: each plane on a zero-padded copy, one long loop per tap ------------------------
# A row of a 28x28 output is 28 elements long, so the kernels above spend as much time
# per row (views, bounds) as on the products.  At stride 1 the padded plane makes every
# tap one loop over the whole output: with Wp the padded width, output (p, q) of tap
# (i, j) reads padded[(p + i*dh) * Wp + q + j*dw], linear in k = p*Wp + q, so the output
# is computed on the (hout, Wp) grid -- Wp - wout junk columns per row, dropped at the
# end -- in hout*Wp-long loops.  The sums are the same float operations in the same
# order as above (the padding adds products with zeros).  Non-finite inputs: the weight
# gradient's junk columns multiply a zero gradient by the input they wrap onto, so an
# inf in x can give NaN where the row kernels give inf (as in conv_winograd, whose
# tiles mix inputs likewise).
@njit(cache=True, nogil=True, fastmath=False)
def _pad_into(padded, plane, rows, cols, top, left, wp):
    """plane (rows*cols) into the interior of padded (its border left as it is)."""
    for r in range(rows):
        dst = padded[(r + top) * wp + left:(r + top) * wp + left + cols]
        src = plane[r * cols:(r + 1) * cols]
        for k in range(cols):
            dst[k] = src[k]


@njit(cache=True, nogil=True, fastmath=False)
def _forward_planes_flat(x, w, y, bias, residual, tap_i, tap_j, channels, height, width,
                         hout, wout, top, left, dh, dw, hp, wp, lo, hi):
    zero = y.dtype.type(0)
    span = hout * wp
    padded = np.zeros(hp * wp + (tap_j.max() if tap_j.size else 0) * dw + 1, y.dtype)
    grid = np.empty(span, y.dtype)
    for plane in range(lo, hi):
        c = plane % channels
        _pad_into(padded, x[plane], height, width, top, left, wp)
        for k in range(span):
            grid[k] = zero
        for t in range(tap_i.size):
            wt = w[c, t]
            at = tap_i[t] * dh * wp + tap_j[t] * dw
            src = padded[at:at + span]
            for k in range(span):
                grid[k] += wt * src[k]
        yp = y[plane]
        for p in range(hout):
            out, row = yp[p * wout:(p + 1) * wout], grid[p * wp:p * wp + wout]
            for q in range(wout):
                out[q] = row[q]
        _add_terms(yp, bias, residual, plane, c)


@njit(cache=True, nogil=True, fastmath=False)
def _input_grad_planes_flat(gy, w, gx, tap_i, tap_j, channels, height, width, hout, wout,
                            top, left, dh, dw, hp, wp, lo, hi):
    zero = gx.dtype.type(0)
    span = hout * wp
    padded = np.empty(hp * wp + (tap_j.max() if tap_j.size else 0) * dw + 1, gx.dtype)
    grid = np.zeros(span, gx.dtype)         # (its junk columns stay zero)
    for plane in range(lo, hi):
        c = plane % channels
        for k in range(padded.size):
            padded[k] = zero
        gyp = gy[plane]
        for p in range(hout):
            row, src = grid[p * wp:p * wp + wout], gyp[p * wout:(p + 1) * wout]
            for q in range(wout):
                row[q] = src[q]
        for t in range(tap_i.size):
            wt = w[c, t]
            at = tap_i[t] * dh * wp + tap_j[t] * dw
            dst = padded[at:at + span]
            for k in range(span):
                dst[k] += wt * grid[k]
        gxp = gx[plane]
        for r in range(height):
            out, row = gxp[r * width:(r + 1) * width], padded[(r + top) * wp + left:
                                                                (r + top) * wp + left + width]
            for s in range(width):
                out[s] = row[s]


@njit(cache=True, nogil=True, fastmath=False)
def _weight_grad_channels_flat(x, gy, gw, tap_i, tap_j, images, channels, height, width,
                               hout, wout, top, left, dh, dw, hp, wp, lo, hi):
    zero = gw.dtype.type(0)
    span = hout * wp
    padded = np.zeros(hp * wp + (tap_j.max() if tap_j.size else 0) * dw + 1, gw.dtype)
    grid = np.zeros(span, gw.dtype)         # (its junk columns stay zero)
    sums = np.empty((tap_i.size, span), gw.dtype)
    for c in range(lo, hi):
        for t in range(tap_i.size):
            for k in range(span):
                sums[t, k] = zero
        for n in range(images):
            _pad_into(padded, x[n * channels + c], height, width, top, left, wp)
            gyp = gy[n * channels + c]
            for p in range(hout):
                row, src = grid[p * wp:p * wp + wout], gyp[p * wout:(p + 1) * wout]
                for q in range(wout):
                    row[q] = src[q]
            for t in range(tap_i.size):
                at = tap_i[t] * dh * wp + tap_j[t] * dw
                src, acc = padded[at:at + span], sums[t]
                for k in range(span):
                    acc[k] += grid[k] * src[k]
        for t in range(tap_i.size):
            total = zero
            for k in range(span):
                total += sums[t, k]
            gw[c, t] = total


def _geometry(geom):
    (height, width), (hout, wout) = geom.in_size, geom.out_size
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    top, _, left, _ = geom.padding
    return height, width, hout, wout, sh, sw, top, left, dh, dw


def _flat_grid(geom):
    """Stride 1 both ways: the padded-plane kernels."""
    return tuple(geom.stride) == (1, 1)


def _flat_geometry(geom):
    """(height, width, hout, wout, top, left, dh, dw, padded height, padded width)."""
    (height, width), (hout, wout) = geom.in_size, geom.out_size
    (dh, dw), (top, bottom, left, right) = geom.dilation, geom.padding
    return height, width, hout, wout, top, left, dh, dw, height + top + bottom, \
        width + left + right


def _taps(taps):
    taps = np.asarray(taps, dtype=np.int64).reshape(-1, 2)
    return np.ascontiguousarray(taps[:, 0]), np.ascontiguousarray(taps[:, 1])


def _tap_weights(weight, tap_i, tap_j):
    """weight (C, 1, kh, kw) at the kept taps, (C, T)."""
    return np.ascontiguousarray(weight[:, 0, tap_i, tap_j])


def forward(x, weight, geom, taps, bias=None, residual=None):
    n, channels = x.shape[:2]
    hout, wout = geom.out_size
    tap_i, tap_j = _taps(taps)
    y = _empty((n, channels, hout, wout), dtype=x.dtype)
    args = (np.ascontiguousarray(x).reshape(n * channels, -1),
            _tap_weights(weight, tap_i, tap_j), y.reshape(n * channels, -1),
            _terms(bias, x.dtype), _terms(residual, x.dtype), tap_i, tap_j, channels)
    if _flat_grid(geom):
        share_range(_forward_planes_flat, n * channels, x.size + y.size, *args,
                    *_flat_geometry(geom))
    else:
        share_range(_forward_planes, n * channels, x.size + y.size, *args, *_geometry(geom))
    return y


def input_grad(grad_y, weight, geom, taps):
    n, channels = grad_y.shape[:2]
    height, width = geom.in_size
    tap_i, tap_j = _taps(taps)
    gx = _empty((n, channels, height, width), dtype=grad_y.dtype)
    args = (np.ascontiguousarray(grad_y).reshape(n * channels, -1),
            _tap_weights(weight, tap_i, tap_j), gx.reshape(n * channels, -1), tap_i, tap_j,
            channels)
    if _flat_grid(geom):
        share_range(_input_grad_planes_flat, n * channels, grad_y.size + gx.size, *args,
                    *_flat_geometry(geom))
    else:
        share_range(_input_grad_planes, n * channels, grad_y.size + gx.size, *args,
                    *_geometry(geom))
    return gx


def weight_grad(x, grad_y, geom, taps):
    n, channels = x.shape[:2]
    kh, kw = geom.kernel
    tap_i, tap_j = _taps(taps)
    grad_w = np.zeros((channels, 1, kh, kw), dtype=x.dtype)   # (untaken taps stay zero)
    if tap_i.size == 0:
        return grad_w
    at_taps = _empty((channels, tap_i.size), dtype=x.dtype)
    planes = (np.ascontiguousarray(x).reshape(n * channels, -1),
              np.ascontiguousarray(grad_y).reshape(n * channels, -1), at_taps)
    if _flat_grid(geom):
        share_range(_weight_grad_channels_flat, channels, x.size + grad_y.size, *planes,
                    tap_i, tap_j, n, channels, *_flat_geometry(geom))
    else:
        share_range(_weight_grad_channels, channels, x.size + grad_y.size, *planes,
                    _empty((channels, geom.out_size[1]), dtype=x.dtype), tap_i, tap_j, n,
                    channels, *_geometry(geom))
    grad_w[:, 0, tap_i, tap_j] = at_taps
    return grad_w
