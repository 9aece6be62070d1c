"""Fast CPU 2-D convolution: the dispatch among three paths, and the im2col path.

Same interface and results as ``tinygen/backend/reference/conv.py`` (read that
first for what is computed); this package is about how to compute it fast.
``_path`` picks, per conv:

* ``conv_direct``: stride-1 convs along one axis (1-D convs, pointwise convs) are
  GEMMs on shifted views of the input itself, no copies;
* ``conv_rows``: stride-1 layers with many channels, one GEMM per kernel row on
  shifted blocks of an input unfolded along the width only;
* ``conv_phase``: dense 4x4 stride-2 layers, by Winograd over the input's phase planes;
* here, im2col: narrow layers (C=1 inputs, PixelCNN's first masked conv), where one
  GEMM over all the kept taps beats kh thin ones, and other strided layers.

The im2col path.  ``im2col`` gathers, for every input channel c and kept tap t, the
values that tap meets at every output position of every image, into the row
``c*T + t`` of a column matrix of shape (C*T, Hout*Wout*k) for a chunk of k
images (``_chunks``: as many as keep the matrix in cache).  The chunk's images are
folded into the columns (innermost, column (p*Wout + q)*k + n, or outermost,
n*Hout*Wout + p*Wout + q: see "the gather" and ``_images_inner`` below for which and
why), so that each group's work per chunk is ONE GEMM:

    forward       y_g    (O/g, P*k)   = W_g (O/g, C/g*T) @ cols_g (C/g*T, P*k)
    weight grad   gW_g^T (C/g*T, O/g) += cols_g @ gy_g^T
    input grad    dcols_g             = W_g^T @ gy_g,  then col2im scatter-adds
                                        dcols back into the input's shape

(P = Hout*Wout; rows of one group are contiguous because row = c*T + t.)  The
weight matrix W_g is the weight restricted to the kept taps,
weight[:, :, tap_i, tap_j] reshaped to (O, C/g*T): masked taps are never
gathered, multiplied or scattered.

Both kernels are serial and ``nogil``: the threads share out the batch's chunks
(``chunks.map_chunks``), each gathering and scattering its own images; the weight
gradient's per-chunk products are added in chunk order (``chunks.sum_chunks``: the
same sum every run, whichever thread ran which chunk).  With the images outermost and
numpy's OpenBLAS GEMM found, each op is instead one compiled kernel on pieces of
images (see "the compiled path").  The kernels are
cached on disk; numba compiles one specialisation per dtype (float32, float64) on
first use.  Bounds are resolved once per staged row (``_valid_range``), so the inner
loops are plain copies/adds.  The GEMMs' (O, P*k) operands and results are turned
to and from the arrays' (k, O, P) by ``_images_last_into``/``_images_first``.
"""
import numpy as np
from numba import njit

from . import _cblas, conv_depthwise, conv_direct, conv_phase, conv_rows, conv_winograd
from ._cblas import NO_TRANS, TRANS, gemm as _gemm
from .chunks import chunk_ranges as _chunk_ranges, image_pieces as _image_pieces, \
    map_chunks as _map_chunks, share_images as _share_images, sum_chunks as _sum_chunks
from .conv_bounds import add_terms as _add_terms, add_terms_images as _add_terms_images, \
    terms_for_kernel as _terms, valid_range as _valid_range

# Every buffer and output the code below fills comes from ``_empty`` (the tests swap in
# a NaN-filled one, so that an element a kernel forgets to write cannot pass for a zero
# that fresh memory happened to hold).
_empty = np.empty


# --- the gather and its adjoint ----------------------------------------------------------
# A tap (i, j) reads the padded input at rows p*sh + i*dh and columns q*sw + j*dw.  Split
# the padded plane by phase, S[r, s, a, b] = x_padded[a*sh + r, b*sw + s], and that is
# S[r_i, s_j, a_i + p, b_j + q] with (a_i, r_i) = divmod(i*dh, sh) (the same for j): a
# contiguous stretch of Wout values per output row, for every stride and dilation.  And
# with the chunk's k images innermost, S[r, s, a, b, n], and the columns of the column
# matrix ordered (p, q, n) to match, each output row of a tap is ONE contiguous copy of
# Wout*k values (with the images outermost, S[n, r, s, a, b] and columns (n, p, q), it
# is k copies of Wout values).  So the gather stages one channel's phase planes (a
# copy of the channel, zero in the padding, small enough for L1/L2), then copies runs
# per tap out of them, with no bounds tests; the scatter is its adjoint (adds into the
# staged planes, then one pass back into the input's shape).
# Why: the plain gather (a loop per image, output row and tap, reading the input with
# the stride, bounds per row) spent its time in the loop overhead of 7-long rows: GAN D
# (4x4 stride 2, 32 channels of 14x14 -> 7x7) gathered 2 MB of columns in ~1 ms, as
# long as the GEMM that reads them; the runs here are Wout*k = 140 long.
@njit(cache=True, fastmath=False)
def _phase_shape(hout, wout, sh, sw, dh, dw, max_i, max_j):
    """(rows, columns) of each phase plane: every a_i + p, b_j + q the taps read."""
    return hout + (max_i * dh) // sh, wout + (max_j * dw) // sw


