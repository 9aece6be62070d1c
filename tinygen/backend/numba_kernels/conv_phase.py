"""4x4 stride-2 convolutions (the GANs' and conv VAEs' down- and up-sampling layers) as
2x2 stride-1 convolutions over phase planes, by Winograd's minimal filtering: F(4x4,
2x2) for the forward and weight gradient, F(2x2, 2x2) for the input gradient.

Same results as ``tinygen/backend/reference/conv.py`` (to rounding); ``conv.py`` in
this package sends it the convs ``serves`` accepts (a dense 4x4 kernel, stride 2,
dilation 1, one group, enough channels).

Phase planes (space-to-depth).  Split the padded input by row and column parity,
S[(c, r, s), a, b] = x_padded[c, 2a + r, 2b + s], and the weight alike,
V[o, (c, r, s), i, j] = w[o, c, 2i + r, 2j + s] (i, j in {0, 1}): then

    y[o, p, q] = sum over (c, r, s), i, j of  V[o, (c, r, s), i, j] * S[(c, r, s), p + i, q + j]

a stride-1 2x2 conv over 4C channels.  Its input gradient is the stride-1 transposed
conv into the phase planes, which land back in the input's shape by the inverse split
(every input element is one phase-plane element: a copy, no adds).

Why.  On im2col (the path these convs take) the GEMMs alone, 3 x 0.2 GFLOP per step
of GAN D's second layer at OpenBLAS's ~120 GFLOP/s here, take as long as PyTorch's
whole step (oneDNN's direct conv, ~150 GFLOP/s), and the gathers 40% more.  Winograd
F(4x4, 2x2) computes a 4x4 block of outputs from a 5x5 tile of a phase plane with 25
products per (output, input) channel pair instead of 64: 0.51x the multiplies on a 7x7
output (whose 8x8 of tiles computes one row and column more), as 25 GEMMs of (O, 4C)
by (4C, tiles).  And the GEMMs are small: with about TILE_COLUMNS tile columns per
chunk OpenBLAS takes its small-matrix kernels (no packing; M*N*K up to ~1e6), which
run (64, 128) @ (128, 64) at ~150-170 GFLOP/s here against ~115 with 256 or more
columns.

Measured (1 thread, GAN D's layer, see ``conv.PHASE``): the GEMMs take about half of
im2col's time; the transforms and the channels-last staging cost about as much again:
fwd+dx+dw 6.0 ms against 7.4 on im2col (PyTorch ~5.9).

For one tile (5x5 phase-plane values d, 4x4 outputs y) and one channel pair, with the
phase weight v (2x2):

    y = A^T [ (G v G^T) * (B^T d B) ] A        (* elementwise; summed over channels)

    B^T = [[2, -1, -2, 1, 0], [0, 2, 1, -1, 0], [0, -2, 3, -1, 0], [0, -1, 0, 1, 0],
           [0, 2, -1, -2, 1]]
    G   = [[1/2, 0], [1/2, 1/2], [1/6, -1/6], [1/6, 1/3], [0, 1]]
    A^T = [[1, 1, 1, 1, 0], [0, 1, -1, 2, 0], [0, 1, 1, 4, 0], [0, 1, -1, 8, 1]]

(Toom-Cook at the points 0, 1, -1, 2 and infinity, B^T's rows scaled to integers and G's
by the inverse.  Of the four point sets {0, 1, -1, +-2 or +-1/2} this one had the
smallest float32 error, ~9e-7 of the largest output over 128 channels against ~6e-8 for
the direct sum, 3e-6 (relative L2) on GAN D's layer; the tests hold it to 2e-5 of the
reference, float64 to 1e-12.)

    forward      M[e] (T, O)  = X[e] (T, 4C) @ U[e] (4C, O),  U = G v G^T,  X = B^T d B
                 then y = A^T M A per tile, the rows/columns past the output dropped
    input grad   a 2x2 stride-1 conv of grad_y (read from row and column -1, zero
                 past its end) with the phase weight flipped and its channel axes
                 swapped, by F(2x2, 2x2) (see there why): the phase planes' gradient,
                 copied into gx
    weight grad  the adjoint of the forward in U: with E = A gy A^T per tile (gy zero
                 past the output),  U'[e]^T (O, 4C) = sum over chunks E[e]^T @ X[e],
                 then gv = G^T U' G, spread back to the 4x4 taps

Layout.  A chunk of k images has T = k*th*tw tile columns t = (n*th + a)*tw + b, and
every tile array holds the channels innermost, (25, T, channels): see "staging".

Non-finite inputs: a tile mixes 25 inputs (the input gradient's, 9), so an inf reaches
results beside its own, as inf or NaN (as in conv_winograd.py).

Each op is one compiled kernel on pieces of images shared out among threads
(``chunks.share_pieces``), its small GEMMs cblas calls by address (``_cblas``); the
weight gradient's per-piece sums are added in piece order (the same sum every run).
Without numpy's OpenBLAS GEMM the same steps run as Python chunks through np.matmul
(``chunks.map_chunks`` / ``sum_chunks``, in chunk order).  See "the compiled path".
"""
import numpy as np
from numba import njit

from . import _cblas
from ._cblas import NO_TRANS, TRANS, gemm
from .chunks import (chunk_ranges, image_pieces, map_chunks, share_images, share_range,
                     sum_chunks)
from .conv_bounds import add_terms, add_terms_images, terms_for_kernel as _terms

# Every buffer and output the code below fills comes from ``_empty`` (the tests swap in
# a NaN-filled one, so that an element a kernel forgets to write cannot pass for a zero
# that fresh memory happened to hold).
_empty = np.empty

# Tile columns per chunk (images times tiles per image): small enough for OpenBLAS's
# small-matrix GEMMs (see above; 1 thread, GAN D's 25 products: ~190 GFLOP/s for 32 or
# 64 columns) and for the buffers (each thread holds (25, columns, 4C + O) values).
TILE_COLUMNS = 32

