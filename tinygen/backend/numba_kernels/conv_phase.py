"""4x4 stride-2 convolutions (the GANs' and conv VAEs' down- and up-sampling layers) as
2x2 stride-1 convolutions over phase planes, by Winograd's minimal filtering F(4x4, 2x2).

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

Status (measured, see ``conv.PHASE``): the GEMMs do take half the time im2col's do,
but the transforms and the channels-last staging cost about as much again, so the
path is only ~5% faster per fwd+dx+dw at one thread, and F(4x4, 2x2)'s float32 error
(~3e-6 of the output against ~1e-7 for direct sums) is enough to flip the cpu suite's
DCGAN check.  So it is off by default; the tests run it.

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
the direct sum; the tests hold it to 2e-5 of the reference, float64 to 1e-12.)

    forward      M[e] (T, O)  = X[e] (T, 4C) @ U[e] (4C, O),  U = G v G^T,  X = B^T d B
                 then y = A^T M A per tile, the rows/columns past the output dropped
    input grad   the forward's machinery on grad_y (read from row and column -1, zero
                 past its end) with the phase weight flipped and its channel axes
                 swapped: the phase planes' gradient, copied into gx
    weight grad  the adjoint of the forward in U: with E = A gy A^T per tile (gy zero
                 past the output),  U'[e] (4C, O) = sum over chunks X[e]^T @ E[e],
                 then gv = G^T U' G, spread back to the 4x4 taps

Layout.  A chunk of k images has T = k*th*tw tile columns t = (n*th + a)*tw + b, and
every tile array holds the channels innermost, (25, T, channels): see "staging".

Non-finite inputs: a tile mixes 25 inputs, so an inf in x reaches outputs and
weight-gradient taps beside its own, as inf or NaN (as in conv_winograd.py).

Chunks of images are shared out among threads (``chunks.map_chunks``).
"""
import numpy as np
from numba import njit

from .chunks import chunk_ranges, map_chunks
from .conv_bounds import valid_range as _valid_range

# Every buffer and output the code below fills comes from ``_empty`` (the tests swap in
# a NaN-filled one, so that an element a kernel forgets to write cannot pass for a zero
# that fresh memory happened to hold).
_empty = np.empty

# Tile columns per chunk (images times tiles per image): small enough for OpenBLAS's
# small-matrix GEMMs (see above), large enough that the per-chunk Python stays small.
TILE_COLUMNS = 64

# The weight transform G (its transpose serves the weight gradient).
_G = np.array([[0.5, 0.0], [0.5, 0.5], [1 / 6, -1 / 6], [1 / 6, 1 / 3], [0.0, 1.0]])

# At least this many input and output channels (one group only): narrower layers (the
# GANs' first and last, C=1) are not GEMM-bound.
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
# transform took twice its GEMM's time.)  So a chunk is first staged channels-last, and
# the GEMMs run the other way round, (T, 4C) @ (4C, O), tiles by channels.
@njit(cache=True, nogil=True, fastmath=False)
def _stage(a, out, top, left):
    """out[n, top + h, left + w, c] = a[n, c, h, w] where that fits in out, zero
    elsewhere: a chunk channels-last, padded."""
    k, channels, height, width = a.shape
    rows, cols = out.shape[1], out.shape[2]
    out[...] = 0
    h_hi = min(height, rows - top)
    w_hi = min(width, cols - left)
    for n in range(k):
        for c in range(channels):
            for h in range(max(0, -top), h_hi):
                src = a[n, c, h]
                dst = out[n, top + h, left:, c]
                for w in range(max(0, -left), w_hi):
                    dst[w] = src[w]