@njit(cache=True, fastmath=False)
def _tap_run(i, j, sh, sw, dh, dw, ha, wb, es):
    """Where tap (i, j)'s output row p = 0 starts in an image's staged planes (row p
    is p*wb*es further on; ``es``, the staged element stride: k or 1)."""
    a0 = i * dh // sh
    r = i * dh - a0 * sh
    b0 = j * dw // sw
    s = j * dw - b0 * sw
    return (((r * sw + s) * ha + a0) * wb + b0) * es


@njit(cache=True, fastmath=False)
def _strides(inner, k, sh, sw, ha, wb):
    """(image stride, element stride) of the staged planes: images innermost, or each
    image's planes one after the other."""
    return (1, k) if inner else (sh * sw * ha * wb, 1)


# The loops below index views that start where a run starts (x[n, c, h][first::sw],
# buf[at:at + run]), so every index is a loop counter from 0: numba then drops its
# negative-index wraparound test and LLVM vectorises the copies (indexing one flat
# array at base + e kept the test in the loop, ~8x slower).
@njit(cache=True, fastmath=False)
def _stage(x, c, buf, ha, wb, sh, sw, pt, pl, ns, es):
    """buf[n*ns + (((r*sw + s)*ha + a)*wb + b)*es] = x_padded[n, c, a*sh + r, b*sw + s]."""
    k, height, width = x.shape[0], x.shape[2], x.shape[3]
    buf[:] = 0
    for r in range(sh):
        a_lo, a_hi = _valid_range(r - pt, sh, height, ha)
        for s in range(sw):
            b_lo, b_hi = _valid_range(s - pl, sw, width, wb)
            if b_hi <= b_lo:
                continue
            phase = (r * sw + s) * ha
            for a in range(a_lo, a_hi):
                line = ((phase + a) * wb + b_lo) * es
                h = a * sh + r - pt
                for n in range(k):
                    src = x[n, c, h][b_lo * sw + s - pl:][::sw]
                    dst = buf[n * ns + line:][::es]
                    for b in range(b_hi - b_lo):
                        dst[b] = src[b]


@njit(cache=True, fastmath=False)
def _unstage_add(buf, grad_x, c, ha, wb, sh, sw, pt, pl, ns, es):
    """The adjoint of ``_stage``: grad_x[n, c] += the staged planes' in-bounds values."""
    k, height, width = grad_x.shape[0], grad_x.shape[2], grad_x.shape[3]
    for r in range(sh):
        a_lo, a_hi = _valid_range(r - pt, sh, height, ha)
        for s in range(sw):
            b_lo, b_hi = _valid_range(s - pl, sw, width, wb)
            if b_hi <= b_lo:
                continue
            phase = (r * sw + s) * ha
            for a in range(a_lo, a_hi):
                line = ((phase + a) * wb + b_lo) * es
                h = a * sh + r - pt
                for n in range(k):
                    dst = grad_x[n, c, h][b_lo * sw + s - pl:][::sw]
                    src = buf[n * ns + line:][::es]
                    for b in range(b_hi - b_lo):
                        dst[b] += src[b]


@njit(cache=True, nogil=True, fastmath=False)
def _im2col_rows(x, cols, tap_i, tap_j, hout, wout, sh, sw, pt, pl, dh, dw, inner):
    """cols[c*T + t, column of (n, p, q)] = x_padded[n, c, p*sh + i_t*dh, q*sw + j_t*dw],
    the column (p*Wout + q)*k + n (``inner``) or n*Hout*Wout + p*Wout + q."""
    k, channels = x.shape[0], x.shape[1]
    n_taps = tap_i.shape[0]
    ha, wb = _phase_shape(hout, wout, sh, sw, dh, dw, tap_i.max(), tap_j.max())
    ns, es = _strides(inner, k, sh, sw, ha, wb)
    buf = np.empty(sh * sw * ha * wb * k, dtype=x.dtype)
    plane = hout * wout
    for c in range(channels):
        _stage(x, c, buf, ha, wb, sh, sw, pt, pl, ns, es)
        for t in range(n_taps):
            first = _tap_run(tap_i[t], tap_j[t], sh, sw, dh, dw, ha, wb, es)
            out = cols[c * n_taps + t]
            if inner:  # one run of Wout*k per output row
                run = wout * k
                for p in range(hout):
                    src = buf[first + p * wb * k:first + p * wb * k + run]
                    dst = out[p * run:(p + 1) * run]
                    for e in range(run):
                        dst[e] = src[e]
                continue
            for n in range(k):  # one run of Wout per image and output row
                for p in range(hout):
                    at = n * ns + first + p * wb
                    src = buf[at:at + wout]
                    dst = out[n * plane + p * wout:n * plane + (p + 1) * wout]
                    for e in range(wout):
                        dst[e] = src[e]


