"""Depthwise convolutions (one filter per channel: as many groups as input channels, one
output per group) as stencils over each plane.

Same results as ``tinygen/backend/reference/conv.py`` (to rounding); ``conv.py`` in
this package sends it the convs ``serves`` accepts.

Why.  A depthwise layer has no sum over channels: output plane c is input plane c
convolved with its own kh x kw filter.  As GEMMs (im2col, conv_rows) that is one
product per channel of a single weight row by kh*kw rows of columns, nothing for BLAS
to block, and im2col's input gradient is an outer product as large as its column
matrix (32 images of 64 channels, 28x28, 3x3: 42 ms, where this file takes ~2.4).

How.  With (i_t, j_t) the kept taps (a mask keeps some) and p, q an output's row and
column, over the plane zero-padded by (top, left):

    forward      y[n, c, p, q]  = sum_t w[c, t] padded[n, c, p*sh + i_t*dh, q*sw + j_t*dw]
                 (+ bias[c], then + residual[n, c, p, q], as the other paths add them)
    input grad   padded_gx[n, c, (same index)] += w[c, t] gy[n, c, p, q], then its interior
    weight grad  gw[c, t] = sum over n, p, q of gy[n, c, p, q] padded[n, c, (same index)]

A loop over one output row (28 outputs for a 28x28 layer) spends as long on its views
and bounds as on its products (a first version: 8.5 ms forward, 1 thread, against ~2.2
here), so each tap is ONE loop over the whole output.  The padded plane is held as its sh x sw
phase planes, phase[a, b][u, v] = padded[u*sh + a, v*sw + b], each (Hq, Wq) with Wq =
ceil(Wp / sw): tap t reads phase[(i_t*dh) % sh, (j_t*dw) % sw] at [p + (i_t*dh) // sh,
q + (j_t*dw) // sw], which is linear in k = p*Wq + q.  So the output is computed on an
(hout, Wq) grid, Wq - wout junk columns a row that are dropped at the end, in
hout*Wq-long loops that LLVM vectorises (at stride 1 the one phase plane is the padded
plane itself).  The adjoints run the same loops the other way.  Where each tap reads
is worked out once per call (``_reads``) and the planes are copied a phase at a time:
divisions per tap and plane, or per row, cost 15-35% of the forward.  (Against a
version with the padded plane only, which served stride 1 alone: fwd / dx / dw 2.04 /
1.96 / 2.51 ms there, 1.93 / 1.98 / 2.57 here, 1 thread; at stride 2 the phase planes
replaced loops along output rows, 11.4 -> 9.9 ms fwd+dx+dw.)

Threads (``chunks.share_range``): the forward and the input gradient share out planes
(n, c), which are independent; the weight gradient shares out channels, each summed
over every image by one thread.  Every sum runs in the same order whatever the thread
count, so results are the same bits run to run.  The weight gradient sums each tap's
products into a grid of partial sums (a loop LLVM vectorises without reordering any
sum), then adds those up.  Non-finite inputs: the weight gradient's junk columns
multiply a zero gradient by the input they wrap onto, so an inf in x can give NaN
where a direct sum gives inf (as in conv_winograd, whose tiles mix inputs likewise).
"""
import numpy as np
from numba import njit

from .chunks import share_range
from .conv_bounds import terms_for_kernel as _terms

# Every buffer and output the code below fills comes from ``_empty`` (the tests swap in
# a NaN-filled one, so that an element a kernel forgets to write cannot pass for a zero
# that fresh memory happened to hold).
_empty = np.empty
_NO_SCALE = np.empty(0, np.float64)


def serves(geom, taps, in_per_group, out_per_group):
    """One input and one output channel per group, more than one group (any kernel,
    stride, dilation and padding)."""
    return geom.groups > 1 and in_per_group == 1 and out_per_group == 1