# --- transforms -----------------------------------------------------------------------------
# Constants are written as sums (d + d, not 2*d): a Python int times a float32 is a
# float64 in numba, which would make the arithmetic float64.
@njit(cache=True, nogil=True, fastmath=False)
def _tiles_in(src, out, th, tw, ra, ri, r0, cb, cj, per, width, lo, tmp):
    """out[5u + v, t, lo:lo + width] = (B^T d B)[u, v] for every tile t = (n*th + a)*tw + b
    of the staged src (k, rows, columns*per), d[i, j] = the run of ``width`` values at
    row a*ra + i*ri + r0, column b*cb + j*cj (``per`` values a column).  ``tmp`` (25,
    width) holds d B."""
    k = src.shape[0]
    step = cj * per
    for n in range(k):
        for a in range(th):
            for b in range(tw):
                t = (n * th + a) * tw + b
                at = b * cb * per
                for i in range(5):  # d B: along each tile row
                    row = src[n, a * ra + i * ri + r0]
                    d0 = row[at:at + width]
                    d1 = row[at + step:at + step + width]
                    d2 = row[at + 2 * step:at + 2 * step + width]
                    d3 = row[at + 3 * step:at + 3 * step + width]
                    d4 = row[at + 4 * step:at + 4 * step + width]
                    f = 5 * i
                    for e in range(width):
                        tmp[f, e] = (d0[e] + d0[e]) - d1[e] - (d2[e] + d2[e]) + d3[e]
                        tmp[f + 1, e] = (d1[e] + d1[e]) + d2[e] - d3[e]
                        tmp[f + 2, e] = (d2[e] + d2[e] + d2[e]) - (d1[e] + d1[e]) - d3[e]
                        tmp[f + 3, e] = d3[e] - d1[e]
                        tmp[f + 4, e] = (d1[e] + d1[e]) - d2[e] - (d3[e] + d3[e]) + d4[e]
                for v in range(5):  # B^T (d B): along each tile column
                    o0 = out[v, t, lo:lo + width]
                    o1 = out[5 + v, t, lo:lo + width]
                    o2 = out[10 + v, t, lo:lo + width]
                    o3 = out[15 + v, t, lo:lo + width]
                    o4 = out[20 + v, t, lo:lo + width]
                    for e in range(width):
                        e0, e1, e2 = tmp[v, e], tmp[5 + v, e], tmp[10 + v, e]
                        e3, e4 = tmp[15 + v, e], tmp[20 + v, e]
                        o0[e] = (e0 + e0) - e1 - (e2 + e2) + e3
                        o1[e] = (e1 + e1) + e2 - e3
                        o2[e] = (e2 + e2 + e2) - (e1 + e1) - e3
                        o3[e] = e3 - e1
                        o4[e] = (e1 + e1) - e2 - (e3 + e3) + e4


@njit(cache=True, nogil=True, fastmath=False)
def _input_tiles(xs, out, th, tw, channels):
    """out (25, T, 4C), channels (r, s, c): the tiles of the four phase planes of the
    staged chunk xs (k, rows, columns*C), x_padded channels-last.  Phase row r of tile
    (a, b) reads padded rows 8a + 2i + r, and both column phases s at once: columns
    8b + 2j + s are the run of 2C values at column 8b + 2j."""
    tmp = np.empty((25, 2 * channels), dtype=xs.dtype)
    for r in range(2):
        _tiles_in(xs, out, th, tw, 8, 2, r, 8, 2, channels, 2 * channels,
                  2 * r * channels, tmp)


@njit(cache=True, nogil=True, fastmath=False)
def _grad_input_tiles(gs, out, th, tw, channels):
    """out (25, T, O): the tiles of the staged chunk gs (k, rows, columns*O), grad_y
    channels-last from row and column -1."""
    tmp = np.empty((25, channels), dtype=gs.dtype)
    _tiles_in(gs, out, th, tw, 4, 1, 0, 4, 1, channels, channels, 0, tmp)


@njit(cache=True, nogil=True, fastmath=False)
def _tiles_out(m, th, tw, n, res, tmp):
    """res[4a + p, 4b + q, :] = (A^T M A)[p, q] for image n's tiles of m (25, T, L)."""
    width = m.shape[2]
    for a in range(th):
        for b in range(tw):
            t = (n * th + a) * tw + b
            for u in range(5):  # M A: along each tile row
                m0, m1, m2 = m[5 * u, t], m[5 * u + 1, t], m[5 * u + 2, t]
                m3, m4 = m[5 * u + 3, t], m[5 * u + 4, t]
                s0, s1, s2, s3 = tmp[u, 0], tmp[u, 1], tmp[u, 2], tmp[u, 3]
                for e in range(width):
                    x2 = m3[e] + m3[e]
                    x4 = x2 + x2
                    s0[e] = m0[e] + m1[e] + m2[e] + m3[e]
                    s1[e] = m1[e] - m2[e] + x2
                    s2[e] = m1[e] + m2[e] + x4
                    s3[e] = m1[e] - m2[e] + (x4 + x4) + m4[e]
            for q in range(4):  # A^T (M A): along each tile column
                e0, e1, e2, e3, e4 = tmp[0, q], tmp[1, q], tmp[2, q], tmp[3, q], tmp[4, q]
                r0, r1 = res[4 * a, 4 * b + q], res[4 * a + 1, 4 * b + q]
                r2, r3 = res[4 * a + 2, 4 * b + q], res[4 * a + 3, 4 * b + q]
                for e in range(width):
                    x2 = e3[e] + e3[e]
                    x4 = x2 + x2
                    r0[e] = e0[e] + e1[e] + e2[e] + e3[e]
                    r1[e] = e1[e] - e2[e] + x2
                    r2[e] = e1[e] + e2[e] + x4
                    r3[e] = e1[e] - e2[e] + (x4 + x4) + e4[e]