# The weight transform G (its transpose serves the weight gradient).
_G = np.array([[0.5, 0.0], [0.5, 0.5], [1 / 6, -1 / 6], [1 / 6, 1 / 3], [0.0, 1.0]])

# At least this many input and output channels (one group only): narrower layers are
# not GEMM-bound, and the transforms cost more than im2col's gathers.  Measured quiet, 1
# thread, phase / im2col, min of 3 interleaved (session 15; an earlier, loaded
# measurement had put the break-even at 16): fwd+dx+dw 8->8 14x14 (64 images) 1.22 /
# 1.26 ms, 8->16 1.22 / 1.40, 16->8 1.58 / 2.12, 32->8 28x28 (32) 5.73 / 7.97, the conv
# VAE decoder's last layer (transposed 32->8, 14x14, 128 images) 10.63 / 11.09, its
# forward alone on an IS pass of 512 samples 11.29 / 14.74; but 4->32 28x28 4.74 / 3.61,
# and 1->32 (a first layer) 3.12 / 1.04.  At 2 threads: 16->8 1.74 / 2.41, 32->8 28x28
# 3.71 / 5.74, the IS pass 7.03 / 9.13, the decoder layer 6.17-7.84 / 6.80-7.49.
MIN_CHANNELS = 8


def serves(geom, taps, in_per_group, out_per_group):
    """A dense 4x4 kernel, stride 2, dilation 1, one group, at least MIN_CHANNELS each way."""
    return (tuple(geom.kernel) == (4, 4) and tuple(geom.stride) == (2, 2)
            and tuple(geom.dilation) == (1, 1) and geom.groups == 1 and len(taps) == 16
            and min(in_per_group, out_per_group) >= MIN_CHANNELS)


# --- staging ---------------------------------------------------------------------------------
# The transforms run along the CHANNELS: every array they read or write holds the
# channels innermost, so that each step of a tile transform is one loop over a
# contiguous run of C to 4C values (vectorised).  (Along the images instead, with k
# images innermost and k = 16 per chunk, the loops were 16 long and the forward's input
# transform took twice its GEMM's time.)  So each image is first staged channels-last,
# and the GEMMs run the other way round, (T, 4C) @ (4C, O), tiles by channels.
@njit(cache=True, nogil=True, fastmath=False)
def _stage(a, n, out, top, left):
    """out[top + h, left + w, c] = a[n, c, h, w] where that fits in out (rows, cols, C):
    image n channels-last, padded (out is zero elsewhere, and stays so from image to
    image: only the same interior is written).  (Flat arrays, unsigned offsets and the
    channels innermost, read with a stride and written in a run: 2.3x faster than
    views per row, 1.3x than the runs the other way round.)"""
    _, channels, height, width = a.shape
    rows, cols = out.shape[0], out.shape[1]
    src, dst = a.ravel(), out.ravel()
    plane, lanes = np.uint64(height * width), np.uint64(channels)
    for h in range(max(0, -top), min(height, rows - top)):
        for w in range(max(0, -left), min(width, cols - left)):
            s = np.uint64(((n * channels) * height + h) * width + w)
            d = np.uint64(((top + h) * cols + left + w) * channels)
            for c in range(lanes):
                dst[d + c] = src[s + c * plane]


# --- transforms -----------------------------------------------------------------------------
# The kernels index FLAT arrays with unsigned offsets: a view cut per run (row[at:at + w])
# costs a reference count taken and dropped, ~20 ns, more than the 64-long loop over it
# (a tile row's transform: 175 ns with views, 18 ns flat), and unsigned indices need no
# negative-index wraparound, so LLVM vectorises the loops over the channels.  Constants
# are written as sums (d + d, not 2*d): a Python int times a float32 is a float64 in
# numba, which would make the arithmetic float64.
_U = np.uint64


