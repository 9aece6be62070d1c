"""3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3).

Same results as ``tinygen/backend/reference/conv.py`` (to rounding); ``conv.py`` in
this package sends it the convs ``serves`` accepts (a dense 3x3 kernel, stride and
dilation 1, one group, enough channels, outputs of 12x12 or more).

Why.  A 3x3 conv of 64 -> 64 channels is GEMM-bound (1.85 GFLOP per op for 32 images
of 28x28) and OpenBLAS runs these shapes at 70-90 GFLOP/s on one core here.  Winograd
computes each 2x2 block of outputs from a 4x4 tile of the input with 16 products
per (output, input) channel pair instead of 36: 2.25x fewer multiplies, which are 16
GEMMs (one per tile element) of (O, C) by (C, tiles).

For one tile (4x4 input d, 2x2 output y) and one channel pair, with weight w (3x3):

    y = A^T [ (G w G^T) * (B^T d B) ] A        (* elementwise; summed over channels)

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

Tile (a, b) covers outputs 2a..2a+1, 2b..2b+1 and reads the input rows 2a - top ..
2a - top + 3 (columns alike), zero outside the input; an odd output size computes one
row/column more, thrown away.  Per chunk of k images, with T = k * tiles per image:

    forward      M[e] (O, T)  = U[e] (O, C) @ V[e] (C, T),   U = G w G^T,  V = B^T d B
                 then y = A^T M A per tile
    input grad   (stride 1) the forward of grad_y with the flipped weight, padded by
                 2 - padding (the transposed conv is a conv)
    weight grad  the exact adjoint of the forward in w: with E = A gy A^T per tile (gy
                 zero past the output),  Z[e]^T (C, O) = sum over chunks V[e] @ E[e]^T
                 (E held as (T, O)), then gw = G^T Z G

Rounding: the transforms only add, subtract and halve, so the error stays of the direct
sums' order (float32, the tests' shapes: ~3e-7 of the largest value; the tests hold it
to 2e-5 of the reference, float64 to 1e-12).  Non-finite inputs: a tile mixes 16 inputs, so an inf in x reaches
outputs and weight-gradient taps beside its own, as inf or NaN (inf - inf), where the
direct sum gives inf only where it is read (as in other libraries' Winograd convs).

Each op is one compiled kernel on pieces of images shared out among threads
(``chunks.share_pieces``), its 16 GEMMs per step cblas calls by address (``_cblas``);
the weight gradient's per-piece sums are added in piece order (the same sum every
run).  Without numpy's OpenBLAS GEMM the same steps run as Python chunks through
np.matmul (``chunks.map_chunks`` / ``sum_chunks``, in chunk order).  See "the compiled
path".
"""
import numpy as np
from numba import njit

from . import _cblas
from ._cblas import NO_TRANS, gemm
from .chunks import (chunk_ranges, image_pieces, map_chunks, share_images, share_range,
                     sum_chunks)
from .conv_bounds import add_terms, add_terms_images, terms_for_kernel as _terms, \
    valid_range as _valid_range

# Every buffer and output the code below fills comes from ``_empty`` (the tests swap in
# a NaN-filled one, so that an element a kernel forgets to write cannot pass for a zero
# that fresh memory happened to hold).
_empty = np.empty

# Images per chunk: the transformed input V and the GEMMs' result M of a chunk take
# about this many bytes (a 64-channel 28x28 image: 0.8 MB each).
CHUNK_BYTES = 1 << 21

# The weight transform G (its transpose serves the weight gradient).
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])

# Where it pays.  1 thread, fwd+dx+dw, Winograd / the path it replaces (min of 15,
# interleaved, on a loaded 2-core machine): 28x28 outputs 16 -> 16 channels 0.49, 32 ->
# 32 0.70, 64 -> 64 0.70; 14x14 64 -> 64 0.84, 64 -> 128 0.94; 10x10 0.96; 8x8 1.13,
# 7x7 (128 channels) 1.08: small planes have few tiles per row, so the junk tile and the
# odd size's spare row/column are a larger share.
MIN_CHANNELS = 16
MIN_OUT_SIZE = 12