@njit(cache=True, nogil=True, fastmath=False)
def _output_tiles(m, y, th, tw):
    """y[n, o, p, q] = the tiles' outputs of m (25, T, O), inside y."""
    k, channels, hout, wout = y.shape
    res = np.empty((4 * th, 4 * tw, channels), dtype=y.dtype)
    tmp = np.empty((5, 4, channels), dtype=y.dtype)
    for n in range(k):
        _tiles_out(m, th, tw, n, res, tmp)
        for o in range(channels):
            for p in range(hout):
                dst = y[n, o, p]
                src = res[p]
                for q in range(wout):
                    dst[q] = src[q, o]


@njit(cache=True, nogil=True, fastmath=False)
def _phase_output_tiles(m, gx, top, left, th, tw):
    """gx[n, c, 2a + r - top, 2b + s - left] = the tiles' outputs of m (25, T, 4C) at
    channel (r, s, c), phase-plane position (a, b): the phase planes' gradient back in
    the input's shape (each element of gx is one phase-plane element)."""
    k, channels, height, width = gx.shape
    res = np.empty((4 * th, 4 * tw, 4 * channels), dtype=gx.dtype)
    tmp = np.empty((5, 4, 4 * channels), dtype=gx.dtype)
    for n in range(k):
        _tiles_out(m, th, tw, n, res, tmp)
        for c in range(channels):
            for r in range(2):
                a_lo, a_hi = _valid_range(r - top, 2, height, 4 * th)
                for s in range(2):
                    b_lo, b_hi = _valid_range(s - left, 2, width, 4 * tw)
                    ch = (2 * r + s) * channels + c
                    for a in range(a_lo, a_hi):
                        dst = gx[n, c, 2 * a + r - top][2 * b_lo + s - left:][::2]
                        src = res[a]
                        for b in range(b_hi - b_lo):
                            dst[b] = src[b_lo + b, ch]


@njit(cache=True, nogil=True, fastmath=False)
def _grad_tiles(gy, et, th, tw):
    """et[5u + v, (n*th + a)*tw + b, o] = (A g A^T)[u, v] for the 4x4 block g of gy[n, o]
    at rows 4a.., columns 4b.. (zero past gy's edge): the adjoint of ``_output_tiles``
    (gy is staged channels-last, image by image)."""
    k, channels, hout, wout = gy.shape
    g = np.zeros((4 * th, 4 * tw, channels), dtype=gy.dtype)
    h = np.empty((5, 4, channels), dtype=gy.dtype)
    for n in range(k):
        for o in range(channels):
            for p in range(hout):
                src = gy[n, o, p]
                dst = g[p]
                for q in range(wout):
                    dst[q, o] = src[q]
        for a in range(th):
            for b in range(tw):
                t = (n * th + a) * tw + b
                for q in range(4):  # A g: along each tile column
                    g0, g1 = g[4 * a, 4 * b + q], g[4 * a + 1, 4 * b + q]
                    g2, g3 = g[4 * a + 2, 4 * b + q], g[4 * a + 3, 4 * b + q]
                    h0, h1, h2, h3, h4 = h[0, q], h[1, q], h[2, q], h[3, q], h[4, q]
                    for o in range(channels):
                        x2 = g1[o] + g1[o]
                        x4 = g2[o] + g2[o]
                        x4 = x4 + x4
                        x8 = g3[o] + g3[o]
                        x8 = x8 + x8
                        h0[o] = g0[o]
                        h1[o] = g0[o] + g1[o] + g2[o] + g3[o]
                        h2[o] = g0[o] - g1[o] + g2[o] - g3[o]
                        h3[o] = g0[o] + x2 + x4 + (x8 + x8)
                        h4[o] = g3[o]
                for u in range(5):  # (A g) A^T: along each tile row
                    f0, f1, f2, f3 = h[u, 0], h[u, 1], h[u, 2], h[u, 3]
                    o0, o1, o2 = et[5 * u, t], et[5 * u + 1, t], et[5 * u + 2, t]
                    o3, o4 = et[5 * u + 3, t], et[5 * u + 4, t]
                    for o in range(channels):
                        x2 = f1[o] + f1[o]
                        x4 = f2[o] + f2[o]
                        x4 = x4 + x4
                        x8 = f3[o] + f3[o]
                        x8 = x8 + x8
                        o0[o] = f0[o]
                        o1[o] = f0[o] + f1[o] + f2[o] + f3[o]
                        o2[o] = f0[o] - f1[o] + f2[o] - f3[o]
                        o3[o] = f0[o] + x2 + x4 + (x8 + x8)
                        o4[o] = f3[o]