@njit(cache=True, nogil=True, fastmath=False)
def _col2im_planes(dcols, grad_x, tap_i, tap_j, hout, wout, sh, sw, pt, pl, dh, dw, inner):
    """The adjoint of ``_im2col_rows``: every column value added back where it came from."""
    k, channels = grad_x.shape[0], grad_x.shape[1]
    n_taps = tap_i.shape[0]
    ha, wb = _phase_shape(hout, wout, sh, sw, dh, dw, tap_i.max(), tap_j.max())
    ns, es = _strides(inner, k, sh, sw, ha, wb)
    buf = np.empty(sh * sw * ha * wb * k, dtype=grad_x.dtype)
    plane = hout * wout
    for c in range(channels):
        buf[:] = 0
        for t in range(n_taps):
            first = _tap_run(tap_i[t], tap_j[t], sh, sw, dh, dw, ha, wb, es)
            col = dcols[c * n_taps + t]
            if inner:
                run = wout * k
                for p in range(hout):
                    dst = buf[first + p * wb * k:first + p * wb * k + run]
                    src = col[p * run:(p + 1) * run]
                    for e in range(run):
                        dst[e] += src[e]
                continue
            for n in range(k):
                for p in range(hout):
                    at = n * ns + first + p * wb
                    dst = buf[at:at + wout]
                    src = col[n * plane + p * wout:n * plane + (p + 1) * wout]
                    for e in range(wout):
                        dst[e] += src[e]
        _unstage_add(buf, grad_x, c, ha, wb, sh, sw, pt, pl, ns, es)


@njit(cache=True, nogil=True, fastmath=False)
def _images_first(a, out):
    """a (O, P*k), columns (p, n) -> out (k, O, P): a chunk's GEMM result per image.
    (numba's loops, with every index a counter from 0, ran these small transposes 2-3x
    faster than numpy's strided copies.)"""
    k, channels, plane = out.shape
    for o in range(channels):
        row = a[o]
        for n in range(k):
            src = row[n:][::k]
            dst = out[n, o]
            for p in range(plane):
                dst[p] = src[p]


@njit(cache=True, nogil=True, fastmath=False)
def _images_last_into(a, out):
    """a (k, O, P) -> out (O, P*k), columns (p, n): a chunk in the columns' order."""
    k, channels, plane = a.shape
    for o in range(channels):
        row = out[o]
        for n in range(k):
            src = a[n, o]
            dst = row[n:][::k]
            for p in range(plane):
                dst[p] = src[p]


# The buffers are allocated by numpy, not inside the jitted code: numpy asks the
# kernel for transparent huge pages on large allocations, numba's allocator does not,
# and first-touch page faults then cost more than the gather itself.
def _im2col(x, tap_i, tap_j, hout, wout, sh, sw, pt, pl, dh, dw, out=None, inner=True):
    """The (C*T, Hout*Wout*k) column matrix of the k images x over the taps, columns
    ordered (p, q, n) (``inner``) or (n, p, q) (into ``out`` when given, a reused
    buffer of at least that many elements)."""
    shape = (x.shape[1] * len(tap_i), hout * wout * x.shape[0])
    if out is None:
        cols = _empty(shape, dtype=x.dtype)
    else:
        cols = out[:shape[0] * shape[1]].reshape(shape)
    _im2col_rows(x, cols, tap_i, tap_j, hout, wout, sh, sw, pt, pl, dh, dw, inner)
    return cols


def _col2im_into(grad_x, dcols, tap_i, tap_j, hout, wout, sh, sw, pt, pl, dh, dw, inner=True):
    """Scatter-add the column matrix (columns as ``_im2col``'s) into ``grad_x`` (k, C, H, W)."""
    _col2im_planes(dcols, grad_x, tap_i, tap_j, hout, wout, sh, sw, pt, pl, dh, dw, inner)