# --- the phase planes ------------------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _phase_run(a, b, rows, cols, top, left, sh, sw, hq, wq):
    """Which part of the plane (rows*cols) phase plane (a, b) holds: its first input row
    r0 and column s0, how many rows (every sh-th) and columns (every sw-th) from them,
    and where the first of them sits in the flat buffer of all the phase planes (each
    Hq*Wq elements and Wq more, which the junk columns of the last row read).  Per phase,
    not per row: divisions per row cost a third of the forward."""
    r0, s0 = (a - top) % sh, (b - left) % sw
    n_rows = (rows - r0 + sh - 1) // sh if r0 < rows else 0
    count = (cols - s0 + sw - 1) // sw if s0 < cols else 0
    at = (a * sw + b) * (hq + 1) * wq + ((r0 + top) // sh) * wq + (s0 + left) // sw
    return r0, s0, n_rows, count, at


@njit(cache=True, nogil=True, fastmath=False)
def _phases_into(phases, plane, rows, cols, top, left, sh, sw, hq, wq):
    """plane (rows*cols) into the phase planes (one flat buffer, ``_phase_run``), at the
    positions of the padded plane's interior (the rest is left as it is)."""
    for a in range(sh):
        for b in range(sw):
            r0, s0, n_rows, count, at = _phase_run(a, b, rows, cols, top, left, sh, sw, hq,
                                                   wq)
            for m in range(n_rows):
                r = r0 + m * sh
                dst = phases[at + m * wq:at + m * wq + count]
                # (two loops, not one over either view: numba would type the view as of
                # any layout, and the stride-1 copy would not vectorise)
                if sw == 1:
                    row = plane[r * cols:(r + 1) * cols]
                    for k in range(count):
                        dst[k] = row[k]
                else:
                    every = plane[r * cols + s0:(r + 1) * cols:sw]
                    for k in range(count):
                        dst[k] = every[k]


@njit(cache=True, nogil=True, fastmath=False)
def _interior_from_phases(plane, phases, rows, cols, top, left, sh, sw, hq, wq):
    """The padded plane's interior out of its phase planes, into plane (rows*cols)."""
    for a in range(sh):
        for b in range(sw):
            r0, s0, n_rows, count, at = _phase_run(a, b, rows, cols, top, left, sh, sw, hq,
                                                   wq)
            for m in range(n_rows):
                r = r0 + m * sh
                src = phases[at + m * wq:at + m * wq + count]
                if sw == 1:
                    row = plane[r * cols:(r + 1) * cols]
                    for k in range(count):
                        row[k] = src[k]
                else:
                    every = plane[r * cols + s0:(r + 1) * cols:sw]
                    for k in range(count):
                        every[k] = src[k]


@njit(cache=True, nogil=True, fastmath=False)
def _grid_from_plane(grid, plane, hout, wout, wq, scale):
    """grid (hout*Wq) rows from plane (hout*wout), each element times ``scale``'s at its
    position when ``scale`` (float64, hout*wout) is not empty (one rounding: the product
    in float64); the junk columns are left as they are."""
    for p in range(hout):
        dst, src = grid[p * wq:p * wq + wout], plane[p * wout:(p + 1) * wout]
        # (the two copies written out here and below: through a shared helper, inlined
        # or not, numba vectorised neither, and convs and pools took 2.5-5x as long)
        if scale.size:
            factors = scale[p * wout:(p + 1) * wout]
            for q in range(wout):
                dst[q] = src[q] * factors[q]
        else:
            for q in range(wout):
                dst[q] = src[q]


@njit(cache=True, nogil=True, fastmath=False)
def _plane_from_grid(plane, grid, hout, wout, wq, scale):
    """plane (hout*wout) out of grid (hout*Wq), its junk columns dropped, times ``scale``
    as ``_grid_from_plane``."""
    for p in range(hout):
        dst, src = plane[p * wout:(p + 1) * wout], grid[p * wq:p * wq + wout]
        if scale.size:
            factors = scale[p * wout:(p + 1) * wout]
            for q in range(wout):
                dst[q] = src[q] * factors[q]
        else:
            for q in range(wout):
                dst[q] = src[q]


# --- the three ops, a range of planes (or channels) each -------------------------------------
@njit(cache=True, nogil=True, fastmath=False)
def _forward_planes(x, w, y, bias, residual, scale, reads, channels, height, width, hout,
                    wout, top, left, sh, sw, hq, wq, lo, hi):
    zero = y.dtype.type(0)
    span = hout * wq
    phases = np.zeros(sh * sw * (hq + 1) * wq, y.dtype)
    grid = np.empty(span, y.dtype)
    for plane in range(lo, hi):
        c = plane % channels
        _phases_into(phases, x[plane], height, width, top, left, sh, sw, hq, wq)
        for k in range(span):
            grid[k] = zero
        for t in range(reads.size):
            wt, src = w[c, t], phases[reads[t]:reads[t] + span]
            for k in range(span):
                grid[k] += wt * src[k]
        yp = y[plane]
        _plane_from_grid(yp, grid, hout, wout, wq, scale)
        if bias.size:
            b = bias[c]
            for k in range(yp.size):
                yp[k] += b
        if residual.size:
            terms = residual[plane * yp.size:(plane + 1) * yp.size]
            for k in range(yp.size):
                yp[k] += terms[k]


@njit(cache=True, nogil=True, fastmath=False)
def _input_grad_planes(gy, w, gx, scale, reads, channels, height, width, hout, wout, top,
                       left, sh, sw, hq, wq, lo, hi):
    zero = gx.dtype.type(0)
    span = hout * wq
    phases = np.empty(sh * sw * (hq + 1) * wq, gx.dtype)
    grid = np.zeros(span, gx.dtype)         # (its junk columns stay zero)
    for plane in range(lo, hi):
        c = plane % channels
        for k in range(phases.size):
            phases[k] = zero
        _grid_from_plane(grid, gy[plane], hout, wout, wq, scale)
        for t in range(reads.size):
            wt, dst = w[c, t], phases[reads[t]:reads[t] + span]
            for k in range(span):
                dst[k] += wt * grid[k]
        _interior_from_phases(gx[plane], phases, height, width, top, left, sh, sw, hq, wq)


@njit(cache=True, nogil=True, fastmath=False)
def _weight_grad_channels(x, gy, gw, reads, images, channels, height, width, hout, wout,
                          top, left, sh, sw, hq, wq, lo, hi):
    zero = gw.dtype.type(0)
    span = hout * wq
    phases = np.zeros(sh * sw * (hq + 1) * wq, gw.dtype)
    grid = np.zeros(span, gw.dtype)         # (its junk columns stay zero)
    sums = np.empty((reads.size, span), gw.dtype)
    for c in range(lo, hi):
        for t in range(reads.size):
            for k in range(span):
                sums[t, k] = zero
        for n in range(images):
            _phases_into(phases, x[n * channels + c], height, width, top, left, sh, sw, hq,
                         wq)
            _grid_from_plane(grid, gy[n * channels + c], hout, wout, wq, _NO_SCALE)
            for t in range(reads.size):
                src, acc = phases[reads[t]:reads[t] + span], sums[t]
                for k in range(span):
                    acc[k] += grid[k] * src[k]
        for t in range(reads.size):
            total = zero
            for k in range(span):
                total += sums[t, k]
            gw[c, t] = total


# --- from Python -------------------------------------------------------------------------------
def _geometry(geom):
    """(height, width, hout, wout, top, left, sh, sw, Hq, Wq): Hq, Wq the phase planes'
    size, ceil(padded size / stride) each way."""
    (height, width), (hout, wout) = geom.in_size, geom.out_size
    (sh, sw) = geom.stride
    top, bottom, left, right = geom.padding
    hq, wq = -(-(height + top + bottom) // sh), -(-(width + left + right) // sw)
    return height, width, hout, wout, top, left, sh, sw, hq, wq


def _reads(tap_i, tap_j, geom):
    """Where each kept tap reads for output (0, 0) in the flat buffer of phase planes: tap
    (i, j) reads padded[p*sh + i*dh, q*sw + j*dw] = phase[(i*dh) % sh, (j*dw) % sw] at
    [p + (i*dh) // sh, q + (j*dw) // sw]."""
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    *_, hq, wq = _geometry(geom)
    rows, cols = tap_i * dh, tap_j * dw
    phase = (rows % sh) * sw + cols % sw     # (the buffer's layout: ``_phase_run``)
    return np.ascontiguousarray(phase * (hq + 1) * wq + (rows // sh) * wq + cols // sw)


def _by_plane(a):
    """(N, C, H, W) as (N*C, H*W) (a view of a contiguous array; sizes spelled out, as
    an empty batch has no -1 to infer)."""
    n, c, h, w = a.shape
    return np.ascontiguousarray(a).reshape(n * c, h * w)


def _taps(taps):
    taps = np.asarray(taps, dtype=np.int64).reshape(-1, 2)
    return np.ascontiguousarray(taps[:, 0]), np.ascontiguousarray(taps[:, 1])


def _tap_weights(weight, tap_i, tap_j):
    """weight (C, 1, kh, kw) at the kept taps, (C, T)."""
    return np.ascontiguousarray(weight[:, 0, tap_i, tap_j])


def _scale(scale, out_size):
    """``scale`` as the kernels take it: float64, flat, empty for none."""
    if scale is None:
        return _NO_SCALE
    scale = np.ascontiguousarray(scale, dtype=np.float64).reshape(-1)
    if scale.size != out_size[0] * out_size[1]:
        raise ValueError(f"conv_depthwise: scale of {scale.size} elements for an output of "
                         f"{tuple(out_size)} positions")
    return scale


def forward(x, weight, geom, taps, bias=None, residual=None, scale=None):
    """The conv; ``scale`` (hout, wout), if given, multiplies each output position before
    the bias and residual are added (average pooling's 1 / divisor)."""
    n, channels = x.shape[:2]
    hout, wout = geom.out_size
    tap_i, tap_j = _taps(taps)
    y = _empty((n, channels, hout, wout), dtype=x.dtype)
    share_range(_forward_planes, n * channels, x.size + y.size,
                _by_plane(x), _tap_weights(weight, tap_i, tap_j), _by_plane(y),
                _terms(bias, x.dtype), _terms(residual, x.dtype), _scale(scale, geom.out_size),
                _reads(tap_i, tap_j, geom), channels, *_geometry(geom))
    return y


def input_grad(grad_y, weight, geom, taps, scale=None):
    """The conv's adjoint; ``scale`` as ``forward``'s (grad_y scaled first)."""
    n, channels = grad_y.shape[:2]
    height, width = geom.in_size
    tap_i, tap_j = _taps(taps)
    gx = _empty((n, channels, height, width), dtype=grad_y.dtype)
    share_range(_input_grad_planes, n * channels, grad_y.size + gx.size,
                _by_plane(grad_y), _tap_weights(weight, tap_i, tap_j), _by_plane(gx),
                _scale(scale, geom.out_size), _reads(tap_i, tap_j, geom), channels,
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
    share_range(_weight_grad_channels, channels, x.size + grad_y.size,
                _by_plane(x), _by_plane(grad_y), at_taps,
                _reads(tap_i, tap_j, geom), n, channels, *_geometry(geom))
    grad_w[:, 0, tap_i, tap_j] = at_taps
    return grad_w