def serves(geom, taps, in_per_group, out_per_group):
    """A dense 3x3, stride 1, dilation 1, one group, at least MIN_CHANNELS each way and
    outputs at least MIN_OUT_SIZE on each side."""
    return (tuple(geom.kernel) == (3, 3) and tuple(geom.stride) == (1, 1)
            and tuple(geom.dilation) == (1, 1) and geom.groups == 1 and len(taps) == 9
            and min(in_per_group, out_per_group) >= MIN_CHANNELS
            and min(geom.out_size) >= MIN_OUT_SIZE)


# --- transforms -----------------------------------------------------------------------------
# Layout.  A chunk's tiles are held as (16, channels, k*th*wp) arrays, wp = tw + 1: each
# tile row has one junk tile more than it needs (the GEMMs compute 1/tw more columns,
# the output transform drops them), and in exchange every tile element of a whole
# image plane is ONE loop over p = a*wp + b with no bounds: the input is staged as its
# four row/column parity planes, P[2*(r%2) + s%2][(r//2)*wp + s//2] = x_padded[r, s], and
# the tile at p reads x_padded[2a + i, 2b + j] = P[2*(i%2) + j%2][p + (i//2)*wp + j//2],
# fixed shifts of p.  Those loops are long (an image's tiles, 210 for 28x28) and
# unit-stride, so LLVM vectorises them; per tile row they were 14 long, and the
# transforms ran scalar at twice the GEMMs' time.  The junk tiles of the transformed
# output gradient are zero (so the transformed input's junk, finite values of the same
# channel, adds nothing to the weight gradient).
@njit(cache=True, nogil=True, fastmath=False)
def _input_tiles(x, v, top, left, th, tw):
    """v[4i + j, c, n*th*wp + a*wp + b] = (B^T d B)[i, j] for the 4x4 tile d of image n,
    channel c at tile (a, b < tw): rows 2a - top + (0..3), columns 2b - left + (0..3) of
    x, zero outside it (the junk tiles b = tw hold whatever their reads give)."""
    k, channels, height, width = x.shape
    wp = tw + 1
    tp = th * wp
    parity = np.zeros((4, (th + 1) * wp + 1), dtype=x.dtype)  # zero outside x, for good
    t = np.empty((16, tp), dtype=x.dtype)
    for n in range(k):
        for c in range(channels):
            for r in range(2):
                a_lo, a_hi = _valid_range(r - top, 2, height, th + 1)
                for s in range(2):
                    b_lo, b_hi = _valid_range(s - left, 2, width, wp)
                    plane = parity[2 * r + s]
                    for a in range(a_lo, a_hi):
                        dst = plane[a * wp + b_lo:a * wp + b_hi]
                        src = x[n, c, 2 * a + r - top][2 * b_lo + s - left:][::2]
                        for b in range(dst.shape[0]):
                            dst[b] = src[b]
            for j in range(4):  # B^T d: the rows, for each column j of the tiles
                shift = j // 2
                d0 = parity[j % 2, shift:]
                d1 = parity[2 + j % 2, shift:]
                d2 = parity[j % 2, wp + shift:]
                d3 = parity[2 + j % 2, wp + shift:]
                t0, t1, t2, t3 = t[j], t[4 + j], t[8 + j], t[12 + j]
                for p in range(tp):
                    t0[p] = d0[p] - d2[p]
                    t1[p] = d1[p] + d2[p]
                    t2[p] = d2[p] - d1[p]
                    t3[p] = d1[p] - d3[p]
            base = n * tp
            for i in range(4):  # (B^T d) B: the columns
                u0, u1, u2, u3 = t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]
                o0 = v[4 * i, c, base:base + tp]
                o1 = v[4 * i + 1, c, base:base + tp]
                o2 = v[4 * i + 2, c, base:base + tp]
                o3 = v[4 * i + 3, c, base:base + tp]
                for p in range(tp):
                    o0[p] = u0[p] - u2[p]
                    o1[p] = u1[p] + u2[p]
                    o2[p] = u2[p] - u1[p]
                    o3[p] = u1[p] - u3[p]