# --- the weight ------------------------------------------------------------------------------
# The weight's phase split and transforms are numpy reshapes and one small GEMM with
# GG[5i + j, 2i0 + j0] = G[i, i0] * G[j, j0] (a scalar loop over the channel pairs took
# 0.6 ms for a 64x32 weight).
_GG = np.einsum("ia,jb->ijab", _G, _G).reshape(25, 4)


def _weight_tiles(weight, flip=False):
    """U (25, 4C, O), channels (r, s, c): G v G^T of the phase weight
    v[i0, j0] = weight[o, c, 2i0 + r, 2j0 + s]; with ``flip`` the transposed conv's
    (25, O, 4C), v[i0, j0] = weight[o, c, 2(1 - i0) + r, 2(1 - j0) + s]."""
    out_channels, channels = weight.shape[:2]
    v = weight.reshape(out_channels, channels, 2, 2, 2, 2)        # (o, c, i0, r, j0, s)
    if flip:
        v = v[:, :, ::-1, :, ::-1, :].transpose(2, 4, 0, 3, 5, 1)  # (i0, j0, o, r, s, c)
    else:
        v = v.transpose(2, 4, 3, 5, 1, 0)                         # (i0, j0, r, s, c, o)
    u = np.matmul(_GG.astype(weight.dtype), v.reshape(4, -1))
    return u.reshape((25, out_channels, 4 * channels) if flip else
                     (25, 4 * channels, out_channels))


def _weight_from_tiles(z, out_channels, channels):
    """gw (O, C, 4, 4) from Z (25, 4C, O): G^T Z G per channel pair, back at the taps
    (2i0 + r, 2j0 + s)."""
    gv = np.matmul(_GG.T.astype(z.dtype), z.reshape(25, -1))    # (i0, j0, r, s, c, o)
    gv = gv.reshape(2, 2, 2, 2, channels, out_channels).transpose(5, 4, 0, 2, 1, 3)
    return np.ascontiguousarray(gv).reshape(out_channels, channels, 4, 4)


