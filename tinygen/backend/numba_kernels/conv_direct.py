"""Convs that are GEMMs on shifted views of the input itself.

A stride-1 convolution along one axis, (N, C, L) -> (N, O, L'), is a sum over its taps
of one matrix product per tap, each on a shifted window of every image:

    y[n, :, lo:hi]  += W[:, :, t] @ x[n, :, lo + off_t : hi + off_t]     off_t = t*d - left

where [lo, hi) are the outputs whose input lies inside x (the rest would read the
padding, which is zero, so they are simply not computed).  A window of x[n] is a
strided view that BLAS reads in place.  This serves the 1-D convs (WaveNet's causal
k=2 convs, its 1x1 convs) and every conv of one tap that moves whole rows (stride 1,
no shift across the width: the images' H*W pixels are one axis and the tap an offset
along it) -- the pointwise convs, and the gated PixelCNN's 1x1 conv of the vertical
features shifted down a row (padded one row on top, the output cut to H rows), which
then reads the features in place instead of a shifted copy.  The adjoints are the same
products transposed:

    gx[n, :, lo + off_t : hi + off_t] += W[:, :, t]^T @ gy[n, :, lo:hi]
    gW[:, :, t] = sum_n gy[n, :, lo:hi] @ x[n, :, lo + off_t : hi + off_t]^T

The forward of a conv with several taps stacks the taps' windows into one operand
instead (one GEMM, see below); the rest copies nothing.  The GEMMs are cblas calls made
from numba kernels on pieces of the batch shared out by ``chunks.share_pieces`` (no
Python per piece; the weight gradient's per-piece partials added in piece order, the
same every run), or, without numpy's OpenBLAS GEMM (``_cblas``), np.matmul on chunks
of images shared out by ``chunks.map_chunks`` (the per-chunk sums added in chunk order
by ``chunks.sum_chunks``).
"""
import numpy as np

from numba import njit

from . import _cblas
from ._cblas import NO_TRANS, TRANS, gemm
from .chunks import chunk_ranges, image_pieces, map_chunks, share_images, sum_chunks
from .conv_bounds import add_terms, add_terms_images, terms_for_kernel as _terms

# Every buffer and output the code below fills comes from ``_empty`` (the tests swap in
# a NaN-filled one, so that an element a kernel forgets to write cannot pass for a zero
# that fresh memory happened to hold).
_empty = np.empty

# images per chunk: about this many bytes of input and output.  The GEMMs run per image
# already, so chunks are only for the threads: one per thread unless the batch is huge
# (smaller chunks cost more Python per op: 1x1 conv1d, 8 images, 1 thread, 4 chunks of
# 2 images took 15% longer than one chunk).
CHUNK_BYTES = 1 << 23


def _one_dimensional(geom):
    return geom.in_size[0] == 1 and geom.kernel[0] == 1 and not any(geom.padding[:2])


def _row_shift(geom, taps):
    """One tap, reading the column it writes (so the width is the same in and out): on
    the flattened H*W axis the tap is one offset, (i*dh - top) * W."""
    if len(taps) != 1:
        return False
    (_, j), = np.asarray(taps).reshape(-1, 2).tolist()
    return j * geom.dilation[1] == geom.padding[2] and geom.out_size[1] == geom.in_size[1]


def serves(geom, taps):
    """A stride-1 conv along one axis: a 1-D one (height 1), or one tap moving whole rows
    (a pointwise conv, a conv of the input shifted by rows)."""
    return tuple(geom.stride) == (1, 1) and (_one_dimensional(geom) or _row_shift(geom, taps))


class _Line:
    """The conv along its one axis: length in and out, and each tap's
    (index t, offset, lo, hi)."""

    def __init__(self, geom, taps):
        self.tables = {}        # (_tap_table's, by the tap moved first)
        height, width = geom.in_size
        hout, wout = geom.out_size
        if not _one_dimensional(geom):  # one tap moving whole rows: every pixel, one axis
            self.length, self.out_length = height * width, hout * wout
            (i, j), = np.asarray(taps).reshape(-1, 2).tolist()
            off = (i * geom.dilation[0] - geom.padding[0]) * width
            lo, hi = max(0, -off), min(hout * wout, height * width - off)
            self.taps = [(i * geom.kernel[1] + j, off, lo, hi)] if hi > lo else []
            return
        self.length, self.out_length = width, wout
        dw, left = geom.dilation[1], geom.padding[2]
        self.taps = []
        for t in sorted(int(j) for _, j in np.asarray(taps).reshape(-1, 2)):
            off = t * dw - left
            lo, hi = max(0, -off), min(wout, width - off)
            if hi > lo:
                self.taps.append((t, off, lo, hi))

    def covering(self, window, size):
        """The first tap whose ``window`` is all of [0, size), or None."""
        return next((tap for tap in self.taps if window(*tap[1:]) == slice(0, size)), None)