@njit(cache=True, nogil=True, fastmath=False)
def _output_tiles(m, y, th, tw):
    """y[n, o, 2a + r, 2b + s] = (A^T M A)[r, s] for the 4x4 tile M[:, o, n*th*wp + a*wp + b],
    for the outputs inside y (an odd size's last tile row/column is partly dropped)."""
    k, out_channels, hout, wout = y.shape
    wp = tw + 1
    tp = th * wp
    s = np.empty((8, tp), dtype=y.dtype)
    q = np.empty((4, tp), dtype=y.dtype)
    for n in range(k):
        base = n * tp
        for o in range(out_channels):
            for i in range(4):  # M A: the columns
                m0 = m[4 * i, o, base:base + tp]
                m1 = m[4 * i + 1, o, base:base + tp]
                m2 = m[4 * i + 2, o, base:base + tp]
                m3 = m[4 * i + 3, o, base:base + tp]
                s0, s1 = s[2 * i], s[2 * i + 1]
                for p in range(tp):
                    s0[p] = m0[p] + m1[p] + m2[p]
                    s1[p] = m1[p] - m2[p] - m3[p]
            for j in range(2):  # A^T (M A): the rows
                e0, e1, e2, e3 = s[j], s[2 + j], s[4 + j], s[6 + j]
                q0, q1 = q[j], q[2 + j]
                for p in range(tp):
                    q0[p] = e0[p] + e1[p] + e2[p]
                    q1[p] = e1[p] - e2[p] - e3[p]
            for r in range(2):  # q[2r + s][a*wp + b] -> y[n, o, 2a + r, 2b + s]
                for a in range(min(th, (hout - r + 1) // 2)):
                    row = y[n, o, 2 * a + r]
                    for j in range(2):
                        dst = row[j:][::2]
                        src = q[2 * r + j, a * wp:a * wp + dst.shape[0]]
                        for b in range(dst.shape[0]):
                            dst[b] = src[b]


@njit(cache=True, nogil=True, fastmath=False)
def _grad_tiles(gy, et, th, tw):
    """et[4i + j, n*th*wp + a*wp + b, o] = (A g A^T)[i, j] for the 2x2 block g of gy[n, o]
    at rows 2a.., columns 2b.. (zero past gy's edge, and at the junk tiles b = tw): the
    adjoint of ``_output_tiles``, laid out tiles by channels.  The weight gradient's
    GEMMs run a third faster with one operand that way round (NN, (C, T) @ (T, O); with
    both operands T-contiguous, NT, OpenBLAS took 315 vs 215 us per 64-channel 28x28
    image here), and this transform costs about what the (16, O, T) one did (63 vs 56
    us): its loop over o reads gy with a stride and writes contiguous runs."""
    k, out_channels, hout, wout = gy.shape
    wp = tw + 1
    tp = th * wp
    zero = np.zeros(1, dtype=gy.dtype)[0]  # (a literal 0 would make the arithmetic float64)
    for n in range(k):
        for a in range(th):
            second_row = 2 * a + 1 < hout
            for b in range(wp):
                p = n * tp + a * wp + b
                if b == tw:  # the junk tile: zero
                    for e in range(16):
                        for o in range(out_channels):
                            et[e, p, o] = zero
                    continue
                second_col = 2 * b + 1 < wout
                for o in range(out_channels):
                    g00 = gy[n, o, 2 * a, 2 * b]
                    g01 = gy[n, o, 2 * a, 2 * b + 1] if second_col else zero
                    g10 = gy[n, o, 2 * a + 1, 2 * b] if second_row else zero
                    g11 = gy[n, o, 2 * a + 1, 2 * b + 1] if second_row and second_col else zero
                    # A g: the rows (per column s)
                    h00, h01 = g00, g01
                    h10, h11 = g00 + g10, g01 + g11
                    h20, h21 = g00 - g10, g01 - g11
                    h30, h31 = -g10, -g11
                    # (A g) A^T: the columns
                    et[0, p, o] = h00
                    et[1, p, o] = h00 + h01
                    et[2, p, o] = h00 - h01
                    et[3, p, o] = -h01
                    et[4, p, o] = h10
                    et[5, p, o] = h10 + h11
                    et[6, p, o] = h10 - h11
                    et[7, p, o] = -h11
                    et[8, p, o] = h20
                    et[9, p, o] = h20 + h21
                    et[10, p, o] = h20 - h21
                    et[11, p, o] = -h21
                    et[12, p, o] = h30
                    et[13, p, o] = h30 + h31
                    et[14, p, o] = h30 - h31
                    et[15, p, o] = -h31


# (Loops here: a three-operand einsum ran its generic loop, ~2 ms for a 64x64 weight,
# and numpy's matmuls/tensordots over the 3x3 blocks 0.4-1 ms; these take ~0.1 ms, and
# are shared out by output channels.)
@njit(cache=True, nogil=True, fastmath=False)
def _weight_tiles_range(weight, g, flip, u, lo, hi):
    """u[4i + j, o, c] = (G w[o, c] G^T)[i, j] for the rows o in [lo, hi) of u (16, O, C):
    w = weight, or with ``flip`` the transposed conv's, w[o, c] = weight[c, o] flipped
    in both axes (read in place: no flipped copy made first)."""
    channels = u.shape[2]
    gw = np.empty((4, 3), dtype=u.dtype)
    w = np.empty((3, 3), dtype=u.dtype)
    for o in range(lo, hi):
        for c in range(channels):
            for k in range(3):
                for l in range(3):
                    w[k, l] = weight[c, o, 2 - k, 2 - l] if flip else weight[o, c, k, l]
            for i in range(4):
                for l in range(3):
                    total = g[i, 0] * w[0, l]
                    for k in range(1, 3):
                        total += g[i, k] * w[k, l]
                    gw[i, l] = total
            for i in range(4):
                for j in range(4):
                    total = gw[i, 0] * g[j, 0]
                    for l in range(1, 3):
                        total += gw[i, l] * g[j, l]
                    u[4 * i + j, o, c] = total


@njit(cache=True, nogil=True, fastmath=False)
def _weight_from_parts(parts, made, g, gw, lo, hi):
    """gw[o, c, k, l] = (G^T Z[:, o, c] G)[k, l] for the output channels o in [lo, hi),
    Z[e, o, c] = the first ``made`` parts[p, e, c, o] (P, 16, C, O) added in piece
    order, read as a 4x4 tile."""
    channels = gw.shape[1]
    z = np.empty(16, dtype=gw.dtype)
    zg = np.empty((4, 3), dtype=gw.dtype)
    for o in range(lo, hi):
        for c in range(channels):
            for e in range(16):
                total = parts[0, e, c, o]
                for p in range(1, made):
                    total += parts[p, e, c, o]
                z[e] = total
            for i in range(4):
                for l in range(3):
                    total = z[4 * i] * g[0, l]
                    for j in range(1, 4):
                        total += z[4 * i + j] * g[j, l]
                    zg[i, l] = total
            for k in range(3):
                for l in range(3):
                    total = g[0, k] * zg[0, l]
                    for i in range(1, 4):
                        total += g[i, k] * zg[i, l]
                    gw[o, c, k, l] = total


def _weight_tiles(weight, flip=False):
    """U (16, O, C): G w G^T for every channel pair, row-major over the 4x4 tile (with
    ``flip``: of the transposed conv's weight, (16, C, O))."""
    rows, cols = weight.shape[:2]
    if flip:
        rows, cols = cols, rows
    u = _empty((16, rows, cols), dtype=weight.dtype)
    share_range(_weight_tiles_range, rows, u.size, np.ascontiguousarray(weight),
                _G.astype(weight.dtype), flip, u)
    return u


def _weight_from_parts_of(parts, made, dtype):
    """The weight gradient (O, C, 3, 3) from the first ``made`` parts (P, 16, C, O) of
    Z^T, added in piece order (the same sum every run), shared out by output channels."""
    channels, out_channels = parts.shape[2:]
    gw = _empty((out_channels, channels, 3, 3), dtype=dtype)
    share_range(_weight_from_parts, out_channels, made * parts[0].size, parts, made,
                _G.astype(dtype), gw)
    return gw


# --- the three ops ---------------------------------------------------------------------------
def _tiles(out_size):
    hout, wout = out_size
    return (hout + 1) // 2, (wout + 1) // 2


def _chunks(n, channels, out_channels, th, tw, itemsize):
    per_image = 16 * (channels + out_channels) * th * (tw + 1) * itemsize
    return chunk_ranges(n, per_image, CHUNK_BYTES)


class _Buffers:
    """Per thread slot: a (16, rows, T) buffer of the largest chunk per row count given;
    ``get(slot, cols)`` hands out contiguous (16, rows, cols) views of them."""

    def __init__(self, rows, k_max, tiles, dtype):
        self.rows, self.size, self.dtype, self.slots = rows, k_max * tiles, dtype, {}

    def get(self, slot, cols):
        if slot not in self.slots:
            self.slots[slot] = [_empty(16 * r * self.size, dtype=self.dtype) for r in self.rows]
        return [b[:16 * r * cols].reshape(16, r, cols) for b, r in zip(self.slots[slot], self.rows)]



# --- the compiled path: each op one numba kernel on pieces of images -------------------------
# With numpy's OpenBLAS GEMM found (``_cblas``), each op is one numba kernel (nogil) that
# runs a piece of the batch step by step -- a step's input tiles transformed into this
# piece's part of a flat buffer, the 16 GEMMs called by address, the output tiles
# written (+ bias, + residual) -- and the pieces, one per thread, are shared out by
# ``chunks.share_pieces``: no Python and no GIL hand-over per chunk.  (As Python
# closures under map_chunks, each chunk made several GIL-holding calls, and a second
# thread gained little: cpu_suite's "conv2d 3x3" row ran 1.06x PyTorch's time at 1
# thread, 1.14x at 2.)  A step is CHUNK_BYTES of tiles (whole images), as the chunks
# were.  The weight gradient's partial sums are each piece's own (16, C, O) block, its
# steps' products added into it (beta 1) in image order, the blocks added in piece order
# afterwards: the pieces depend only on the batch and the thread count, so the bits are
# the same every run at a given thread count.  Without the GEMM, the ``_*_matmul``
# functions further down run the same steps as Python chunks through np.matmul.
#
# Measured (cpu_suite --quick, quiet, "conv2d 3x3 N32 64->64 28x28": ours in ms, the
# chunks -> this, interleaved): ~34.8 -> 32.7 at 1 thread, ~18.5 -> 16.1 at 2 (ours /
# PyTorch 1.05 -> 0.93 there).  Steps of 2 or 4 images (420 or 840 tile columns)
# instead of 1 made each op 25-45% slower; the GEMMs cut into blocks of 32-105 columns
# were no faster; gy staged channels-last for ``_grad_tiles`` (vectorised over O) was
# slower (80 vs 55 us an image).

# How many pieces (one per thread, one below chunks.MIN_SHARED_MULTIPLY_ADDS), as
# conv_direct's (a module name, so that tests can replace it).
_pieces = image_pieces


def _images_per_step(per_image):
    """Whole images of about CHUNK_BYTES of tiles (``per_image`` bytes each) a step."""
    return max(1, CHUNK_BYTES // max(1, per_image))


def _plan(n, channels, out_channels, th, tw, itemsize):
    """(pieces, images per step, multiply-adds): no step longer than a piece (the
    buffers hold one step per piece)."""
    tiles = th * (tw + 1)
    multiply_adds = n * tiles * 16 * channels * out_channels
    pieces = _pieces(n, multiply_adds)
    per_image = 16 * (channels + out_channels) * tiles * itemsize
    return pieces, max(1, min(_images_per_step(per_image), -(-n // pieces)))


_share = share_images


@njit(cache=True, nogil=True, fastmath=False)
def _conv_pieces(function, x, u, y, bias, residual, v_buf, m_buf, top, left, th, tw, step,
                 per, lo, hi):
    """y for images [lo, hi), ``step`` images at a time: their input tiles V (16, C, T)
    in this piece's part of v_buf, M[e] (O, T) = U[e] (O, C) @ V[e] into its part of
    m_buf, the tiles' outputs into y, + bias, + residual (empty: none)."""
    channels, out_channels = x.shape[1], y.shape[1]
    tiles = th * (tw + 1)
    piece = lo // per
    v_at = piece * 16 * step * tiles * channels
    m_at = piece * 16 * step * tiles * out_channels
    for start in range(lo, hi, step):
        stop = min(hi, start + step)
        t = (stop - start) * tiles
        v = v_buf[v_at:v_at + 16 * channels * t].reshape((16, channels, t))
        m = m_buf[m_at:m_at + 16 * out_channels * t].reshape((16, out_channels, t))
        _input_tiles(x[start:stop], v, top, left, th, tw)
        for e in range(16):
            gemm(function, NO_TRANS, NO_TRANS, out_channels, t, channels, u,
                 e * out_channels * channels, channels, v_buf, v_at + e * channels * t, t,
                 0.0, m_buf, m_at + e * out_channels * t, t)
        _output_tiles(m, y[start:stop], th, tw)
        add_terms_images(y.ravel(), bias, residual, start, stop, out_channels,
                         y.shape[2] * y.shape[3])


@njit(cache=True, nogil=True, fastmath=False)
def _weight_grad_pieces(function, x, gy, parts, v_buf, e_buf, top, left, th, tw, step, per,
                        lo, hi):
    """This piece's part of Z^T (16, C, O): over images [lo, hi), ``step`` images at a
    time, V[e] (C, T) @ E[e] (T, O) for the 16 tile elements, the first step's written,
    the later ones' added (beta 1), in image order."""
    channels, out_channels = x.shape[1], gy.shape[1]
    tiles = th * (tw + 1)
    piece = lo // per
    v_at = piece * 16 * step * tiles * channels
    e_at = piece * 16 * step * tiles * out_channels
    p_at = piece * 16 * channels * out_channels
    for start in range(lo, hi, step):
        stop = min(hi, start + step)
        t = (stop - start) * tiles
        beta = 0.0 if start == lo else 1.0
        v = v_buf[v_at:v_at + 16 * channels * t].reshape((16, channels, t))
        e = e_buf[e_at:e_at + 16 * t * out_channels].reshape((16, t, out_channels))
        _input_tiles(x[start:stop], v, top, left, th, tw)
        _grad_tiles(gy[start:stop], e, th, tw)
        for k in range(16):
            gemm(function, NO_TRANS, NO_TRANS, channels, out_channels, t, v_buf,
                 v_at + k * channels * t, t, e_buf, e_at + k * t * out_channels, out_channels,
                 beta, parts, p_at + k * channels * out_channels, out_channels)


def _conv(x, weight, flip, top, left, out_size, bias=None, residual=None):
    """The 3x3 convolution of x (N, C, H, W) with ``weight`` (O, C, 3, 3) (with ``flip``,
    the transposed conv's: (C, O, 3, 3), flipped), reading the input from row -top,
    column -left (zero outside x), output ``out_size``."""
    function = _cblas.address_for(x.dtype)
    if function is None or weight.dtype != x.dtype:
        return _conv_matmul(x, weight, flip, top, left, out_size, bias, residual)
    n, channels = x.shape[:2]
    u = _weight_tiles(weight, flip)                               # (16, O, C)
    out_channels = u.shape[1]
    th, tw = _tiles(out_size)
    y = _empty((n, out_channels) + tuple(out_size), dtype=x.dtype)
    pieces, step = _plan(n, channels, out_channels, th, tw, x.itemsize)
    columns = pieces * 16 * step * th * (tw + 1)
    _share(_conv_pieces, n, pieces, function, x, u.reshape(-1), y, _terms(bias, x.dtype),
           _terms(residual, x.dtype), _empty(columns * channels, dtype=x.dtype),
           _empty(columns * out_channels, dtype=x.dtype), top, left, th, tw, step)
    return y


def forward(x, weight, geom, taps, bias=None, residual=None):
    top, _, left, _ = geom.padding
    return _conv(np.ascontiguousarray(x), weight, False, top, left, geom.out_size, bias,
                 residual)


def input_grad(grad_y, weight, geom, taps):
    """The transposed convolution, a convolution of grad_y with the weight flipped in
    both axes and its channel axes swapped, reading from row -(2 - top)."""
    top, _, left, _ = geom.padding
    return _conv(np.ascontiguousarray(grad_y), weight, True, 2 - top, 2 - left, geom.in_size)


def weight_grad(x, grad_y, geom, taps):
    function = _cblas.address_for(x.dtype)
    if function is None or grad_y.dtype != x.dtype:
        return _weight_grad_matmul(x, grad_y, geom, taps)
    x, grad_y = np.ascontiguousarray(x), np.ascontiguousarray(grad_y)
    top, _, left, _ = geom.padding
    n, channels = x.shape[:2]
    out_channels = grad_y.shape[1]
    if n == 0:
        return np.zeros((out_channels, channels, 3, 3), dtype=x.dtype)
    th, tw = _tiles(geom.out_size)
    pieces, step = _plan(n, channels, out_channels, th, tw, x.itemsize)
    columns = pieces * 16 * step * th * (tw + 1)
    parts = _empty((pieces, 16, channels, out_channels), dtype=x.dtype)
    made = _share(_weight_grad_pieces, n, pieces, function, x, grad_y, parts.reshape(-1),
                  _empty(columns * channels, dtype=x.dtype),
                  _empty(columns * out_channels, dtype=x.dtype), top, left, th, tw, step)
    return _weight_from_parts_of(parts, made, x.dtype)


# --- without numpy's OpenBLAS GEMM: np.matmul chunk by chunk ---------------------------------
def _conv_matmul(x, weight, flip, top, left, out_size, bias=None, residual=None):
    n, channels = x.shape[:2]
    u = _weight_tiles(weight, flip)
    out_channels = u.shape[1]
    th, tw = _tiles(out_size)
    y = _empty((n, out_channels) + tuple(out_size), dtype=x.dtype)
    chunks = _chunks(n, channels, out_channels, th, tw, x.itemsize)
    k_max = chunks[0][1] - chunks[0][0]
    buffers = _Buffers((channels, out_channels), k_max, th * (tw + 1), x.dtype)

    def chunk(slot, start, stop):
        v, m = buffers.get(slot, (stop - start) * th * (tw + 1))
        _input_tiles(x[start:stop], v, top, left, th, tw)
        np.matmul(u, v, out=m)
        _output_tiles(m, y[start:stop], th, tw)
        add_terms(y[start:stop], bias, None if residual is None else residual[start:stop])

    map_chunks(chunk, chunks)
    return y


def _weight_grad_matmul(x, grad_y, geom, taps):
    x, grad_y = np.ascontiguousarray(x), np.ascontiguousarray(grad_y)
    top, _, left, _ = geom.padding
    n, channels = x.shape[:2]
    out_channels = grad_y.shape[1]
    th, tw = _tiles(geom.out_size)
    chunks = _chunks(n, channels, out_channels, th, tw, x.itemsize)
    k_max = chunks[0][1] - chunks[0][0]
    buffers = _Buffers((channels, out_channels), k_max, th * (tw + 1), x.dtype)
    total = np.zeros((16, channels, out_channels), dtype=x.dtype)      # Z^T

    def chunk(slot, start, stop, add):
        cols = (stop - start) * th * (tw + 1)
        v, e = buffers.get(slot, cols)
        e = e.reshape(16, cols, out_channels)                # tiles by channels
        _input_tiles(x[start:stop], v, top, left, th, tw)
        _grad_tiles(grad_y[start:stop], e, th, tw)
        add(0, np.matmul(v, e))                              # (16, C, O)

    sum_chunks(chunk, chunks, [total])      # (in chunk order: the same sum every run)
    return _weight_from_parts_of(total[None], 1, x.dtype)