# --- the three ops ---------------------------------------------------------------------------
def _tiles(size):
    """Tiles of 4x4 outputs covering ``size`` (rows, columns)."""
    return tuple(-(-s // 4) for s in size)


def _chunks(n, th, tw):
    """Chunks of about TILE_COLUMNS tile columns (whole images; the threads each get one)."""
    return chunk_ranges(n, th * tw, TILE_COLUMNS)


class _Buffers:
    """Per thread slot, buffers of the given shapes for the largest chunk (the leading
    axis, images); ``get(slot, k)`` hands out views of them for k images, each
    contiguous (a (25, T, L) buffer's view is cut at T = k*per tiles)."""

    def __init__(self, k_max, shapes, dtype):
        self.k_max, self.shapes, self.dtype, self.slots = k_max, shapes, dtype, {}

    def get(self, slot, k):
        if slot not in self.slots:
            self.slots[slot] = [_empty(int(np.prod(s)) * self.k_max, dtype=self.dtype)
                                for _, s in self.shapes]
        views = []
        for buf, (kind, shape) in zip(self.slots[slot], self.shapes):
            if kind == "tiles":  # (25, k*tiles, L)
                views.append(buf[:25 * k * shape[1] * shape[2]].reshape(
                    25, k * shape[1], shape[2]))
            else:                # (k, ...)
                views.append(buf[:k * int(np.prod(shape))].reshape((k,) + shape))
        return views


def _x_stage_shape(th, tw, channels):
    """An image of x staged for the tiles: padded rows and columns 0 .. 8*tiles + 1."""
    return (8 * th + 2, (8 * tw + 2) * channels)


def forward(x, weight, geom, taps):
    x = np.ascontiguousarray(x)
    top, _, left, _ = geom.padding
    n, channels = x.shape[:2]
    out_channels = weight.shape[0]
    th, tw = _tiles(geom.out_size)
    u = _weight_tiles(weight)                                     # (25, 4C, O)
    y = _empty((n, out_channels) + tuple(geom.out_size), dtype=x.dtype)
    chunks = _chunks(n, th, tw)
    buffers = _Buffers(chunks[0][1] - chunks[0][0], [
        ("image", _x_stage_shape(th, tw, channels)),
        ("tiles", (25, th * tw, 4 * channels)), ("tiles", (25, th * tw, out_channels))],
        x.dtype)

    def chunk(slot, start, stop):
        xs, v, m = buffers.get(slot, stop - start)
        _stage(x[start:stop], xs.reshape(xs.shape[0], xs.shape[1], -1, channels), top, left)
        _input_tiles(xs, v, th, tw, channels)
        np.matmul(v, u, out=m)
        _output_tiles(m, y[start:stop], th, tw)

    map_chunks(chunk, chunks)
    return y


def input_grad(grad_y, weight, geom, taps):
    """The transposed conv: the phase planes' gradient, a 2x2 stride-1 conv of grad_y
    read from row and column -1 with the flipped phase weight, over as many phase-plane
    rows and columns as the input has, then copied into the input's shape."""
    grad_y = np.ascontiguousarray(grad_y)
    top, _, left, _ = geom.padding
    height, width = geom.in_size
    n, out_channels = grad_y.shape[:2]
    channels = weight.shape[1]
    th, tw = _tiles(((height + top + 1) // 2, (width + left + 1) // 2))
    u = _weight_tiles(weight, flip=True)                           # (25, O, 4C)
    gx = _empty((n, channels, height, width), dtype=grad_y.dtype)
    chunks = _chunks(n, th, tw)
    buffers = _Buffers(chunks[0][1] - chunks[0][0], [
        ("image", (4 * th + 1, (4 * tw + 1) * out_channels)),
        ("tiles", (25, th * tw, out_channels)), ("tiles", (25, th * tw, 4 * channels))],
        grad_y.dtype)

    def chunk(slot, start, stop):
        gs, v, m = buffers.get(slot, stop - start)
        _stage(grad_y[start:stop], gs.reshape(gs.shape[0], gs.shape[1], -1, out_channels),
               1, 1)
        _grad_input_tiles(gs, v, th, tw, out_channels)
        np.matmul(v, u, out=m)
        _phase_output_tiles(m, gx[start:stop], top, left, th, tw)

    map_chunks(chunk, chunks)
    return gx


def weight_grad(x, grad_y, geom, taps):
    x, grad_y = np.ascontiguousarray(x), np.ascontiguousarray(grad_y)
    top, _, left, _ = geom.padding
    n, channels = x.shape[:2]
    out_channels = grad_y.shape[1]
    th, tw = _tiles(geom.out_size)
    chunks = _chunks(n, th, tw)
    buffers = _Buffers(chunks[0][1] - chunks[0][0], [
        ("image", _x_stage_shape(th, tw, channels)),
        ("tiles", (25, th * tw, 4 * channels)), ("tiles", (25, th * tw, out_channels))],
        x.dtype)
    sums = {}

    def chunk(slot, start, stop):
        xs, v, e = buffers.get(slot, stop - start)
        _stage(x[start:stop], xs.reshape(xs.shape[0], xs.shape[1], -1, channels), top, left)
        _input_tiles(xs, v, th, tw, channels)
        _grad_tiles(grad_y[start:stop], e, th, tw)
        z = np.matmul(v.transpose(0, 2, 1), e)                      # (25, 4C, O)
        if slot in sums:
            sums[slot] += z
        else:
            sums[slot] = z

    map_chunks(chunk, chunks)
    return _weight_from_tiles(sum(sums.values()), out_channels, channels)