# --- batch chunks -------------------------------------------------------------------
# The whole batch's column matrix is large (a 3x3 conv, 64 channels, 32 images of
# 28x28: 58 MB) and on a small machine writing it and reading it back through memory
# costs more than the GEMM itself.  So the batch is cut into chunks of whole images
# whose columns fit in about CHUNK_BYTES (in cache), and each chunk is gathered, used
# by its GEMM and overwritten by the next: same arithmetic, a fraction of the traffic
# (conv2d 3x3 fwd+bwd above, 1 thread: 350 -> 237 ms on a loaded 2-core machine).
# The chunks are shared out among the threads (``chunks.map_chunks``), each gathering
# into its own buffer.  1 MB, a core's L2 here: with the faster gather, 2 MB chunks
# were slower on every layer measured (1 thread, fwd+dx+dw, min of 12, load ~8: the
# VAE's first layer, 128 images 1->32 28x28 4x4 s2, 4.9 vs 8.4 ms; the masked 7x7
# C=1 row 10.5 vs 12.8 ms; GAN D 18.3 vs 18.7 ms) and 512 KB no faster.
CHUNK_BYTES = 1 << 20


def _chunks(n_img, cols_per_image, itemsize):
    """[(start, stop)] image ranges whose columns take about CHUNK_BYTES each (and at
    least one chunk per thread)."""
    return _chunk_ranges(n_img, cols_per_image * itemsize, CHUNK_BYTES)


class _Buffers:
    """One column buffer of ``size`` elements per thread slot."""

    def __init__(self, size, dtype):
        self.size, self.dtype, self.slots = size, dtype, {}

    def get(self, slot):
        if slot not in self.slots:
            self.slots[slot] = _empty(self.size, dtype=self.dtype)
        return self.slots[slot]


# Which column order.  Images innermost makes the gather's runs Wout*k long, but the
# GEMMs' (O, P*k) results and output gradients must then be transposed to and from the
# arrays' (k, O, P) (strided copies of the whole output, three per step); images
# outermost needs only block copies of P values there, and gathers runs of Wout.  So
# images go innermost when the column matrix is at least as tall as the output
# (C/g*T >= O/g: GAN D's second layer, 512 rows for 64 outputs of 7x7), and outermost
# for narrow layers with large outputs.  1 thread, fwd+dx+dw, inner vs outer: GAN D's
# first layer (1->32, 28x28 -> 14x14, 64 images) 2.0 vs 1.4 ms; the masked 7x7 row
# (1->64, 28x28, 24 taps) 10.2 vs 9.6 ms.
def _images_inner(rows, out_channels):
    return rows >= out_channels