def _per_tap_weights(weight, groups, transpose=False):
    """weight (O, C/g, 1, k) as (k, g, O/g, C/g) (or its (k, g, C/g, O/g) transpose)."""
    out_channels, in_per_group = weight.shape[:2]
    w = weight.reshape(groups, out_channels // groups, in_per_group, -1).transpose(3, 0, 1, 2)
    return np.ascontiguousarray(w.transpose(0, 1, 3, 2) if transpose else w)


def _chunks(n, per_image):
    return chunk_ranges(n, per_image, CHUNK_BYTES)


def _shifted(off, lo, hi):
    return slice(lo + off, hi + off)


def _unshifted(off, lo, hi):
    return slice(lo, hi)


def _accumulate(out, line, lhs, operand, out_window, in_window):
    """out[..., out_window] (+)= lhs[t] @ operand[..., in_window] over the taps; a tap
    whose window is all of ``out`` is written first, so ``out`` needs no zeroing."""
    first = line.covering(out_window, out.shape[-1])
    if first is None:
        out[...] = 0
    else:
        t, off, lo, hi = first
        np.matmul(lhs[t], operand[..., in_window(off, lo, hi)], out=out)
    for tap in line.taps:
        if tap is first:
            continue
        t, off, lo, hi = tap
        target = out[..., out_window(off, lo, hi)]
        np.add(target, np.matmul(lhs[t], operand[..., in_window(off, lo, hi)]), out=target)


# --- the forward of several taps: one GEMM over all of them --------------------------------
# A 1-D conv with several taps (WaveNet's k=2 dilated convs) runs its forward as one GEMM
# per image on the taps' shifted windows stacked, S[(t, c'), l] = x[c', l + off_t] (zero
# outside x): K = T*C/g instead of T GEMMs of K = C/g, which OpenBLAS runs well below its
# speed (32 channels: ~50 GFLOP/s), and no add pass per extra tap.  The stack is a copy of
# T windows, made per chunk of images of about STACK_BYTES.  (Measured, 1 thread, k=2
# d=8 32->64 L=1024 N=8: forward 1.50 -> 1.19 ms.  The same stacking made the input and
# weight gradients slower, 1.22 -> 1.60 and 1.09 -> 1.48 ms: their per-tap GEMMs are
# already long (K = L for the weight) and the stack's copy, or scattering the stacked
# result back, costs more than it saves; so they keep the per-tap products.)
STACK_BYTES = 1 << 20


def _stacks(line):
    return len(line.taps) > 1


def _stacked_weights(weight, line, groups):
    """W (g, O/g, T*C/g), columns (t, c') over the line's taps."""
    out_channels, in_per_group = weight.shape[:2]
    taps = weight.reshape(out_channels, in_per_group, -1)     # (t: i * kw + j, as _Line's)
    w = np.stack([taps[:, :, t] for t, *_ in line.taps], axis=1)            # (O, T, C/g)
    return w.reshape(groups, out_channels // groups, len(line.taps) * in_per_group)


def _stack_into(x3, line, out):
    """out (k, g, T, C/g, L') = each tap's window of x3 (k, g, C/g, L), zero outside x."""
    for index, (_, off, lo, hi) in enumerate(line.taps):
        window = out[:, :, index]
        window[..., :lo] = 0
        window[..., hi:] = 0
        window[..., lo:hi] = x3[..., lo + off:hi + off]
    return out


class _StackBuffers:
    """Per thread slot, room for one chunk's stack."""

    def __init__(self, n, line, groups, in_per_group, dtype):
        self.shape = (groups, len(line.taps), in_per_group, line.out_length)
        per_image = int(np.prod(self.shape)) * np.dtype(dtype).itemsize
        self.chunks = chunk_ranges(n, per_image, STACK_BYTES)
        self.k_max = self.chunks[0][1] - self.chunks[0][0]
        self.dtype, self.slots = dtype, {}

    def get(self, slot, k):
        if slot not in self.slots:
            self.slots[slot] = _empty((self.k_max,) + self.shape, dtype=self.dtype)
        return self.slots[slot][:k]


def _forward_stacked(x3, weight, line, y, bias, r3):
    k_all, g, in_per_group = x3.shape[:3]
    w = _stacked_weights(weight, line, g)
    buffers = _StackBuffers(k_all, line, g, in_per_group, x3.dtype)

    def chunk(slot, start, stop):
        stack = _stack_into(x3[start:stop], line, buffers.get(slot, stop - start))
        np.matmul(w, stack.reshape(stop - start, g, -1, line.out_length), out=y[start:stop])
        add_terms(_channels(y[start:stop]), bias, None if r3 is None else r3[start:stop])

    map_chunks(chunk, buffers.chunks)


def _channels(y):
    """A chunk of outputs (k, g, O/g, L') as (k, O, L') (a view)."""
    return y.reshape(y.shape[0], -1, y.shape[-1])


# --- the GEMMs run from compiled code ------------------------------------------------------
# With numpy's OpenBLAS found (``_cblas``), each op's per-image GEMMs are cblas calls made
# by one numba kernel on a range of images, and the batch is cut into a fixed number of
# pieces shared out by ``chunks.share_pieces``: no Python and no GIL hand-over per chunk
# (each ~20-45 us on the 2-core VM), and the forward's bias and residual are added per
# image while its outputs are in cache.  The pieces depend only on the batch and the
# thread count, so the weight gradient -- each piece's images summed into its own
# partial (beta = 1 from its second image on), the partials added in piece order -- has
# the same bits every run at a given thread count, whichever thread ran which piece.
# Without the GEMM (a BLAS that is not an ILP64 OpenBLAS) the ``_*_matmul`` functions
# below run the same products through np.matmul, chunk by chunk.
#
# Every array reaches the kernels flat, the matrices laid out by element offsets and
# leading dimensions: a tap's window of an image's channels is the block at its first
# column with ld the row length, read in place (and share_pieces' argument block holds
# two words per flat array).  ``taps`` (T, 4) int64 rows (index, off, lo, hi) of the
# line's taps (``_tap_table``); the forward's weights (g, O/g, T*C/g), columns (tap
# index, c'), the input gradient's their transposes (T, g, C/g, O/g); each of them
# transposed instead where ``_column_pieces`` reads it so.

# How many pieces (one per thread, one below chunks.MIN_SHARED_MULTIPLY_ADDS), and
# sharing them out: chunks' (a module name, so that tests can replace it).
_pieces = image_pieces
_share = share_images


def _tap_table(line, first=None):
    """The line's taps as (T, 4) int64 rows (index, off, lo, hi), ``index`` the tap's
    place in the line (its columns in the weights), tap ``first`` moved to the front
    (made once per line; the kernels only read it)."""
    table = line.tables.get(first)
    if table is None:
        rows = [(index, off, lo, hi) for index, (_, off, lo, hi) in enumerate(line.taps)]
        if first is not None:
            rows.insert(0, rows.pop(first))
        table = line.tables[first] = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return table


# Each op's line, by geometry and taps: a model runs the same few convs every step, and
# building the line and its tap tables cost ~3.5 us of an op's ~30 us of Python (a
# small conv's fwd+bwd: ~0.14 ms in all).  Cleared when it holds LINES_KEPT.
LINES_KEPT = 256
_lines = {}


def _line(geom, taps):
    try:
        key = (geom, taps.shape, taps.tobytes())
        hash(key)
    except TypeError:       # (a geometry of unhashable parts: not kept)
        return _Line(geom, taps)
    line = _lines.get(key)
    if line is None:
        if len(_lines) >= LINES_KEPT:
            _lines.clear()
        line = _lines[key] = _Line(geom, taps)
    return line


def _flat(a):
    return np.ascontiguousarray(a).reshape(-1)


@njit(cache=True, nogil=True)
def _zero(a, start, stop):
    a[start:stop] = 0


# --- GEMMs of few multiply-adds per output: cut into pieces of columns ----------------------
# OpenBLAS (0.3.2x-0.3.3x, SkylakeX kernels) runs a product of at most 1e6 multiply-adds
# through its small-matrix kernels, which pack nothing; a larger one packs both
# operands, which costs most when each output sums few products (K).  So a product with
# M*K <= SMALL_MK (weights of at most 2048 entries: 64 outputs of 32 channels, 32 of
# 64) is cut into pieces of columns of about PIECE_MULTIPLY_ADDS each, its weights read
# transposed (stored (K, M): OpenBLAS's small kernels run that way fastest).  Measured
# quiet, 1 thread, 8 images, M x L x K: 64x1024x32 fwd 0.322 -> 0.265 ms, 32x1024x64
# (its input gradient) 0.310 -> 0.211; over M, K in 16..256 and L in 784..4096 the cut
# gained 1.1-1.8x for M*K <= 2048 (K=16: most) and lost up to 2x for larger M*K with
# K >= 64, which keep one call.  Each output column is computed by one call either way,
# so the pieces change no result's dependence on the thread count.
SMALL_MK = 2048
PIECE_MULTIPLY_ADDS = 1 << 19


def _column_pieces(m, k, n):
    """(weights read transposed?, columns per piece) for a product (M, K) @ (K, N)."""
    if m * k > SMALL_MK:
        return False, max(1, n)
    pieces = max(1, -(-m * k * n // PIECE_MULTIPLY_ADDS))
    return True, max(1, -(-n // pieces))


@njit(cache=True, nogil=True)
def _gemm_columns(function, transposed, m, n, k, a, a_at, b, b_at, ldb, beta, out, out_at,
                  ldc, per):
    """out (M, N) (+)= A (M, K) @ B (K, N) in pieces of ``per`` columns; A at ``a_at``
    stored (M, K) (lda K) or, when ``transposed``, (K, M) (lda M)."""
    trans = TRANS if transposed else NO_TRANS
    lda = m if transposed else k
    lo = 0
    while lo < n:
        hi = min(n, lo + per)
        gemm(function, trans, NO_TRANS, m, hi - lo, k, a, a_at, lda, b, b_at + lo, ldb, beta,
             out, out_at + lo, ldc)
        lo = hi


@njit(cache=True, nogil=True)
def _forward_images(function, w, x, y, taps, stack, bias, residual, groups, in_per_group,
                    out_per_group, length, out_length, transposed, columns, per, lo, hi):
    """y for images [lo, hi): per image and group one GEMM, W (O/g, T*C/g) @ the taps'
    windows stacked (T*C/g, L') in this piece's part of ``stack``, zero outside x; one
    tap is read in place instead (the columns it misses zeroed); then + bias, +
    residual (those of y's order: ``add_terms``'s additions).  ``transposed``,
    ``columns``: ``_column_pieces``' (W stored (g, T*C/g, O/g) when transposed)."""
    count = taps.shape[0]
    k = count * in_per_group
    plane = out_per_group * out_length
    s_at = (lo // per) * k * out_length
    out_channels = groups * out_per_group
    for n in range(lo, hi):
        for gi in range(groups):
            x_at = (n * groups + gi) * in_per_group * length
            y_at = (n * groups + gi) * plane
            w_at = gi * out_per_group * k
            if count == 0:
                _zero(y, y_at, y_at + plane)
            elif count == 1:
                off, a, b = taps[0, 1], taps[0, 2], taps[0, 3]
                for o in range(out_per_group):
                    _zero(y, y_at + o * out_length, y_at + o * out_length + a)
                    _zero(y, y_at + o * out_length + b, y_at + (o + 1) * out_length)
                _gemm_columns(function, transposed, out_per_group, b - a, in_per_group, w, w_at,
                              x, x_at + a + off, length, 0.0, y, y_at + a, out_length, columns)
            else:
                for index in range(count):
                    off, a, b = taps[index, 1], taps[index, 2], taps[index, 3]
                    for c in range(in_per_group):
                        row = s_at + (index * in_per_group + c) * out_length
                        src = x_at + c * length + off
                        _zero(stack, row, row + a)
                        stack[row + a:row + b] = x[src + a:src + b]
                        _zero(stack, row + b, row + out_length)
                _gemm_columns(function, transposed, out_per_group, out_length, k, w, w_at,
                              stack, s_at, out_length, 0.0, y, y_at, out_length, columns)
        add_terms_images(y, bias, residual, n, n + 1, out_channels, out_length)


@njit(cache=True, nogil=True)
def _input_grad_images(function, w_t, gy, gx, taps, covered, groups, in_per_group,
                       out_per_group, length, out_length, transposed, columns, per, lo, hi):
    """gx for images [lo, hi): per image, group and tap W_t^T (C/g, O/g) @ gy's window
    (O/g, hi-lo) written (the first tap, when ``covered``: its window is all of gx) or
    added (beta 1) into the tap's window of gx (zeroed first when nothing covers it).
    ``transposed``, ``columns``: ``_column_pieces``' (``w_t`` then the taps' W (T, g,
    O/g, C/g) itself)."""
    count = taps.shape[0]
    plane = in_per_group * length
    for n in range(lo, hi):
        for gi in range(groups):
            gx_at = (n * groups + gi) * plane
            gy_at = (n * groups + gi) * out_per_group * out_length
            if not covered:
                _zero(gx, gx_at, gx_at + plane)
            for index in range(count):
                column, off, a, b = taps[index, 0], taps[index, 1], taps[index, 2], taps[index, 3]
                beta = 0.0 if covered and index == 0 else 1.0
                _gemm_columns(function, transposed, in_per_group, b - a, out_per_group, w_t,
                              (column * groups + gi) * in_per_group * out_per_group, gy,
                              gy_at + a, out_length, beta, gx, gx_at + a + off, length, columns)


@njit(cache=True, nogil=True)
def _weight_grad_images(function, x, gy, parts, taps, groups, in_per_group, out_per_group,
                        length, out_length, per, lo, hi):
    """This piece's part of the weight gradient, (g, O/g, T*C/g): the sum over images
    [lo, hi) of gy's window (O/g, hi-lo) @ the tap's window of x transposed, each
    image's product added to the sum so far (beta 1) in image order."""
    count = taps.shape[0]
    k = count * in_per_group
    p_at = (lo // per) * groups * out_per_group * k
    for n in range(lo, hi):
        beta = 0.0 if n == lo else 1.0
        for gi in range(groups):
            x_at = (n * groups + gi) * in_per_group * length
            gy_at = (n * groups + gi) * out_per_group * out_length
            for index in range(count):
                column, off, a, b = taps[index, 0], taps[index, 1], taps[index, 2], taps[index, 3]
                gemm(function, NO_TRANS, TRANS, out_per_group, in_per_group, b - a, gy,
                     gy_at + a, out_length, x, x_at + a + off, length, beta, parts,
                     p_at + gi * out_per_group * k + column * in_per_group, k)


def forward(x, weight, geom, taps, bias=None, residual=None):
    function = _cblas.address_for(x.dtype)
    if function is None or weight.dtype != x.dtype:
        return _forward_matmul(x, weight, geom, taps, bias, residual)
    g = geom.groups
    n, channels = x.shape[:2]
    out_channels = weight.shape[0]
    line = _line(geom, taps)
    count = len(line.taps)
    y = _empty((n, out_channels) + tuple(geom.out_size), dtype=x.dtype)
    transposed, columns = _column_pieces(out_channels // g, count * channels // g,
                                         line.out_length)
    if count:
        w = _stacked_weights(weight, line, g)                       # (g, O/g, T*C/g)
        w = _flat(w.transpose(0, 2, 1) if transposed else w)
    else:
        w = np.empty(0, x.dtype)
    pieces = _pieces(n, n * out_channels * channels // g * count * line.out_length)
    stack = _empty(pieces * channels // g * count * line.out_length if count > 1 else 0,
                   x.dtype)
    _share(_forward_images, n, pieces, function, w, _flat(x), y.reshape(-1), _tap_table(line),
           stack, _terms(bias, x.dtype), _terms(residual, x.dtype), g, channels // g,
           out_channels // g, line.length, line.out_length, transposed, columns)
    return y


def input_grad(grad_y, weight, geom, taps):
    function = _cblas.address_for(grad_y.dtype)
    if function is None or weight.dtype != grad_y.dtype:
        return _input_grad_matmul(grad_y, weight, geom, taps)
    g = geom.groups
    n, out_channels = grad_y.shape[:2]
    channels = weight.shape[1] * g
    line = _line(geom, taps)
    count = len(line.taps)
    gx = _empty((n, channels) + tuple(geom.in_size), dtype=grad_y.dtype)
    first = line.covering(_shifted, line.length)
    table = _tap_table(line, None if first is None else line.taps.index(first))
    transposed, columns = _column_pieces(channels // g, out_channels // g, line.out_length)
    # (read transposed: the taps' W (T, g, O/g, C/g) as it is)
    w_t = _flat(_per_tap_weights(weight, g, transpose=not transposed)[
        [t for t, *_ in line.taps]])
    pieces = _pieces(n, n * out_channels * channels // g * count * line.out_length)
    _share(_input_grad_images, n, pieces, function, w_t, _flat(grad_y), gx.reshape(-1), table,
           first is not None, g, channels // g, out_channels // g, line.length,
           line.out_length, transposed, columns)
    return gx


def weight_grad(x, grad_y, geom, taps):
    function = _cblas.address_for(x.dtype)
    if function is None or grad_y.dtype != x.dtype:
        return _weight_grad_matmul(x, grad_y, geom, taps)
    g = geom.groups
    n, channels = x.shape[:2]
    out_channels = grad_y.shape[1]
    line = _line(geom, taps)
    count = len(line.taps)
    kh, kw = geom.kernel
    grad_w = np.zeros((out_channels, channels // g, kh * kw), dtype=x.dtype)
    if count == 0 or n == 0:
        return grad_w.reshape(out_channels, channels // g, kh, kw)
    pieces = _pieces(n, n * out_channels * channels // g * count * line.out_length)
    parts = _empty((pieces, out_channels, count, channels // g), dtype=x.dtype)
    made = _share(_weight_grad_images, n, pieces, function, _flat(x), _flat(grad_y),
           parts.reshape(-1), _tap_table(line), g, channels // g, out_channels // g,
           line.length, line.out_length)
    total = parts[0]
    for part in parts[1:made]:      # (in piece order: the same sum every run)
        total += part
    grad_w[:, :, [t for t, *_ in line.taps]] = total.transpose(0, 2, 1)
    return grad_w.reshape(out_channels, channels // g, kh, kw)


def _forward_matmul(x, weight, geom, taps, bias=None, residual=None):
    g = geom.groups
    n, channels = x.shape[:2]
    out_channels = weight.shape[0]
    line = _line(geom, taps)
    x3 = np.ascontiguousarray(x).reshape(n, g, channels // g, line.length)
    w = _per_tap_weights(weight, g)
    y = _empty((n, g, out_channels // g, line.out_length), dtype=x.dtype)
    # the residual (N, O, Hout, Wout) as y's chunks see it, (N, O, L')
    r3 = None if residual is None else residual.reshape(n, out_channels, line.out_length)
    if _stacks(line):
        _forward_stacked(x3, weight, line, y, bias, r3)
        return y.reshape((n, out_channels) + tuple(geom.out_size))

    def chunk(slot, start, stop):
        _accumulate(y[start:stop], line, w, x3[start:stop], _unshifted, _shifted)
        add_terms(_channels(y[start:stop]), bias, None if r3 is None else r3[start:stop])

    map_chunks(chunk, _chunks(n, (channels * line.length + out_channels * line.out_length)
                              * x.itemsize))
    return y.reshape((n, out_channels) + tuple(geom.out_size))


def _input_grad_matmul(grad_y, weight, geom, taps):
    g = geom.groups
    n, out_channels = grad_y.shape[:2]
    channels = weight.shape[1] * g
    line = _line(geom, taps)
    gy = np.ascontiguousarray(grad_y).reshape(n, g, out_channels // g, line.out_length)
    w_t = _per_tap_weights(weight, g, transpose=True)
    gx = _empty((n, g, channels // g, line.length), dtype=grad_y.dtype)

    def chunk(slot, start, stop):  # the adjoint: gx's windows are the shifted ones
        _accumulate(gx[start:stop], line, w_t, gy[start:stop], _shifted, _unshifted)

    map_chunks(chunk, _chunks(n, (channels * line.length + out_channels * line.out_length)
                              * grad_y.itemsize))
    return gx.reshape((n, channels) + tuple(geom.in_size))


def _weight_grad_matmul(x, grad_y, geom, taps):
    g = geom.groups
    n, channels = x.shape[:2]
    out_channels = grad_y.shape[1]
    line = _line(geom, taps)
    x3 = np.ascontiguousarray(x).reshape(n, g, channels // g, line.length)
    gy = np.ascontiguousarray(grad_y).reshape(n, g, out_channels // g, line.out_length)
    kh, kw = geom.kernel
    total = np.zeros((kh * kw, g, out_channels // g, channels // g), dtype=x.dtype)

    def chunk(slot, start, stop, add):
        for t, off, lo, hi in line.taps:
            windows = x3[start:stop, ..., lo + off:hi + off].transpose(0, 1, 3, 2)
            add(t, np.matmul(gy[start:stop, ..., lo:hi], windows).sum(axis=0))

    # (each tap's sum in chunk order: the same every run)
    sum_chunks(chunk, _chunks(n, (channels * line.length + out_channels * line.out_length)
                              * x.itemsize), list(total))       # (k, g, O/g, C/g)
    grad_w = total.transpose(1, 2, 3, 0).reshape(out_channels, channels // g, kh, kw)
    return np.ascontiguousarray(grad_w)