@njit(cache=True, nogil=True, fastmath=False)
def _tiles_in(src, out, n, rows, cols, per, th, tw, ra, ri, r0, cb, cj, width, lo, lanes,
              tmp):
    """out[5u + v, t, lo:lo + width] = (B^T d B)[u, v] for every tile t = (n*th + a)*tw + b
    of image n staged in src (rows, cols*per), flat, d[i, j] = the run of ``width``
    values at row a*ra + i*ri + r0, column b*cb + j*cj; out (25, T, lanes) and tmp
    (25, width) flat."""
    w = _U(width)
    row_len = _U(cols * per)
    step = _U(cj * per)
    plane = _U(out.shape[0] // (25 * lanes)) * _U(lanes)
    two, three, four = _U(2), _U(3), _U(4)
    for a in range(th):
        for b in range(tw):
            t = _U((n * th + a) * tw + b)
            at = _U(b * cb * per)
            for i in range(5):  # d B: along each tile row
                r = at + _U(a * ra + i * ri + r0) * row_len
                f = _U(5 * i) * w
                for e in range(w):
                    d0 = src[r + e]
                    d1 = src[r + step + e]
                    d2 = src[r + two * step + e]
                    d3 = src[r + three * step + e]
                    d4 = src[r + four * step + e]
                    tmp[f + e] = (d0 + d0) - d1 - (d2 + d2) + d3
                    tmp[f + w + e] = (d1 + d1) + d2 - d3
                    tmp[f + two * w + e] = (d2 + d2 + d2) - (d1 + d1) - d3
                    tmp[f + three * w + e] = d3 - d1
                    tmp[f + four * w + e] = (d1 + d1) - d2 - (d3 + d3) + d4
            base = t * _U(lanes) + _U(lo)
            for v in range(5):  # B^T (d B): along each tile column
                g = _U(v) * w
                o = _U(v) * plane + base
                for e in range(w):
                    e0 = tmp[g + e]
                    e1 = tmp[_U(5) * w + g + e]
                    e2 = tmp[_U(10) * w + g + e]
                    e3 = tmp[_U(15) * w + g + e]
                    e4 = tmp[_U(20) * w + g + e]
                    out[o + e] = (e0 + e0) - e1 - (e2 + e2) + e3
                    out[_U(5) * plane + o + e] = (e1 + e1) + e2 - e3
                    out[_U(10) * plane + o + e] = (e2 + e2 + e2) - (e1 + e1) - e3
                    out[_U(15) * plane + o + e] = e3 - e1
                    out[_U(20) * plane + o + e] = (e1 + e1) - e2 - (e3 + e3) + e4


@njit(cache=True, nogil=True, fastmath=False)
def _input_tiles(x, out, top, left, th, tw):
    """out (25, T, 4C), channels (r, s, c): the tiles of the four phase planes of every
    image of the chunk x (k, C, H, W), staged one by one channels-last and padded.  Phase
    row r of tile (a, b) reads padded rows 8a + 2i + r, and both column phases s at
    once: columns 8b + 2j + s are the run of 2C values at column 8b + 2j."""
    k, channels = x.shape[:2]
    rows, cols = 8 * th + 2, 8 * tw + 2
    xs = np.zeros((rows, cols, channels), dtype=x.dtype)
    tmp = np.empty(25 * 2 * channels, dtype=x.dtype)
    flat, dst = xs.ravel(), out.ravel()
    for n in range(k):
        _stage(x, n, xs, top, left)
        for r in range(2):
            _tiles_in(flat, dst, n, rows, cols, channels, th, tw, 8, 2, r, 8, 2,
                      2 * channels, 2 * r * channels, 4 * channels, tmp)


@njit(cache=True, nogil=True, fastmath=False)
def _tiles_out(m, tiles, lanes, th, tw, n, res, tmp):
    """res[4a + p, 4b + q, :] = (A^T M A)[p, q] for image n's tiles of m (25, T, L), all
    flat: res (4th, 4tw, L), tmp (5, 4, L)."""
    w = _U(lanes)
    plane = _U(tiles) * w
    res_row = _U(4 * tw) * w
    two, three, four = _U(2), _U(3), _U(4)
    for a in range(th):
        for b in range(tw):
            t = _U((n * th + a) * tw + b)
            for u in range(5):  # M A: along each tile row
                src = _U(5 * u) * plane + t * w
                f = _U(4 * u) * w
                for e in range(w):
                    m0 = m[src + e]
                    m1 = m[src + plane + e]
                    m2 = m[src + two * plane + e]
                    m3 = m[src + three * plane + e]
                    m4 = m[src + four * plane + e]
                    x2 = m3 + m3
                    x4 = x2 + x2
                    tmp[f + e] = m0 + m1 + m2 + m3
                    tmp[f + w + e] = m1 - m2 + x2
                    tmp[f + two * w + e] = m1 + m2 + x4
                    tmp[f + three * w + e] = m1 - m2 + (x4 + x4) + m4
            for q in range(4):  # A^T (M A): along each tile column
                g = _U(q) * w
                dst = _U(4 * a) * res_row + _U(4 * b + q) * w
                for e in range(w):
                    e0 = tmp[g + e]
                    e1 = tmp[four * w + g + e]
                    e2 = tmp[_U(8) * w + g + e]
                    e3 = tmp[_U(12) * w + g + e]
                    e4 = tmp[_U(16) * w + g + e]
                    x2 = e3 + e3
                    x4 = x2 + x2
                    res[dst + e] = e0 + e1 + e2 + e3
                    res[dst + res_row + e] = e1 - e2 + x2
                    res[dst + two * res_row + e] = e1 + e2 + x4
                    res[dst + three * res_row + e] = e1 - e2 + (x4 + x4) + e4


@njit(cache=True, nogil=True, fastmath=False)
def _output_tiles(m, y, th, tw):
    """y[n, o, p, q] = the tiles' outputs of m (25, T, O), inside y."""
    k, channels, hout, wout = y.shape
    res_flat = np.empty(16 * th * tw * channels, dtype=y.dtype)
    tmp = np.empty(20 * channels, dtype=y.dtype)
    flat, out, lanes = m.ravel(), y.ravel(), _U(channels)
    for n in range(k):
        _tiles_out(flat, m.shape[1], channels, th, tw, n, res_flat, tmp)
        for o in range(channels):  # res (p, q, o) -> y[n] (o, p, q)
            for p in range(hout):
                d = _U(((n * channels + o) * hout + p) * wout)
                r = _U(p * 4 * tw * channels + o)
                for q in range(_U(wout)):
                    out[d + q] = res_flat[r + q * lanes]


# --- the input gradient: F(2x2, 2x2) --------------------------------------------------------
# The transposed conv runs on the smaller Winograd F(2x2, 2x2) (3x3 tiles, 9 products
# for 2x2 outputs instead of 16), whose transforms only add and subtract.  F(4x4, 2x2)
# here too took ~10% less time (1 thread, GAN D's layer), but its float32 rounding in
# the GAN generator's forward (a transposed conv) moved the DCGAN row's G.bn0.bias
# gradient by 3.7e-4 of its largest value, past the cpu suite's check; F(2x2, 2x2)'s
# rounding is the direct sums'.  With points 0, 1 and infinity:
#     B^T = [[1, -1, 0], [0, 1, 0], [0, -1, 1]],  G = [[1, 0], [1, 1], [0, 1]],
#     A^T = [[1, 1, 0], [0, 1, 1]]
_G2 = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


@njit(cache=True, nogil=True, fastmath=False)
def _grad_input_tiles(gy, out, th, tw):
    """out[3u + v, t, :] = (B^T d B)[u, v] for every tile t = (n*th + a)*tw + b of the
    chunk gy (k, O, Hout, Wout), each image staged channels-last from row and column -1:
    d[i, j] = the O values at staged row 2a + i, column 2b + j; out (9, T, O)."""
    k, channels = gy.shape[:2]
    rows, cols = 2 * th + 1, 2 * tw + 1
    gs = np.zeros((rows, cols, channels), dtype=gy.dtype)
    src, dst = gs.ravel(), out.ravel()
    tmp = np.empty(9 * channels, dtype=gy.dtype)
    w = _U(channels)
    line = _U(cols * channels)
    plane = _U(out.shape[1]) * w
    two = _U(2)
    for n in range(k):
        _stage(gy, n, gs, 1, 1)
        for a in range(th):
            for b in range(tw):
                t = _U((n * th + a) * tw + b)
                for i in range(3):  # d B: along each tile row
                    r = _U(2 * a + i) * line + _U(2 * b) * w
                    f = _U(3 * i) * w
                    for e in range(w):
                        d0 = src[r + e]
                        d1 = src[r + w + e]
                        d2 = src[r + two * w + e]
                        tmp[f + e] = d0 - d1
                        tmp[f + w + e] = d1
                        tmp[f + two * w + e] = d2 - d1
                for v in range(3):  # B^T (d B): along each tile column
                    g = _U(v) * w
                    o = _U(v) * plane + t * w
                    for e in range(w):
                        e0 = tmp[g + e]
                        e1 = tmp[_U(3) * w + g + e]
                        e2 = tmp[_U(6) * w + g + e]
                        dst[o + e] = e0 - e1
                        dst[_U(3) * plane + o + e] = e1
                        dst[_U(6) * plane + o + e] = e2 - e1


@njit(cache=True, nogil=True, fastmath=False)
def _phase_output_tiles(m, gx, top, left, th, tw):
    """gx[n, c, 2a + r - top, 2b + s - left] = the tiles' outputs (A^T M A) of m
    (9, T, 4C) at channel (r, s, c), phase-plane position (a, b): the phase planes'
    gradient back in the input's shape (each element of gx is one phase-plane element)."""
    k, channels, height, width = gx.shape
    lanes = 4 * channels
    w = _U(lanes)
    res = np.empty(4 * th * tw * lanes, dtype=gx.dtype)
    tmp = np.empty(6 * lanes, dtype=gx.dtype)
    flat, out = m.ravel(), gx.ravel()
    plane = _U(m.shape[1]) * w
    res_row = _U(2 * tw) * w
    two = _U(2)
    # gx column q is phase-plane column (q + left) // 2 of phase s = (q + left) % 2
    columns = np.empty(width, dtype=np.uint64)
    for q in range(width):
        columns[q] = _U(((q + left) // 2) * lanes + ((q + left) % 2) * channels)
    for n in range(k):
        for a in range(th):
            for b in range(tw):
                t = _U((n * th + a) * tw + b)
                for u in range(3):  # M A: along each tile row
                    src = _U(3 * u) * plane + t * w
                    f = _U(2 * u) * w
                    for e in range(w):
                        m1 = flat[src + plane + e]
                        tmp[f + e] = flat[src + e] + m1
                        tmp[f + w + e] = m1 + flat[src + two * plane + e]
                for q in range(2):  # A^T (M A): along each tile column
                    g = _U(q) * w
                    dst = _U(2 * a) * res_row + _U(2 * b + q) * w
                    for e in range(w):
                        e1 = tmp[two * w + g + e]
                        res[dst + e] = tmp[g + e] + e1
                        res[dst + res_row + e] = e1 + tmp[_U(4) * w + g + e]
        for c in range(channels):  # res (a, b, (r, s, c)) -> gx[n, c] row by row
            for h in range(height):
                p = h + top
                e = _U(p // 2) * res_row + _U((p % 2) * 2 * channels + c)
                d = _U(((n * channels + c) * height + h) * width)
                for q in range(_U(width)):
                    out[d + q] = res[e + columns[q]]


@njit(cache=True, nogil=True, fastmath=False)
def _grad_tiles(gy, et, th, tw):
    """et[5u + v, (n*th + a)*tw + b, o] = (A g A^T)[u, v] for the 4x4 block g of gy[n, o]
    at rows 4a.., columns 4b.. (zero past gy's edge): the adjoint of ``_output_tiles``
    (gy is staged channels-last, image by image)."""
    k, channels, hout, wout = gy.shape
    g = np.zeros((4 * th, 4 * tw, channels), dtype=gy.dtype)
    h = np.empty(20 * channels, dtype=gy.dtype)
    gf, out, gyf = g.ravel(), et.ravel(), gy.ravel()
    w = _U(channels)
    g_row = _U(4 * tw) * w
    plane = _U(et.shape[1]) * w
    two, three, four = _U(2), _U(3), _U(4)
    for n in range(k):
        for p in range(hout):  # gy[n] (o, p, q) -> g (p, q, o)
            for q in range(wout):
                d = _U(p) * g_row + _U(q) * w
                s = _U((n * channels * hout + p) * wout + q)
                for o in range(w):
                    gf[d + o] = gyf[s + o * _U(hout * wout)]
        for a in range(th):
            for b in range(tw):
                t = _U((n * th + a) * tw + b)
                for q in range(4):  # A g: along each tile column
                    at = _U(4 * a) * g_row + _U(4 * b + q) * w
                    f = _U(q) * w
                    for e in range(w):
                        g0 = gf[at + e]
                        g1 = gf[at + g_row + e]
                        g2 = gf[at + two * g_row + e]
                        g3 = gf[at + three * g_row + e]
                        x2 = g1 + g1
                        x4 = g2 + g2
                        x4 = x4 + x4
                        x8 = g3 + g3
                        x8 = x8 + x8
                        h[f + e] = g0
                        h[four * w + f + e] = g0 + g1 + g2 + g3
                        h[_U(8) * w + f + e] = g0 - g1 + g2 - g3
                        h[_U(12) * w + f + e] = g0 + x2 + x4 + (x8 + x8)
                        h[_U(16) * w + f + e] = g3
                for u in range(5):  # (A g) A^T: along each tile row
                    f = _U(4 * u) * w
                    dst = _U(5 * u) * plane + t * w
                    for e in range(w):
                        f0 = h[f + e]
                        f1 = h[f + w + e]
                        f2 = h[f + two * w + e]
                        f3 = h[f + three * w + e]
                        x2 = f1 + f1
                        x4 = f2 + f2
                        x4 = x4 + x4
                        x8 = f3 + f3
                        x8 = x8 + x8
                        out[dst + e] = f0
                        out[dst + plane + e] = f0 + f1 + f2 + f3
                        out[dst + two * plane + e] = f0 - f1 + f2 - f3
                        out[dst + three * plane + e] = f0 + x2 + x4 + (x8 + x8)
                        out[dst + four * plane + e] = f3


# --- the weight ------------------------------------------------------------------------------
# GG[5i + j, 2i0 + j0] = G[i, i0] * G[j, j0]: the weight's transform G v G^T of a 2x2
# phase weight v, flattened, as one (25, 4) matrix (F(2x2, 2x2)'s: (9, 4)).
_GG = np.einsum("ia,jb->ijab", _G, _G).reshape(25, 4)
_GG2 = np.einsum("ia,jb->ijab", _G2, _G2).reshape(9, 4)


@njit(cache=True, nogil=True, fastmath=False)
def _transform_weight(weight, gg, flip, u, lo, hi):
    """Rows [lo, hi) of U = GG v, the phase weight v[2i0 + j0] = w[o, c, 2i0 + r, 2j0 + s]
    transformed (gg (E, 4) in the dtype, the four terms added in order): U (E, 4C, O),
    rows (r, s, c); with ``flip`` the transposed conv's (E, O, 4C), rows o, of
    v[2i0 + j0] = w[o, c, 2(1 - i0) + r, 2(1 - j0) + s].  Each row's four phase values
    are gathered first, then every output row is one vectorised pass.  (A scatter into
    (4, 4C, O), then np.matmul by GG: 0.10 ms for a 64x32 weight, 0.38 ms for 128x64;
    this, shared out on 2 threads: 0.03 and 0.25 ms.)"""
    out_channels, channels = weight.shape[:2]
    lanes = 4 * channels
    width = lanes if flip else out_channels
    count = gg.shape[0]
    w, out = weight.ravel(), u.ravel()
    plane = lanes * out_channels
    p = np.empty(4 * width, dtype=u.dtype)
    for row in range(lo, hi):
        for q in range(width):
            if flip:    # row o, column (r, s, c): taps (2 + r, 2 + s), (2 + r, s), (r, 2 + s), (r, s)
                rs, c = q // channels, q % channels
                at = (row * channels + c) * 16 + (rs // 2) * 4 + rs % 2 + 10
                p[q], p[width + q] = w[at], w[at - 2]
                p[2 * width + q], p[3 * width + q] = w[at - 8], w[at - 10]
            else:       # row (r, s, c), column o: taps (r, s), (r, 2 + s), (2 + r, s), (2 + r, 2 + s)
                rs, c = row // channels, row % channels
                at = (q * channels + c) * 16 + (rs // 2) * 4 + rs % 2
                p[q], p[width + q] = w[at], w[at + 2]
                p[2 * width + q], p[3 * width + q] = w[at + 8], w[at + 10]
        p0, p1, p2, p3 = p[:width], p[width:2 * width], p[2 * width:3 * width], p[3 * width:]
        for e in range(count):
            g0, g1, g2, g3 = gg[e, 0], gg[e, 1], gg[e, 2], gg[e, 3]
            dst = out[e * plane + row * width:e * plane + (row + 1) * width]
            for q in range(width):
                dst[q] = g0 * p0[q] + g1 * p1[q] + g2 * p2[q] + g3 * p3[q]


def _weight_tiles(weight, gg, flip=False):
    """U (E, 4C, O), channels (r, s, c): G v G^T of the phase weight
    v[i0, j0] = weight[o, c, 2i0 + r, 2j0 + s], flattened by ``gg`` (E, 4); with
    ``flip`` the transposed conv's (E, O, 4C), v[i0, j0] = weight[o, c, 2(1 - i0) + r,
    2(1 - j0) + s].  Shared out by rows."""
    out_channels, channels = weight.shape[:2]
    shape = ((len(gg), out_channels, 4 * channels) if flip else
             (len(gg), 4 * channels, out_channels))
    u = _empty(shape, dtype=weight.dtype)
    share_range(_transform_weight, shape[1], u.size, np.ascontiguousarray(weight),
                gg.astype(weight.dtype), flip, u)
    return u


@njit(cache=True, nogil=True, fastmath=False)
def _weight_from_parts(parts, made, gg, gw, lo, hi):
    """gw[o] for the output channels [lo, hi): U'[:, o] = the first ``made`` pieces'
    parts (P, 25, O, 4C) added in piece order, then G^T U' G (gg: GG (25, 4) in the
    dtype, the 25 terms added in order) spread back to the 4x4 taps.  (Per output
    channel, along the 4C channels: the loops vectorise; shared out by channels.)"""
    out_channels, channels = gw.shape[:2]
    lanes = 4 * channels
    src, dst = parts.ravel(), gw.ravel()
    plane, piece = out_channels * lanes, 25 * out_channels * lanes
    total = np.empty(25 * lanes, dtype=gw.dtype)
    z = np.empty(4 * lanes, dtype=gw.dtype)
    for o in range(lo, hi):
        for e in range(25):
            row = total[e * lanes:(e + 1) * lanes]
            at = e * plane + o * lanes
            first = src[at:at + lanes]
            for j in range(lanes):
                row[j] = first[j]
            for p in range(1, made):
                more = src[p * piece + at:p * piece + at + lanes]
                for j in range(lanes):
                    row[j] += more[j]
        for k in range(4):
            out = z[k * lanes:(k + 1) * lanes]
            g0, row = gg[0, k], total[:lanes]
            for j in range(lanes):
                out[j] = g0 * row[j]
            for e in range(1, 25):
                g, row = gg[e, k], total[e * lanes:(e + 1) * lanes]
                for j in range(lanes):
                    out[j] += g * row[j]
        for c in range(channels):   # z[2i0 + j0, (2r + s)C + c] -> gw[o, c, 2i0 + r, 2j0 + s]
            at = (o * channels + c) * 16
            for i0 in range(2):
                for r in range(2):
                    for j0 in range(2):
                        for s in range(2):
                            dst[at + (2 * i0 + r) * 4 + 2 * j0 + s] = \
                                z[(2 * i0 + j0) * lanes + (2 * r + s) * channels + c]


def _weight_from_parts_of(parts, made, out_channels, channels, dtype):
    """gw (O, C, 4, 4) from the first ``made`` parts (P, 25, O, 4C) of U' (added in
    order: the same sum every run), shared out by output channels."""
    gw = _empty((out_channels, channels, 4, 4), dtype=dtype)
    share_range(_weight_from_parts, out_channels, made * parts[0].size, parts, made,
                _GG.astype(dtype), gw)
    return gw


# --- the three ops ---------------------------------------------------------------------------
def _tiles(size):
    """Tiles of 4x4 outputs covering ``size`` (rows, columns)."""
    return tuple(-(-s // 4) for s in size)


def _chunks(n, tiles, per=TILE_COLUMNS):
    """Chunks of about ``per`` tile columns (whole images; the threads each get one)."""
    return chunk_ranges(n, tiles, per)


def _products(v, u, m, block):
    """m = v @ u (E products of (T, K) @ (K, L)) in blocks of ``block`` rows: each small
    enough for OpenBLAS's small-matrix kernels."""
    for t in range(0, v.shape[1], block):
        np.matmul(v[:, t:t + block], u, out=m[:, t:t + block])


class _Buffers:
    """Per thread slot, one buffer per (E, tiles per image, L) shape given, for the
    largest chunk; ``get(slot, k)`` hands out contiguous (E, k*tiles, L) views of them."""

    def __init__(self, k_max, shapes, dtype):
        self.k_max, self.shapes, self.dtype, self.slots = k_max, shapes, dtype, {}

    def get(self, slot, k):
        if slot not in self.slots:
            self.slots[slot] = [_empty(int(np.prod(s)) * self.k_max, dtype=self.dtype)
                                for s in self.shapes]
        return [buf[:e * k * tiles * lanes].reshape(e, k * tiles, lanes)
                for buf, (e, tiles, lanes) in zip(self.slots[slot], self.shapes)]


# --- the compiled path: each op one numba kernel on pieces of images -------------------------
# With numpy's OpenBLAS GEMM found (``_cblas``), each op is one numba kernel (nogil) that
# runs a piece of the batch step by step -- tiles staged, the small per-element GEMMs
# called by address, the outputs written -- and the pieces are shared out by
# ``chunks.share_pieces``: no Python and no GIL hand-over per step.  (The chunks as
# Python closures made about a dozen GIL-holding calls each; on the 2-core VM the second
# thread gained little: GAN D's layer ran 1.51x PyTorch's time at 2 threads, 1.11x at 1.)
# A step is still about TILE_COLUMNS tile columns (whole images): the GEMMs stay small
# for OpenBLAS's small-matrix kernels.  Each piece's buffers are its own stretch of
# flat buffers made by the caller (``_empty``), the weight gradient's partial sums its
# own (25, O, 4C) block: the steps' products added into it (beta 1) in image order, the
# pieces' blocks added in piece order afterwards.  The pieces depend only on the batch
# and the thread count, so the bits are the same every run at a given thread count.
# Without the GEMM, the ``_*_matmul`` functions further down run the same steps as
# Python chunks through np.matmul (``map_chunks``, ``sum_chunks``).
#
# Measured (cpu_suite --quick, quiet, ours / PyTorch, before -> after): GAN D's layer
# 1.15 -> 0.95 at 1 thread, 1.56 -> 0.89 at 2; GAN G's 1.18 -> 0.95 and 1.77 -> 0.93.
# More pieces than threads (4 on 2 threads) made the forward ~10% slower; steps of 16
# or 64 tile columns instead of 32 were no faster (64: the input gradient 15-20% slower).

# How many pieces (one per thread, one below chunks.MIN_SHARED_MULTIPLY_ADDS), as
# conv_direct's (a module name, so that tests can replace it).
_pieces = image_pieces


def _images_per_step(tiles, columns=None):
    """Whole images of about ``columns`` (TILE_COLUMNS) tile columns (``tiles`` per
    image) a step."""
    return max(1, (TILE_COLUMNS if columns is None else columns) // max(1, tiles))


def _plan(n, tiles, multiply_adds, columns=None):
    """(pieces, images per step): no step longer than a piece (the buffers hold one
    step per piece)."""
    pieces = _pieces(n, multiply_adds)
    return pieces, max(1, min(_images_per_step(tiles, columns), -(-n // pieces)))


_share = share_images


@njit(cache=True, nogil=True, fastmath=False)
def _forward_pieces(function, x, u, y, bias, residual, v_buf, m_buf, top, left, th, tw, step,
                    per, lo, hi):
    """y for images [lo, hi), ``step`` images at a time: their input tiles (25, T, 4C) in
    this piece's part of v_buf, 25 products by U (25, 4C, O) into its part of m_buf,
    the tiles' outputs into y, + bias, + residual."""
    channels, out_channels = x.shape[1], y.shape[1]
    lanes, tiles = 4 * channels, th * tw
    piece = lo // per
    v_at = piece * 25 * step * tiles * lanes
    m_at = piece * 25 * step * tiles * out_channels
    for start in range(lo, hi, step):
        stop = min(hi, start + step)
        t = (stop - start) * tiles
        v = v_buf[v_at:v_at + 25 * t * lanes].reshape((25, t, lanes))
        m = m_buf[m_at:m_at + 25 * t * out_channels].reshape((25, t, out_channels))
        _input_tiles(x[start:stop], v, top, left, th, tw)
        for e in range(25):
            gemm(function, NO_TRANS, NO_TRANS, t, out_channels, lanes, v, e * t * lanes, lanes,
                 u, e * lanes * out_channels, out_channels, 0.0, m, e * t * out_channels,
                 out_channels)
        _output_tiles(m, y[start:stop], th, tw)
        add_terms_images(y.ravel(), bias, residual, start, stop, out_channels,
                         y.shape[2] * y.shape[3])


@njit(cache=True, nogil=True, fastmath=False)
def _input_grad_pieces(function, gy, u, gx, v_buf, m_buf, top, left, th, tw, step, block,
                       per, lo, hi):
    """gx for images [lo, hi), ``step`` images at a time: gy's F(2x2, 2x2) tiles (9, T, O)
    in this piece's part of v_buf, 9 products by U (9, O, 4C) in blocks of ``block``
    rows into its part of m_buf, the phase planes' gradient copied into gx."""
    out_channels, channels = gy.shape[1], gx.shape[1]
    lanes, tiles = 4 * channels, th * tw
    piece = lo // per
    v_at = piece * 9 * step * tiles * out_channels
    m_at = piece * 9 * step * tiles * lanes
    for start in range(lo, hi, step):
        stop = min(hi, start + step)
        t = (stop - start) * tiles
        v = v_buf[v_at:v_at + 9 * t * out_channels].reshape((9, t, out_channels))
        m = m_buf[m_at:m_at + 9 * t * lanes].reshape((9, t, lanes))
        _grad_input_tiles(gy[start:stop], v, th, tw)
        for e in range(9):
            for r in range(0, t, block):
                rows = min(block, t - r)
                gemm(function, NO_TRANS, NO_TRANS, rows, lanes, out_channels, v,
                     (e * t + r) * out_channels, out_channels, u, e * out_channels * lanes,
                     lanes, 0.0, m, (e * t + r) * lanes, lanes)
        _phase_output_tiles(m, gx[start:stop], top, left, th, tw)


@njit(cache=True, nogil=True, fastmath=False)
def _weight_grad_pieces(function, x, gy, parts, v_buf, e_buf, top, left, th, tw, step, per,
                        lo, hi):
    """This piece's part of U' (25, O, 4C): over images [lo, hi), ``step`` images at a
    time, E[e]^T (O, T) @ X[e] (T, 4C) for the 25 tile elements, the first step's
    written, the later ones' added (beta 1), in image order."""
    channels, out_channels = x.shape[1], gy.shape[1]
    lanes, tiles = 4 * channels, th * tw
    piece = lo // per
    v_at = piece * 25 * step * tiles * lanes
    e_at = piece * 25 * step * tiles * out_channels
    p_at = piece * 25 * out_channels * lanes
    for start in range(lo, hi, step):
        stop = min(hi, start + step)
        t = (stop - start) * tiles
        beta = 0.0 if start == lo else 1.0
        v = v_buf[v_at:v_at + 25 * t * lanes].reshape((25, t, lanes))
        e = e_buf[e_at:e_at + 25 * t * out_channels].reshape((25, t, out_channels))
        _input_tiles(x[start:stop], v, top, left, th, tw)
        _grad_tiles(gy[start:stop], e, th, tw)
        for k in range(25):
            gemm(function, TRANS, NO_TRANS, out_channels, lanes, t, e, k * t * out_channels,
                 out_channels, v, k * t * lanes, lanes, beta, parts,
                 p_at + k * out_channels * lanes, lanes)


def forward(x, weight, geom, taps, bias=None, residual=None):
    function = _cblas.address_for(x.dtype)
    if function is None or weight.dtype != x.dtype:
        return _forward_matmul(x, weight, geom, taps, bias, residual)
    x = np.ascontiguousarray(x)
    top, _, left, _ = geom.padding
    n, channels = x.shape[:2]
    out_channels = weight.shape[0]
    th, tw = _tiles(geom.out_size)
    u = _weight_tiles(weight, _GG).reshape(-1)                      # (25, 4C, O)
    y = _empty((n, out_channels) + tuple(geom.out_size), dtype=x.dtype)
    pieces, step = _plan(n, th * tw, n * th * tw * 25 * 4 * channels * out_channels)
    columns = pieces * 25 * step * th * tw
    _share(_forward_pieces, n, pieces, function, x, u, y, _terms(bias, x.dtype),
           _terms(residual, x.dtype), _empty(columns * 4 * channels, dtype=x.dtype),
           _empty(columns * out_channels, dtype=x.dtype), top, left, th, tw, step)
    return y


def input_grad(grad_y, weight, geom, taps):
    """The transposed conv: the phase planes' gradient, a 2x2 stride-1 conv (by F(2x2,
    2x2)) of grad_y read from row and column -1 with the flipped phase weight, over as
    many phase-plane rows and columns as the input has, then copied into the input's
    shape."""
    function = _cblas.address_for(grad_y.dtype)
    if function is None or weight.dtype != grad_y.dtype:
        return _input_grad_matmul(grad_y, weight, geom, taps)
    grad_y = np.ascontiguousarray(grad_y)
    top, _, left, _ = geom.padding
    height, width = geom.in_size
    n, out_channels = grad_y.shape[:2]
    channels = weight.shape[1]
    th, tw = _input_grad_tiles(height, width, top, left)
    u = _weight_tiles(weight, _GG2, flip=True).reshape(-1)          # (9, O, 4C)
    gx = _empty((n, channels, height, width), dtype=grad_y.dtype)
    # (F(2x2, 2x2)'s 9 tile elements take less room: steps of four times the columns,
    # the products in blocks of half that, still small for OpenBLAS)
    pieces, step = _plan(n, th * tw, n * th * tw * 9 * 4 * channels * out_channels,
                         4 * TILE_COLUMNS)
    columns = pieces * 9 * step * th * tw
    _share(_input_grad_pieces, n, pieces, function, grad_y, u, gx,
           _empty(columns * out_channels, dtype=grad_y.dtype),
           _empty(columns * 4 * channels, dtype=grad_y.dtype), top, left, th, tw, step,
           2 * TILE_COLUMNS)
    return gx


def weight_grad(x, grad_y, geom, taps):
    function = _cblas.address_for(x.dtype)
    if function is None or grad_y.dtype != x.dtype:
        return _weight_grad_matmul(x, grad_y, geom, taps)
    x, grad_y = np.ascontiguousarray(x), np.ascontiguousarray(grad_y)
    top, _, left, _ = geom.padding
    n, channels = x.shape[:2]
    out_channels = grad_y.shape[1]
    if n == 0:
        return np.zeros((out_channels, channels, 4, 4), dtype=x.dtype)
    th, tw = _tiles(geom.out_size)
    pieces, step = _plan(n, th * tw, n * th * tw * 25 * 4 * channels * out_channels)
    columns = pieces * 25 * step * th * tw
    parts = _empty((pieces, 25, out_channels, 4 * channels), dtype=x.dtype)
    made = _share(_weight_grad_pieces, n, pieces, function, x, grad_y, parts.reshape(-1),
                  _empty(columns * 4 * channels, dtype=x.dtype),
                  _empty(columns * out_channels, dtype=x.dtype), top, left, th, tw, step)
    return _weight_from_parts_of(parts, made, out_channels, channels, x.dtype)


def _input_grad_tiles(height, width, top, left):
    """F(2x2, 2x2) tiles covering the phase planes' rows and columns (as many as the
    input has, from padded row and column 0)."""
    return -(-((height + top + 1) // 2) // 2), -(-((width + left + 1) // 2) // 2)


# --- without numpy's OpenBLAS GEMM: np.matmul chunk by chunk ---------------------------------

def _forward_matmul(x, weight, geom, taps, bias=None, residual=None):
    x = np.ascontiguousarray(x)
    top, _, left, _ = geom.padding
    n, channels = x.shape[:2]
    out_channels = weight.shape[0]
    th, tw = _tiles(geom.out_size)
    u = _weight_tiles(weight, _GG)                                # (25, 4C, O)
    y = _empty((n, out_channels) + tuple(geom.out_size), dtype=x.dtype)
    chunks = _chunks(n, th * tw)
    buffers = _Buffers(chunks[0][1] - chunks[0][0], [
        (25, th * tw, 4 * channels), (25, th * tw, out_channels)],
        x.dtype)

    def chunk(slot, start, stop):
        v, m = buffers.get(slot, stop - start)
        _input_tiles(x[start:stop], v, top, left, th, tw)
        np.matmul(v, u, out=m)
        _output_tiles(m, y[start:stop], th, tw)
        add_terms(y[start:stop], bias, None if residual is None else residual[start:stop])

    map_chunks(chunk, chunks)
    return y


def _input_grad_matmul(grad_y, weight, geom, taps):
    grad_y = np.ascontiguousarray(grad_y)
    top, _, left, _ = geom.padding
    height, width = geom.in_size
    n, out_channels = grad_y.shape[:2]
    channels = weight.shape[1]
    th, tw = _input_grad_tiles(height, width, top, left)
    u = _weight_tiles(weight, _GG2, flip=True)                    # (9, O, 4C)
    gx = _empty((n, channels, height, width), dtype=grad_y.dtype)
    # (F(2x2, 2x2)'s 9 tile elements take less room: chunks of four times the columns,
    # whose calls from Python, ~20 us a chunk, were 20% of the op with 64; products of
    # 64 columns, (64, O) @ (O, 4C), still small for OpenBLAS)
    chunks = _chunks(n, th * tw, 4 * TILE_COLUMNS)
    buffers = _Buffers(chunks[0][1] - chunks[0][0], [
        (9, th * tw, out_channels), (9, th * tw, 4 * channels)],
        grad_y.dtype)

    def chunk(slot, start, stop):
        v, m = buffers.get(slot, stop - start)
        _grad_input_tiles(grad_y[start:stop], v, th, tw)
        _products(v, u, m, 2 * TILE_COLUMNS)
        _phase_output_tiles(m, gx[start:stop], top, left, th, tw)

    map_chunks(chunk, chunks)
    return gx


def _weight_grad_matmul(x, grad_y, geom, taps):
    x, grad_y = np.ascontiguousarray(x), np.ascontiguousarray(grad_y)
    top, _, left, _ = geom.padding
    n, channels = x.shape[:2]
    out_channels = grad_y.shape[1]
    th, tw = _tiles(geom.out_size)
    chunks = _chunks(n, th * tw)
    buffers = _Buffers(chunks[0][1] - chunks[0][0], [
        (25, th * tw, 4 * channels), (25, th * tw, out_channels)],
        x.dtype)
    # One sum for all threads (a sum per thread held 0.8 MB more per thread for GAN D),
    # a chunk's partial products added five tile elements at a time, in chunk order
    # (``sum_chunks``: the same sum every run).  A part kept for its turn is replaced.
    total = np.zeros((25, out_channels, 4 * channels), dtype=x.dtype)   # (25, O, 4C)
    parts = {}

    def chunk(slot, start, stop, add):
        v, e = buffers.get(slot, stop - start)
        _input_tiles(x[start:stop], v, top, left, th, tw)
        _grad_tiles(grad_y[start:stop], e, th, tw)
        e_t = e.transpose(0, 2, 1)
        for k, i in enumerate(range(0, 25, 5)):
            if slot not in parts:
                parts[slot] = _empty((5, out_channels, 4 * channels), dtype=x.dtype)
            np.matmul(e_t[i:i + 5], v[i:i + 5], out=parts[slot])
            if not add(k, parts[slot]):
                del parts[slot]

    sum_chunks(chunk, chunks, [total[i:i + 5] for i in range(0, 25, 5)])
    return _weight_from_parts_of(total[None], 1, out_channels, channels, x.dtype)