def _columns(a, groups, inner):
    """A chunk of output gradients (k, O, P) -> (g, O/g, P*k) in the columns' order."""
    k, o, p = a.shape
    if not inner:
        return np.ascontiguousarray(a.transpose(1, 0, 2)).reshape(groups, o // groups, k * p)
    out = _empty((o, p * k), dtype=a.dtype)
    _images_last_into(np.ascontiguousarray(a), out)
    return out.reshape(groups, o // groups, p * k)


def _per_image(y_c, out, inner):
    """A chunk's GEMM result (g, O/g, P*k) in the columns' order -> out (k, O, P)."""
    k, o, p = out.shape
    if inner:
        _images_first(y_c.reshape(o, p * k), out)
    else:
        out[...] = y_c.reshape(o, k, p).transpose(1, 0, 2)


# --- the compiled path: each op one numba kernel on pieces of images -------------------------
# With numpy's OpenBLAS GEMM found (``_cblas``) and the images outermost in the columns
# (the narrow layers this path serves in the models: a GAN's or VAE's first 1 -> 32
# layer and its transpose, the PixelCNNs' first masked convs), each op is one numba
# kernel (nogil) that runs a piece of the batch a step of images at a time -- the step
# gathered into this piece's part of a flat buffer, then per image and group one GEMM
# by address that reads or writes the image's own (O, P) block of y or grad_y (so no
# transposes to or from the columns' order), the input gradient's columns scattered
# back -- and the pieces, one per thread, are shared out by ``chunks.share_images``: no
# Python and no GIL hand-over per chunk, as conv_winograd, conv_phase and conv_rows do.
# (As Python chunks under map_chunks, each chunk made several GIL-holding calls: at 2
# threads the DCGAN step's 1 -> 32 layers took 0.77-0.83 of their 1-thread time.)  A
# step is CHUNK_BYTES of columns, as the chunks were.  The weight gradient's partial
# sums are each piece's own (g, C/g*T, O/g) block, its images' products added into it
# (beta 1) in image order, the blocks added in piece order afterwards: the pieces depend
# only on the batch and the thread count, so the bits are the same every run at a
# given thread count.

# How many pieces (one per thread, one below chunks.MIN_SHARED_MULTIPLY_ADDS), as the
# other compiled paths' (module names, so that tests can replace them).
_pieces = _image_pieces
_share = _share_images


def _compiled(dtype, weight_dtype, rows, out_channels, n):
    """The GEMM's address when the compiled path serves (the images outermost), else None."""
    if n == 0 or weight_dtype != dtype or _images_inner(rows, out_channels):
        return None
    return _cblas.address_for(dtype)


def _plan_steps(n, rows, plane, out_channels, groups, itemsize):
    """(pieces, images per step): steps of about CHUNK_BYTES of columns, no step longer
    than a piece (the buffers hold one step per piece)."""
    pieces = _pieces(n, n * plane * out_channels * (rows // groups))
    return pieces, max(1, min(CHUNK_BYTES // max(1, rows * plane * itemsize), -(-n // pieces)))


@njit(cache=True, nogil=True, fastmath=False)
def _forward_pieces(function, x, w, y, bias, residual, tap_i, tap_j, cols_buf, hout, wout, sh,
                    sw, pt, pl, dh, dw, step, per, lo, hi):
    """y for images [lo, hi), ``step`` images at a time: their columns (C*T, k*P),
    images outermost, in this piece's part of cols_buf, then per image and group
    y[n, group] (O/g, P) = W_g (O/g, C/g*T) @ the image's columns, + bias, + residual."""
    groups, og, rg = w.shape
    out_channels, rows, plane = groups * og, groups * rg, hout * wout
    at = (lo // per) * rows * step * plane
    for start in range(lo, hi, step):
        stop = min(hi, start + step)
        length = (stop - start) * plane
        cols = cols_buf[at:at + rows * length].reshape((rows, length))
        _im2col_rows(x[start:stop], cols, tap_i, tap_j, hout, wout, sh, sw, pt, pl, dh, dw,
                     False)
        for n in range(start, stop):
            for g in range(groups):
                _gemm(function, NO_TRANS, NO_TRANS, og, plane, rg, w, g * og * rg, rg, cols_buf,
                      at + g * rg * length + (n - start) * plane, length, 0.0, y,
                      (n * out_channels + g * og) * plane, plane)
        _add_terms_images(y, bias, residual, start, stop, out_channels, plane)


@njit(cache=True, nogil=True, fastmath=False)
def _input_grad_pieces(function, gy, w, gx, tap_i, tap_j, cols_buf, hout, wout, sh, sw, pt,
                       pl, dh, dw, step, per, lo, hi):
    """grad_x for images [lo, hi), ``step`` images at a time: per image and group its
    columns' gradient W_g^T (C/g*T, O/g) @ gy[n, group] (O/g, P) into this piece's part
    of cols_buf, then scattered back (``_col2im_planes``) into the zeroed images."""
    groups, og, rg = w.shape
    out_channels, rows, plane = groups * og, groups * rg, hout * wout
    at = (lo // per) * rows * step * plane
    for start in range(lo, hi, step):
        stop = min(hi, start + step)
        length = (stop - start) * plane
        for n in range(start, stop):
            for g in range(groups):
                _gemm(function, TRANS, NO_TRANS, rg, plane, og, w, g * og * rg, rg, gy,
                      (n * out_channels + g * og) * plane, plane, 0.0, cols_buf,
                      at + g * rg * length + (n - start) * plane, length)
        images = gx[start:stop]
        images[...] = 0
        _col2im_planes(cols_buf[at:at + rows * length].reshape((rows, length)), images, tap_i,
                       tap_j, hout, wout, sh, sw, pt, pl, dh, dw, False)


@njit(cache=True, nogil=True, fastmath=False)
def _weight_grad_pieces(function, x, gy, parts, tap_i, tap_j, cols_buf, out_channels, groups,
                        hout, wout, sh, sw, pt, pl, dh, dw, step, per, lo, hi):
    """This piece's part of gW^T (g, C/g*T, O/g): over images [lo, hi), ``step`` at a
    time, their columns gathered, then per image and group the columns (C/g*T, P) @
    gy[n, group]^T (P, O/g), the first image's written, the later ones' added (beta
    1), in image order."""
    rows, plane = x.shape[1] * tap_i.shape[0], hout * wout
    og, rg = out_channels // groups, rows // groups
    piece = lo // per
    at = piece * rows * step * plane
    p_at = piece * rows * og
    for start in range(lo, hi, step):
        stop = min(hi, start + step)
        length = (stop - start) * plane
        cols = cols_buf[at:at + rows * length].reshape((rows, length))
        _im2col_rows(x[start:stop], cols, tap_i, tap_j, hout, wout, sh, sw, pt, pl, dh, dw,
                     False)
        for n in range(start, stop):
            beta = 0.0 if n == lo else 1.0
            for g in range(groups):
                _gemm(function, NO_TRANS, TRANS, rg, og, plane, cols_buf,
                      at + g * rg * length + (n - start) * plane, length, gy,
                      (n * out_channels + g * og) * plane, plane, beta, parts,
                      p_at + g * rg * og, og)


# --- helpers ------------------------------------------------------------------------
def _tap_arrays(taps):
    """(tap_i, tap_j) as fresh writable int64 arrays (one numba specialisation)."""
    taps = np.array(taps, dtype=np.int64).reshape(-1, 2)
    return np.ascontiguousarray(taps[:, 0]), np.ascontiguousarray(taps[:, 1])


def _geometry_args(geom):
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    top, _, left, _ = geom.padding
    hout, wout = geom.out_size
    return hout, wout, sh, sw, top, left, dh, dw


# --- which path serves a conv --------------------------------------------------------------
# Stride-1 convs along one axis (pointwise, 1-D) are GEMMs on shifted views of the input
# itself (``conv_direct``); other stride-1 layers with at least ROWS_MIN_K input (and
# output) channels times kernel columns run on ``conv_rows`` (one GEMM per kernel row on
# shifted blocks of a width-unfolded input), as do narrowing ones (below); other narrow
# ones (an image model's first layer, C=1) and strided ones on the im2col GEMM here.
# Measured, 1 thread, fwd+bwd: 3x3 C=8 31 (im2col) vs 40 ms (rows), C=16 17 vs 15, C=64
# 84 vs 63; 4x4 stride 2 (GAN D and G, 32->64, 14x14) 11.4 vs 12.3 and 11.9 vs 12.4: a
# strided conv's rows are split by phase and its short output rows make the unfold as
# costly as im2col, for thinner GEMMs.
ROWS_MIN_K = 32
ROWS_STRIDED = False  # (correct either way: the tests run strided convs on conv_rows too)
# Narrowing layers (at most 1/ROWS_NARROWING as many outputs as inputs per group: an
# image head 64 -> 1, a bottleneck) go to conv_rows too, however few their outputs, and
# so do layers of one output per group whatever their inputs (C -> 1 for any C; a
# depthwise conv, one input per group too, goes to conv_depthwise first): im2col builds
# and scatters C x kh x kw columns whatever O is, conv_rows kh times fewer, and im2col's
# input gradient for O = 1 is an outer product as large as the columns.
# Measured quiet, 32 images 28x28 3x3, fwd+dx+dw, im2col / rows ms, 1 thread (2
# threads): 64->1 62.8 / 16.1 (22.5 / 6.0), 64->8 31.8 / 20.6 (18.9 / 12.3), 16->4 4.0 /
# 3.8 (4.4 / 2.4), 8->1 7.6 / 2.4, 2->1 1.5 / 0.7; 5x5 64->1 133.4 / 25.9 (torch 37.9),
# 7x7 32->1 123.2 / 20.0 (torch 26.5); depthwise 3x3 (64 groups of 1 -> 1) 62.1 / 19.5,
# its input gradient alone 42.4 / 6.6 (torch 20.0).  Not where im2col still wins: 8->4
# 3x3 (K = C x kw = 24) 2.1 / 3.0 at 1 thread, and planes of 7x7 (64->1: 2.5 / 2.5,
# 16->1: 0.69 / 0.84).  A widening layer (C < O) stays on im2col: rows accumulates its
# kh products into the O-wide output (1->64 3x3: 1.8 / 11.1, 8->64: 10.8 / 17.6).
ROWS_NARROWING = 2
ROWS_MIN_POSITIONS = 144    # output positions per image (12 x 12)
# Dense 3x3 stride-1 layers with enough channels and outputs of 12x12 or more: Winograd
# F(2x2, 3x3) (``conv_winograd``, which says where it pays), 2.25x fewer multiplies.
# 1 thread, 32 images 64->64 28x28, min of 12 interleaved on a loaded machine: fwd 13 vs
# 20 ms (rows), input grad 13 vs 20, weight grad 17 vs 20; fwd+bwd 48.5 vs 64.2 ms
# (before the weight gradient's NN GEMMs).
WINOGRAD = True
# Dense 4x4 stride-2 layers (the GANs' and conv VAEs' middle layers) with 16 channels or
# more each way: Winograd over the input's phase planes (``conv_phase``, which says why
# and where it pays), fewer multiplies in small GEMMs.  1 thread, GAN D's layer (64
# images 32->64, 14x14 -> 7x7), min of 25 interleaved, quiet: fwd+dx+dw 6.0 vs 7.4 ms
# on im2col (PyTorch ~5.9); the cpu suite's row (quiet, side by side) 7.05 vs 7.91 ms.
PHASE = True
# Depthwise layers (one input and one output channel per group, more than one group)
# other than 1x1 ones: per-plane stencils (``conv_depthwise``).  32 images of 64
# channels 28x28, 3x3, fwd+dx+dw, quiet: 11.0 ms at 1 thread (5.8 at 2) against 22.0
# (10.0) on conv_rows and 62 on im2col (its input gradient an outer product as large as
# the columns); 5x5 24.0 (13.9) against 42.4 (26.3); stride 2 10.8 (7.8) against 17.3
# (9.2).
DEPTHWISE = True
DIRECT_MIN_CHANNELS = 8


def _path(geom, taps, in_per_group, out_per_group):
    """The module that serves this conv: conv_direct, conv_depthwise, conv_phase, conv_winograd,
    conv_rows, or None (im2col)."""
    narrow = min(in_per_group, out_per_group)
    if conv_direct.serves(geom, taps):
        if tuple(geom.kernel) == (1, 1) or narrow >= DIRECT_MIN_CHANNELS:
            return conv_direct
    if DEPTHWISE and conv_depthwise.serves(geom, taps, in_per_group, out_per_group):
        return conv_depthwise
    if PHASE and conv_phase.serves(geom, taps, in_per_group, out_per_group):
        return conv_phase
    if WINOGRAD and conv_winograd.serves(geom, taps, in_per_group, out_per_group):
        return conv_winograd
    if tuple(geom.stride) != (1, 1) and not ROWS_STRIDED:
        return None
    kw = 1 if geom.in_size[0] == 1 and geom.kernel[0] == 1 else geom.kernel[1]
    narrowing = (geom.out_size[0] * geom.out_size[1] >= ROWS_MIN_POSITIONS
                 and (out_per_group == 1 or (out_per_group * ROWS_NARROWING <= in_per_group
                                             and in_per_group * kw >= ROWS_MIN_K)))
    if ((narrow * kw >= ROWS_MIN_K or narrowing)
            and conv_rows.plan_of(geom, taps).contiguous):
        return conv_rows
    return None


def _weight_matrix(weight, tap_i, tap_j, groups):
    """weight (O, C/g, kh, kw) at the kept taps as (g, O/g, C/g*T), row-major (c', t)."""
    out_channels, in_per_group = weight.shape[:2]
    w_taps = weight[:, :, tap_i, tap_j]                  # (O, C/g, T), a copy
    return w_taps.reshape(groups, out_channels // groups, in_per_group * len(tap_i))


# --- the three ops ----------------------------------------------------------------------
def _rows(a, start, stop):
    """a[start:stop], or None."""
    return None if a is None else a[start:stop]


def conv2d_forward(x, weight, geom, taps, bias=None, residual=None):
    x = np.ascontiguousarray(x)
    g = geom.groups
    n, channels = x.shape[:2]
    out_channels = weight.shape[0]
    hout, wout = geom.out_size
    path = _path(geom, taps, channels // g, out_channels // g)
    if path is not None:
        return path.forward(x, weight, geom, taps, bias, residual)
    tap_i, tap_j = _tap_arrays(taps)
    args = _geometry_args(geom)
    w = _weight_matrix(weight, tap_i, tap_j, g)                     # (g, O/g, C/g*T)
    rows, plane = channels * len(tap_i), hout * wout
    inner = _images_inner(rows, out_channels)
    y = _empty((n, out_channels, plane), dtype=x.dtype)
    function = _compiled(x.dtype, weight.dtype, rows, out_channels, n)
    if function is not None:
        pieces, step = _plan_steps(n, rows, plane, out_channels, g, x.itemsize)
        _share(_forward_pieces, n, pieces, function, x, np.ascontiguousarray(w), y.reshape(-1),
               _terms(bias, x.dtype), _terms(residual, x.dtype), tap_i, tap_j,
               _empty(pieces * step * rows * plane, dtype=x.dtype), *args, step)
        return y.reshape(n, out_channels, hout, wout)
    if residual is not None:   # (N, O, Hout, Wout) as y's (N, O, P)
        residual = residual.reshape(n, out_channels, plane)
    chunks = _chunks(n, rows * plane, x.itemsize)
    buffers = _Buffers(rows * plane * (chunks[0][1] - chunks[0][0]), x.dtype)

    def chunk(slot, start, stop):
        k = stop - start
        cols = _im2col(x[start:stop], tap_i, tap_j, *args, buffers.get(slot), inner)
        y_c = np.matmul(w, cols.reshape(g, rows // g, plane * k))  # (g, O/g, P*k)
        _per_image(y_c, y[start:stop], inner)
        _add_terms(y[start:stop], bias, _rows(residual, start, stop))

    _map_chunks(chunk, chunks)
    return y.reshape(n, out_channels, hout, wout)


def conv2d_input_grad(grad_y, weight, geom, taps):
    grad_y = np.ascontiguousarray(grad_y)
    g = geom.groups
    n, out_channels = grad_y.shape[:2]
    in_per_group = weight.shape[1]
    channels = in_per_group * g
    height, width = geom.in_size
    path = _path(geom, taps, in_per_group, out_channels // g)
    if path is not None:
        return path.input_grad(grad_y, weight, geom, taps)
    tap_i, tap_j = _tap_arrays(taps)
    args = _geometry_args(geom)
    rows, plane = channels * len(tap_i), args[0] * args[1]
    function = _compiled(grad_y.dtype, weight.dtype, rows, out_channels, n)
    if function is not None:
        grad_x = _empty((n, channels, height, width), dtype=grad_y.dtype)
        pieces, step = _plan_steps(n, rows, plane, out_channels, g, grad_y.itemsize)
        _share(_input_grad_pieces, n, pieces, function, grad_y.reshape(-1),
               np.ascontiguousarray(_weight_matrix(weight, tap_i, tap_j, g)), grad_x, tap_i,
               tap_j, _empty(pieces * step * rows * plane, dtype=grad_y.dtype), *args, step)
        return grad_x
    w_t = _weight_matrix(weight, tap_i, tap_j, g).transpose(0, 2, 1)  # (g, C/g*T, O/g)
    inner = _images_inner(rows, out_channels)
    grad_y = grad_y.reshape(n, out_channels, plane)
    grad_x = np.zeros((n, channels, height, width), dtype=grad_y.dtype)
    chunks = _chunks(n, rows * plane, grad_y.itemsize)
    buffers = _Buffers(rows * plane * (chunks[0][1] - chunks[0][0]), grad_y.dtype)

    def chunk(slot, start, stop):
        k = stop - start
        dcols = buffers.get(slot)[:rows * plane * k].reshape(g, rows // g, plane * k)
        np.matmul(w_t, _columns(grad_y[start:stop], g, inner), out=dcols)  # (g, C/g*T, P*k)
        _col2im_into(grad_x[start:stop], dcols.reshape(rows, -1), tap_i, tap_j, *args, inner)

    _map_chunks(chunk, chunks)
    return grad_x


def conv2d_weight_grad(x, grad_y, geom, taps):
    x = np.ascontiguousarray(x)
    grad_y = np.ascontiguousarray(grad_y)
    g = geom.groups
    n, channels = x.shape[:2]
    out_channels = grad_y.shape[1]
    in_per_group = channels // g
    kh, kw = geom.kernel
    path = _path(geom, taps, in_per_group, out_channels // g)
    if path is not None:
        return path.weight_grad(x, grad_y, geom, taps)
    tap_i, tap_j = _tap_arrays(taps)
    args = _geometry_args(geom)
    rows, plane = channels * len(tap_i), args[0] * args[1]
    function = _compiled(x.dtype, grad_y.dtype, rows, out_channels, n)
    if function is not None:
        pieces, step = _plan_steps(n, rows, plane, out_channels, g, x.itemsize)
        parts = _empty((pieces, g, rows // g, out_channels // g), dtype=x.dtype)
        made = _share(_weight_grad_pieces, n, pieces, function, x, grad_y.reshape(-1),
                      parts.reshape(-1), tap_i, tap_j,
                      _empty(pieces * step * rows * plane, dtype=x.dtype), out_channels, g,
                      *args, step)
        gw_t = parts[0]
        for p in range(1, made):        # (in piece order: the same sum every run)
            gw_t = gw_t + parts[p]
        return _taps_to_weight(gw_t, tap_i, tap_j, out_channels, in_per_group, kh, kw)
    inner = _images_inner(rows, out_channels)
    grad_y = grad_y.reshape(n, out_channels, plane)
    chunks = _chunks(n, rows * plane, x.itemsize)
    buffers = _Buffers(rows * plane * (chunks[0][1] - chunks[0][0]), x.dtype)
    gw_t = np.zeros((g, rows // g, out_channels // g), x.dtype)

    def chunk(slot, start, stop, add):
        cols = _im2col(x[start:stop], tap_i, tap_j, *args, buffers.get(slot), inner)
        cols = cols.reshape(g, rows // g, cols.shape[1])            # (g, C/g*T, P*k)
        # gW_g^T += cols_g @ gy_g^T.  Written this way round (the long k*P axis
        # reduced with the tall operand first) OpenBLAS runs it several times
        # faster than gy_g @ cols_g^T, which it handles poorly for these shapes.
        add(0, np.matmul(cols, _columns(grad_y[start:stop], g, inner).transpose(0, 2, 1)))

    _sum_chunks(chunk, chunks, [gw_t])      # (in chunk order: the same sum every run)
    return _taps_to_weight(gw_t, tap_i, tap_j, out_channels, in_per_group, kh, kw)


def _taps_to_weight(gw_t, tap_i, tap_j, out_channels, in_per_group, kh, kw):
    """gW^T (g, C/g*T, O/g) at the kept taps -> the weight's shape (zero elsewhere)."""
    gw_taps = gw_t.transpose(0, 2, 1)                               # (g, O/g, C/g*T)
    grad_w = np.zeros((out_channels, in_per_group, kh, kw), dtype=gw_t.dtype)
    grad_w[:, :, tap_i, tap_j] = gw_taps.reshape(out_channels, in_per_group, len(tap_i))
    return grad_w
