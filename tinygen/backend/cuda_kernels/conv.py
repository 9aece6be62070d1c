"""CUDA 2-D convolution: the implicit-GEMM kernels of kernels/conv.cu.

Same functions, arguments and results as ``tinygen/backend/reference/conv.py`` (what
is computed) and ``tinygen/backend/numba_kernels/conv.py``; kernels/conv.cu explains
how.  This module checks the arrays, builds the tap tables, sizes the grids and
allocates the outputs with the inputs' array module: cupy arrays run on the GPU,
numpy arrays on the CUDA emulator (tests without a GPU).

Launch shapes (blocks of 256 threads; a GEMM block owns a BM x BN output tile):

    forward       grid (ceil(N*Hout*Wout / BN), ceil(Og / BM), groups*splits)
    input grad    grid (ceil(N*ceil(H/sh)*ceil(W/sw) / BN), ceil(Cg / BM), groups*sh*sw*splits)
                  -- one z slice per group, stride phase and split of K
    weight grad   grid (ceil(Cg*T / BN), ceil(Og / BM), groups*splits), then a
                  deterministic reduction of the splits (a second, 1-D launch); x is
                  zero-padded first (one pass over x) so that its gather tests nothing

The kernel, in order of preference (why: each is what keeps its case's main loop at or
above 80% of the FMA peak on paper, benchmarks/results/static-sm90.md; no GPU timing
exists):

1. A forward with one input channel per group (C = 1 first layers, depthwise convs),
   at most 32 taps and an output plane of a whole number of 16-byte runs (Hout*Wout a
   multiple of 4 floats or 2 doubles; it stores 16 bytes at a time):
   conv_forward_direct_t<taps: 9 for 9 (3x3), else rounded up to 8>, no GEMM (K is
   just the taps), grid (ceil(N*Hout*Wout / (256 * pixels per thread)), ceil(Og / 32),
   groups).
2. An input gradient with one input channel per group and a dense 4x4 stride-2 kernel
   (the GAN critic's first layer: WGAN-GP's penalty needs its input gradient):
   conv_input_grad_c1_k4s2, grid (ceil(N*tiles_h*tiles_w / 256), splits of Og, groups);
   a thread owns a 2 x 2*TQ tile of grad_x and keeps the grad_y values it reads in
   registers (the GEMM would have one row; grad_y is padded first so that the kernel
   tests nothing per element).
3. A forward or input gradient whose GEMM has at most 32 rows (Og, or Cg for the input
   gradient): the halo tile conv_halo_m16 / _m32 (BM = 16 / 32), grid
   (ceil(N*raster_h*raster_w / positions per block), ceil(M / BM), groups*splits).
   With so few rows a GEMM thread's register block would be 2x8 or 4x8 and each
   gathered im2col element would serve 16 or 32 FMAs (the m16 / m32 GEMM tiles this
   replaced: 36% / 60%); the halo tile loads each source channel once and lets every
   tap read it at its own offset (16 rows x 8 positions a thread).  A strided conv is
   a sum of stride-1 convs, one per stride phase: the forward reads x[ph::sh, pw::sw]
   (a copy of each phase) with the taps that land on it, the input gradient computes
   each phase's rows of grad_x from grad_y with the taps that reach them.  Tap lists
   whose offsets reach further than a block's positions (a very long dilation) run as
   several launches.
4. A weight gradient with at most 32 output channels per group: the halo weight
   gradient conv_weight_grad_halo_m16 (16 rows a block, two row blocks for 17-32), grid
   (ceil(Cg / channels per block), ceil(Og / 16), groups*splits), per stride phase of x
   and launch's taps, on rasters of grad_y and x built here (zeros around them: the
   kernel tests nothing) in which every tap reads x at a constant offset.
5. The implicit GEMM, whose tile is 64x256 for M up to 64 (the 64-channel layers) and
   128x128 above that when it still fills one wave of the GPU (one block per
   multiprocessor), else 64x256.

When the blocks of a forward or input-gradient launch do not fill one wave, K (the
GEMM's K, or the halo tile's source channels) is split (split-K, summed by a second
launch in split order: deterministic).  A forward or input-gradient launch takes at
most 32 taps (kernels/conv.cu keeps one bit, or one shared offset, per tap); longer tap
lists run as several launches whose results are summed the same way.
"""
import functools

import numpy as np

from .. import array_module
from .launch import launch

THREADS = 256
_DTYPE_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
# The GEMM tiles (name, BM, BN) from the smallest row count up (at most 32 rows take the
# halo tiles); the entry points are conv_<op>_<name>_<dt>.
_TILES = (("m64", 64, 256),)
_LARGE_TILE = ("m128", 128, 128)
# The halo tiles (kernels/conv.cu, conv_halo_*): (name, BM), and the raster positions a
# block covers, per tile and dtype (HaloTile::kPixels); a tap may reach that far.
_HALO_TILES = (("m16", 16), ("m32", 32))
_HALO_PIXELS = {("m16", "f32"): 2048, ("m32", "f32"): 1024, ("m16", "f64"): 1024,
                ("m32", "f64"): 512}
_MIN_HALO_SPLIT = 4       # source channels per split of a halo launch, at least
# Blocks of each tile resident per multiprocessor (kernels/conv.cu's __launch_bounds__).
_BLOCKS_PER_SM = {"m64": 1, "m128": 1, "halo": 1, "c1": 1}
_K_SLICE = 16             # kernels/conv.cu's kSlice (float; 8 for double): split sizes
                          # are multiples of it
_MAX_TAPS = 32            # kernels/conv.cu's kMaxTaps: taps per forward/input-grad launch
_DIRECT_OUTS = 32         # kernels/conv.cu's kDirectOuts: output channels per direct block
# The direct forward's tap counts (conv_forward_direct_t<n>): a launch takes the first at
# least its taps.  t9 is the 3x3 first layers' (t16 would multiply 7 zero taps a pixel).
_DIRECT_TAPS = (8, 9, 16, 24, 32)
# The C = 1 input-gradient kernels (conv_input_grad_c1_k<S*P>s<S>): stride S -> P, the
# kernel's taps per stride phase in each direction.
_C1_P = {2: 2}
_MIN_C1_SPLIT = 8         # output channels per split of a C = 1 input gradient, at least
# A split of K covers at least this many K slices: fewer would spend a block's time on
# its prologue and epilogue rather than on its main loop.
_MIN_SPLIT_SLICES = 4
# A weight-gradient split reduces at least this many columns (16 K slices): fewer would
# spend a block's time on its prologue and epilogue, and grow the partial sums.
_MIN_SPLIT_COLUMNS = 256
_MAX_GRID_YZ = 65535      # CUDA's limit on gridDim.y and gridDim.z
_INT32_MAX = 2**31 - 1
# The emulator runs blocks one after another: more splits only add work there, so it
# aims at a few blocks (enough to exercise the split reduction in tests).
EMULATOR_TARGET_BLOCKS = 4


# --- checks --------------------------------------------------------------------------------
def _check_dtypes(op, **arrays):
    dtypes = {name: getattr(a, "dtype", None) for name, a in arrays.items()}
    for name, dtype in dtypes.items():
        if dtype not in _DTYPE_SUFFIX:
            raise TypeError(f"{op}: {name} must be a float32 or float64 array, got "
                            f"{dtype if dtype is not None else type(arrays[name]).__name__}")
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
        raise TypeError(f"{op}: the arrays must share one dtype, got {listed}")
    return _DTYPE_SUFFIX[next(iter(dtypes.values()))]


def _check_4d(op, **arrays):
    for name, array in arrays.items():
        if array.ndim != 4:
            raise ValueError(f"{op}: {name} must be 4-D, got shape {tuple(array.shape)}")


def _check_shape(op, name, array, expected, meaning):
    if tuple(array.shape) != tuple(expected):
        raise ValueError(f"{op}: {name} must have shape {tuple(expected)} {meaning}, got "
                         f"{tuple(array.shape)}")


def _check_geometry(op, geom, n, channels, out_channels, in_per_group):
    groups = geom.groups
    if channels != in_per_group * groups or out_channels % groups:
        raise ValueError(f"{op}: {channels} input and {out_channels} output channels do not "
                         f"split into groups={groups} of {in_per_group} input channels")
    # The kernels index every array with 32-bit offsets, some of them biased by up to an
    # image plane (kernels/conv.cu).
    (h, w), (hout, wout), (kh, kw) = geom.in_size, geom.out_size, geom.kernel
    for what, value in (("input N*C*H*W", (n * channels + 1) * h * w + w),
                        ("output N*O*Hout*Wout", (n * out_channels + 1) * hout * wout + wout),
                        ("weight O*C/groups*kh*kw", out_channels * in_per_group * kh * kw)):
        if value > _INT32_MAX:
            raise ValueError(f"{op}: the {what} = {value} exceeds the kernels' 32-bit index "
                             "range")


def _tap_array(op, taps, kernel):
    """``taps`` as a (T, 2) int32 numpy array, each tap inside the kernel."""
    taps = np.asarray(taps)
    if taps.size == 0:
        return np.zeros((0, 2), dtype=np.int32)
    if taps.ndim != 2 or taps.shape[1] != 2 or taps.dtype.kind not in "iu":
        raise ValueError(f"{op}: taps must be a (T, 2) integer array of (i, j), got "
                         f"shape {taps.shape} dtype {taps.dtype}")
    kh, kw = kernel
    if (taps[:, 0].min() < 0 or taps[:, 0].max() >= kh or taps[:, 1].min() < 0
            or taps[:, 1].max() >= kw):
        raise ValueError(f"{op}: taps must lie inside the {kh}x{kw} kernel, got "
                         f"{taps.tolist()}")
    return np.ascontiguousarray(taps, dtype=np.int32)


def _contiguous(xp, array):
    return array if array.flags.c_contiguous else xp.ascontiguousarray(array)


def _tile(rows, columns, groups, multiprocessors):
    """(name, BM, BN) for a GEMM of ``rows`` x ``columns`` per group: 64x256 up to 64
    rows; above that the 128x128 tile when its blocks still fill the
    ``multiprocessors`` (one block each), else 64x256 (twice the blocks)."""
    for name, bm, bn in _TILES:
        if rows <= bm:
            return name, bm, bn
    _, bm, bn = _LARGE_TILE
    if groups * _blocks(rows, bm) * _blocks(columns, bn) >= multiprocessors:
        return _LARGE_TILE
    return _TILES[-1]


def _blocks(count, size):
    return -(-count // size)


def _round_up(count, size):
    return _blocks(count, size) * size


# --- tap tables on the device, cached (a tap list is reused every step) --------------------
def _device_key(xp):
    if xp is np:
        return "host"
    return f"{xp.__name__}:{xp.cuda.Device().id}"


@functools.lru_cache(maxsize=512)
def _cached_table(device_key, xp, kind, data, shape, extra):
    tables = _build_table(kind, np.frombuffer(data, dtype=np.int32).reshape(shape), extra)
    return tuple(xp.asarray(t) if xp is not np else t for t in tables)


def _tables(xp, kind, taps, extra=()):
    taps = np.ascontiguousarray(taps, dtype=np.int32)
    return _cached_table(_device_key(xp), xp, kind, taps.tobytes(), taps.shape, extra)


def _build_table(kind, taps, extra):
    if kind == "taps":
        return (taps,)
    if kind == "forward":
        # Per tap what the forward gather needs (conv.cu, ColumnGather / WeightGather):
        # its input offsets (i*dh, j*dw, i*dh*W + j*dw) and its weight offset i*kw + j.
        width, dh, dw, kw = extra
        i, j = taps[:, 0].astype(np.int64), taps[:, 1].astype(np.int64)
        table = np.stack([i * dh, j * dw, i * dh * width + j * dw, i * kw + j], axis=1)
        return (table.astype(np.int32).reshape(-1, 4),)
    # "phases": the taps grouped by stride phase for the input gradient (conv.cu):
    # rows (-b_i, -b_j, -(b_i*Wout + b_j), i*kw + j) with i*dh = ph + sh*b_i, and where
    # each phase starts.
    sh, sw, dh, dw, out_width, kw = extra
    rows, starts = [], [0]
    for ph in range(sh):
        for pw in range(sw):
            for i, j in taps:
                if (i * dh) % sh == ph and (j * dw) % sw == pw:
                    bi, bj = (i * dh - ph) // sh, (j * dw - pw) // sw
                    rows.append((-bi, -bj, -(bi * out_width + bj), i * kw + j))
            starts.append(len(rows))
    table = np.array(rows, dtype=np.int32).reshape(-1, 4)
    return table, np.array(starts, dtype=np.int32)


def _tap_chunks(taps):
    """The tap list cut into launches of at most _MAX_TAPS taps."""
    return [taps[k:k + _MAX_TAPS] for k in range(0, len(taps), _MAX_TAPS)]


def _is_raster(taps, kernel):
    """Every tap of the kernel, in row-major order (a dense conv)."""
    kh, kw = kernel
    return len(taps) == kh * kw and bool(
        (taps == np.argwhere(np.ones((kh, kw), dtype=bool))).all())


def _multiprocessor_count(xp):
    """The multiprocessors of the device (the emulator: EMULATOR_TARGET_BLOCKS)."""
    if xp is np:
        return EMULATOR_TARGET_BLOCKS
    return _multiprocessors(xp, xp.cuda.Device().id)


def _wave(xp, tile_name):
    """How many blocks of this tile run at once on the device: one wave."""
    if xp is np:
        return EMULATOR_TARGET_BLOCKS
    return _BLOCKS_PER_SM[tile_name] * _multiprocessor_count(xp)


def _target_blocks(xp):
    """About how many blocks fill the device: 4 per multiprocessor (two waves of the
    tiles of which two blocks are resident per multiprocessor)."""
    if xp is np:
        return EMULATOR_TARGET_BLOCKS
    return 4 * _multiprocessor_count(xp)


@functools.lru_cache(maxsize=None)
def _multiprocessors(xp, device):
    return int(xp.cuda.runtime.getDeviceProperties(device)["multiProcessorCount"])


def _split_k(k, tiles, wave, max_splits):
    """(splits, split_k): K cut into ``splits`` ranges of ``split_k`` (a multiple of the K
    slice) when ``tiles`` blocks would leave most of a wave idle, each range at least
    _MIN_SPLIT_SLICES slices long; (1, K) when the tiles fill a wave."""
    if tiles >= wave or k <= 0:
        return 1, max(k, 1)
    splits = max(1, min(_blocks(wave, tiles), k // (_MIN_SPLIT_SLICES * _K_SLICE), max_splits))
    split_k = _round_up(_blocks(k, splits), _K_SLICE)
    return _blocks(k, split_k), split_k


def _weight_grad_splits(columns, tiles, groups, target_blocks):
    """(splits, split_columns): the N*Hout*Wout reduction cut into equal chunks, a
    multiple of the K slice each, enough of them for ``target_blocks`` blocks."""
    splits = max(1, min(_blocks(target_blocks, tiles), _blocks(columns, _MIN_SPLIT_COLUMNS),
                        _MAX_GRID_YZ // groups))
    split_columns = _round_up(_blocks(columns, splits), _K_SLICE)
    return _blocks(columns, split_columns), split_columns


def _geometry(geom):
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    top, _, left, _ = geom.padding
    return sh, sw, top, left, dh, dw


def _grid(x_blocks, y_blocks, z_blocks, op):
    if x_blocks > _INT32_MAX or y_blocks > _MAX_GRID_YZ or z_blocks > _MAX_GRID_YZ:
        raise ValueError(f"{op}: the problem needs a grid of {(x_blocks, y_blocks, z_blocks)} "
                         "blocks, beyond CUDA's limits")
    return (x_blocks, y_blocks, z_blocks)


def _partials(xp, result, parts):
    """Where the launches write: ``result`` itself, or ``parts`` partial results to be
    summed into it (split K, several tap chunks)."""
    if parts == 1:
        return result
    if parts * result.size > _INT32_MAX:
        raise ValueError(f"the {parts} partial results of {result.size} elements exceed the "
                         "kernels' 32-bit index range")
    return xp.empty((parts,) + result.shape, dtype=result.dtype)


def _sum_partials(partial, result, suffix):
    """result = partial[0] + partial[1] + ... in that order (deterministic)."""
    if partial is result:
        return
    launch(f"conv_split_sum_{suffix}", (min(_blocks(result.size, THREADS), 4096), 1, 1),
           (THREADS, 1, 1), (partial, result, partial.shape[0], result.size))


# --- the three ops -----------------------------------------------------------------------
def conv2d_forward(x, weight, geom, taps, bias=None, residual=None):
    y = _forward(x, weight, geom, taps)
    if bias is not None:   # (added by the kernels would save passes; not measured yet)
        y += bias.reshape(-1, 1, 1)
    if residual is not None:
        y += residual
    return y


def _forward(x, weight, geom, taps):
    op = "conv2d_forward"
    xp = array_module(x)
    suffix = _check_dtypes(op, x=x, weight=weight)
    _check_4d(op, x=x, weight=weight)
    out_channels, in_per_group = weight.shape[:2]
    n, channels = x.shape[:2]
    _check_shape(op, "x", x, (n, in_per_group * geom.groups) + tuple(geom.in_size),
                 "(N, C, H, W) with C = weight.shape[1] * groups")
    _check_shape(op, "weight", weight, (out_channels, in_per_group) + tuple(geom.kernel),
                 "(O, C/groups, kh, kw)")
    _check_geometry(op, geom, n, channels, out_channels, in_per_group)
    taps = _tap_array(op, taps, geom.kernel)
    hout, wout = geom.out_size
    if len(taps) == 0 or x.size == 0 or weight.size == 0:
        return xp.zeros((n, out_channels, hout, wout), dtype=x.dtype)
    x, weight = _contiguous(xp, x), _contiguous(xp, weight)
    y = xp.empty((n, out_channels, hout, wout), dtype=x.dtype)
    g = geom.groups
    if in_per_group == 1 and len(taps) <= _MAX_TAPS and _direct_fits(y, hout * wout):
        _forward_direct(xp, x, weight, geom, taps, y, suffix, op)
        return y
    columns, rows = n * hout * wout, out_channels // g
    if _halo_tile(rows, suffix):
        _forward_halo(xp, x, weight, geom, taps, y, suffix, op)
        return y
    name, bm, bn = _tile(rows, columns, g, _multiprocessor_count(xp))
    x_blocks, y_blocks = _blocks(columns, bn), _blocks(rows, bm)
    chunks = _tap_chunks(taps)
    splits, _ = _split_k(in_per_group * len(chunks[0]), x_blocks * y_blocks * g,
                         _wave(xp, name), _MAX_GRID_YZ // g)
    partial = _partials(xp, y, len(chunks) * splits)
    sh, sw, top, left, dh, dw = _geometry(geom)
    for c, chunk in enumerate(chunks):
        (table,) = _tables(xp, "forward", chunk, (geom.in_size[1], dh, dw, geom.kernel[1]))
        split_k = _round_up(_blocks(in_per_group * len(chunk), splits), _K_SLICE)
        out = partial if partial is y else partial[c * splits:(c + 1) * splits]
        launch(f"conv_forward_{name}_{suffix}", _grid(x_blocks, y_blocks, g * splits, op),
               (THREADS, 1, 1),
               (x, weight, table, out, n, channels, geom.in_size[0], geom.in_size[1],
                out_channels, hout, wout, geom.kernel[0], geom.kernel[1], len(chunk), g,
                sh, sw, top, left, splits, split_k))
    _sum_partials(partial, y, suffix)
    return y


def _direct_pixels(n_taps, itemsize):
    """kernels/conv.cu's V * DirectRuns: output pixels per thread of the direct kernel,
    in runs of 16 bytes (2 runs when their inputs fit in 128 registers, else 1)."""
    return (16 // itemsize) * (2 if 128 // (4 * n_taps) >= 2 else 1)


def _direct_taps(n_taps):
    """The direct kernel for ``n_taps`` taps (at most 32): its tap count."""
    return next(t for t in _DIRECT_TAPS if t >= n_taps)


def _direct_fits(y, plane):
    """The direct kernel stores runs of 16 bytes: each output plane a whole number of
    runs, y 16-byte aligned (cupy's and numpy's allocations are)."""
    address = y.data.ptr if hasattr(y.data, "ptr") else y.ctypes.data
    return plane % (16 // y.itemsize) == 0 and address % 16 == 0


def _forward_direct(xp, x, weight, geom, taps, y, suffix, op):
    """The forward of a conv with one input channel per group (C = 1 first layers,
    depthwise convs): conv_forward_direct_t<8|9|16|24|32>, no GEMM."""
    n, channels = x.shape[:2]
    out_channels, g = weight.shape[0], geom.groups
    hout, wout = geom.out_size
    kernel_taps = _direct_taps(len(taps))
    pixels = THREADS * _direct_pixels(kernel_taps, x.itemsize)
    sh, sw, top, left, dh, dw = _geometry(geom)
    (table,) = _tables(xp, "forward", taps, (geom.in_size[1], dh, dw, geom.kernel[1]))
    grid = _grid(_blocks(n * hout * wout, pixels), _blocks(out_channels // g, _DIRECT_OUTS), g,
                 op)
    launch(f"conv_forward_direct_t{kernel_taps}_{suffix}", grid, (THREADS, 1, 1),
           (x, weight, table, y, n, channels, geom.in_size[0], geom.in_size[1], out_channels,
            hout, wout, geom.kernel[0], geom.kernel[1], len(taps), g, sh, sw, top, left))


# --- the halo tile: convs with few GEMM rows -------------------------------------------------
def _halo_tile(rows, suffix):
    """The halo tile (name, BM, raster positions per block) for a GEMM of at most 32 rows,
    else None."""
    if rows > _HALO_TILES[-1][1]:
        return None
    name, bm = next(tile for tile in _HALO_TILES if rows <= tile[1])
    return name, bm, _HALO_PIXELS[name, suffix]


def _halo_raster(a, b, dest_h, dest_w):
    """(raster_h, raster_w, shift_h, shift_w, reach, offsets) of kernels/conv.cu's halo
    tile for taps that read the source at (p + a_t, q + b_t) from destination (p, q): a
    raster of the destination's size grown by the spread of the a_t and b_t; offsets[t]
    is tap t's offset in that raster, reach the largest."""
    raster_h = dest_h + int(a.max() - a.min())
    raster_w = dest_w + int(b.max() - b.min())
    offsets = (a - a.min()) * raster_w + (b - b.min())
    return raster_h, raster_w, int(a.min()), int(b.min()), int(offsets.max()), offsets


def _reach_chunks(a, b, dest_w, pixels, max_taps=_MAX_TAPS):
    """The taps (indices, in order) cut into launches of at most ``max_taps`` taps whose
    offsets reach no further than ``pixels`` positions (a tap alone reaches 0: a very
    long dilation runs one tap a launch)."""
    chunks, current = [], []
    for t in range(len(a)):
        trial = current + [t]
        if len(trial) > max_taps or _halo_raster(a[trial], b[trial], 1, dest_w)[4] > pixels:
            chunks.append(current)
            trial = [t]
        current = trial
    return chunks + [current]


def _forward_phases(geom, taps):
    """The forward as stride-1 convs over the input's stride phases: tap (i, j) reads x at
    (p*sh + A, q*sw + B), A = i*dh - pt = sh*a + ph (0 <= ph < sh), i.e. the phase
    x[ph::sh, pw::sw] at (p + a, q + b).  [((ph, pw), tap indices, a, b)] per phase
    that has taps."""
    sh, sw, top, left, dh, dw = _geometry(geom)
    rows = taps[:, 0].astype(np.int64) * dh - top
    cols = taps[:, 1].astype(np.int64) * dw - left
    phases = []
    for ph in range(sh):
        for pw in range(sw):
            index = np.flatnonzero((rows % sh == ph) & (cols % sw == pw))
            if len(index):
                phases.append(((ph, pw), index, (rows[index] - ph) // sh,
                               (cols[index] - pw) // sw))
    return phases


def _input_grad_phases(geom, taps):
    """The input gradient per stride phase of grad_x (as conv_input_grad_m64 and _m128 do,
    kernels/conv.cu): rows h = h0 + sh*m of phase ph = (h + pt) mod sh, h0 = (ph - pt) mod
    sh, receive the taps with i*dh = ph + sh*b_i from grad_y row a_h0 + m - b_i, a_h0 =
    (h0 + pt - ph) / sh: a stride-1 conv of grad_y with offsets a = a_h0 - b_i.
    [((h0, w0), tap indices, a, b)] per phase, tap indices empty for a phase no tap
    reaches (its rows of grad_x are zero)."""
    sh, sw, top, left, dh, dw = _geometry(geom)
    di = taps[:, 0].astype(np.int64) * dh
    dj = taps[:, 1].astype(np.int64) * dw
    phases = []
    for ph in range(sh):
        for pw in range(sw):
            h0, w0 = (ph - top) % sh, (pw - left) % sw
            index = np.flatnonzero((di % sh == ph) & (dj % sw == pw))
            a = (h0 + top - ph) // sh - (di[index] - ph) // sh
            b = (w0 + left - pw) // sw - (dj[index] - pw) // sw
            phases.append(((h0, w0), index, a, b))
    return phases


def _halo(xp, jobs, weight, geom, taps, dst, suffix, op, transposed):
    """dst = the sum over ``jobs`` [(src, tap indices, a, b)] of the stride-1 convs of src
    (x or a stride phase of it; grad_y for the input gradient) over those taps, each
    reading src at (p + a_t, q + b_t) for destination (p, q), on the halo tile (at most 32
    GEMM rows); split over source channels when its blocks do not fill a wave, tap lists
    cut into launches of at most 32 taps that reach no further than a block, the partial
    results summed in order."""
    out_channels, in_per_group = weight.shape[:2]
    g, (kh, kw) = geom.groups, geom.kernel
    rows, outer = (in_per_group, out_channels // g) if transposed else (
        out_channels // g, in_per_group)
    name, bm, pixels = _halo_tile(rows, suffix)
    n, dest_h, dest_w = dst.shape[0], dst.shape[2], dst.shape[3]
    launches = []
    for src, index, a, b in jobs:
        for chunk in _reach_chunks(a, b, dest_w, pixels):
            launches.append((src, index[chunk], _halo_raster(a[chunk], b[chunk], dest_h,
                                                             dest_w)))
    x_blocks = max(_blocks(n * rh * rw, pixels) for _, _, (rh, rw, *_) in launches)
    if max(n * rh * rw for _, _, (rh, rw, *_) in launches) + 2 * pixels > _INT32_MAX:
        raise ValueError(f"{op}: the batch's raster exceeds the kernels' 32-bit index range")
    y_blocks = _blocks(rows, bm)
    tiles = x_blocks * y_blocks * g
    splits = 1
    if tiles < _wave(xp, "halo") and outer > 1:
        splits = max(1, min(_blocks(_wave(xp, "halo"), tiles), outer // _MIN_HALO_SPLIT,
                            _MAX_GRID_YZ // g))
    split_outer = _blocks(outer, splits)
    splits = _blocks(outer, split_outer)
    partial = _partials(xp, dst, len(launches) * splits)
    w_strides = (kh * kw, in_per_group * kh * kw) if transposed else (
        in_per_group * kh * kw, kh * kw)
    for c, (src, index, (rh, rw, shift_h, shift_w, reach, offsets)) in enumerate(launches):
        chunk = taps[index]
        table = np.stack([offsets, chunk[:, 0].astype(np.int64) * kw + chunk[:, 1]], axis=1)
        (table,) = _tables(xp, "taps", table.astype(np.int32))
        out = partial if partial is dst else partial[c * splits:(c + 1) * splits]
        launch(f"conv_halo_{name}_{suffix}",
               _grid(_blocks(n * rh * rw, pixels), y_blocks, g * splits, op), (THREADS, 1, 1),
               (src, weight, table, out, n, src.shape[1], src.shape[2], src.shape[3],
                dst.shape[1], dest_h, dest_w, g, rows, outer, kh * kw, *w_strides, len(chunk),
                rh, rw, shift_h, shift_w, reach, splits, split_outer))
    _sum_partials(partial, dst, suffix)


def _forward_halo(xp, x, weight, geom, taps, y, suffix, op):
    """y of a conv with at most 32 output channels per group: the halo tile over each
    stride phase of x (x itself at stride 1; a copy of each phase otherwise)."""
    sh, sw = geom.stride
    jobs = []
    for (ph, pw), index, a, b in _forward_phases(geom, taps):
        src = x if (sh, sw) == (1, 1) else xp.ascontiguousarray(x[:, :, ph::sh, pw::sw])
        if src.size:  # else every tap of the phase reads padding
            jobs.append((src, index, a, b))
    if not jobs:
        y[...] = 0
        return
    _halo(xp, jobs, weight, geom, taps, y, suffix, op, transposed=False)


def _input_grad_halo(xp, grad_y, weight, geom, taps, grad_x, suffix, op):
    """grad_x of a conv with at most 32 input channels per group: the halo tile per stride
    phase of grad_x (written in place at stride 1, else into each phase's rows)."""
    sh, sw = geom.stride
    if (sh, sw) == (1, 1):
        ((_, index, a, b),) = _input_grad_phases(geom, taps)
        _halo(xp, [(grad_y, index, a, b)], weight, geom, taps, grad_x, suffix, op,
              transposed=True)
        return
    for (h0, w0), index, a, b in _input_grad_phases(geom, taps):
        rows = grad_x[:, :, h0::sh, w0::sw]
        if rows.size == 0:
            continue
        if len(index) == 0:
            rows[...] = 0
            continue
        phase = xp.empty(rows.shape, dtype=grad_x.dtype)
        _halo(xp, [(grad_y, index, a, b)], weight, geom, taps, phase, suffix, op,
              transposed=True)
        rows[...] = phase


def conv2d_input_grad(grad_y, weight, geom, taps):
    op = "conv2d_input_grad"
    xp = array_module(grad_y)
    suffix = _check_dtypes(op, grad_y=grad_y, weight=weight)
    _check_4d(op, grad_y=grad_y, weight=weight)
    out_channels, in_per_group = weight.shape[:2]
    n = grad_y.shape[0]
    _check_shape(op, "grad_y", grad_y, (n, out_channels) + tuple(geom.out_size),
                 "(N, O, Hout, Wout) with O = weight.shape[0]")
    _check_shape(op, "weight", weight, (out_channels, in_per_group) + tuple(geom.kernel),
                 "(O, C/groups, kh, kw)")
    g = geom.groups
    channels = in_per_group * g
    _check_geometry(op, geom, n, channels, out_channels, in_per_group)
    taps = _tap_array(op, taps, geom.kernel)
    height, width = geom.in_size
    if len(taps) == 0 or grad_y.size == 0 or weight.size == 0:
        return xp.zeros((n, channels, height, width), dtype=grad_y.dtype)
    grad_y, weight = _contiguous(xp, grad_y), _contiguous(xp, weight)
    sh, sw, top, left, dh, dw = _geometry(geom)
    grad_x = xp.empty((n, channels, height, width), dtype=grad_y.dtype)
    c1 = _c1_kernel(in_per_group, geom, taps)
    if c1:
        _input_grad_c1(xp, grad_y, weight, geom, grad_x, suffix, op, *c1)
        return grad_x
    if _halo_tile(in_per_group, suffix):
        _input_grad_halo(xp, grad_y, weight, geom, taps, grad_x, suffix, op)
        return grad_x
    columns = n * _blocks(height, sh) * _blocks(width, sw)  # of the largest stride phase
    z = g * sh * sw
    name, bm, bn = _tile(in_per_group, columns, z, _multiprocessor_count(xp))
    x_blocks, y_blocks = _blocks(columns, bn), _blocks(in_per_group, bm)
    chunks = _tap_chunks(taps)
    extra = (sh, sw, dh, dw, geom.out_size[1], geom.kernel[1])
    tables = [_tables(xp, "phases", chunk, extra) for chunk in chunks]
    # K of the phase with the most taps decides the splits (the others' splits are shorter)
    k_max = [(out_channels // g) * _most_phase_taps(chunk, sh, sw, dh, dw) for chunk in chunks]
    splits, _ = _split_k(k_max[0], x_blocks * y_blocks * z, _wave(xp, name), _MAX_GRID_YZ // z)
    partial = _partials(xp, grad_x, len(chunks) * splits)
    for c, (phase_taps, phase_start) in enumerate(tables):
        split_k = _round_up(_blocks(k_max[c], splits), _K_SLICE)
        out = partial if partial is grad_x else partial[c * splits:(c + 1) * splits]
        launch(f"conv_input_grad_{name}_{suffix}", _grid(x_blocks, y_blocks, z * splits, op),
               (THREADS, 1, 1),
               (grad_y, weight, phase_taps, phase_start, out, n, channels, height, width,
                out_channels, geom.out_size[0], geom.out_size[1], geom.kernel[0],
                geom.kernel[1], g, sh, sw, top, left, splits, max(split_k, _K_SLICE)))
    _sum_partials(partial, grad_x, suffix)
    return grad_x


# --- the input gradient of a C = 1 layer: conv_input_grad_c1_k<K>s<S> ----------------------
def _c1_kernel(in_per_group, geom, taps):
    """(name, S, P) of the C = 1 input-gradient kernel for this problem, else None: one
    input channel per group, a dense K x K kernel (every tap, any order), stride S in both
    directions with K = S*P, no dilation."""
    (kh, kw), (sh, sw) = geom.kernel, geom.stride
    if in_per_group != 1 or (kh, kw) != (sh * _C1_P.get(sh, 0),) * 2 or sh != sw:
        return None
    if tuple(geom.dilation) != (1, 1) or len(taps) != kh * kw:
        return None
    if len({(int(i), int(j)) for i, j in taps}) != kh * kw:
        return None
    return f"k{kh}s{sh}", sh, _C1_P[sh]


def _c1_columns(itemsize):
    """kernels/conv.cu's C1Cols: columns per stride phase of a thread's tile (64 bytes)."""
    return 64 // itemsize


def _input_grad_c1(xp, grad_y, weight, geom, grad_x, suffix, op, name, s, p):
    """grad_x of a conv with one input channel per group and a dense K x K kernel of
    stride S = K / P (kernels/conv.cu, conv_input_grad_c1): grad_y is first padded into
    the planes the kernel's register windows read without a bounds test."""
    n, out_channels, hout, wout = grad_y.shape
    g = geom.groups
    height, width = geom.in_size
    _, _, top, left, _, _ = _geometry(geom)
    tq = _c1_columns(grad_y.itemsize)
    v = 16 // grad_y.itemsize
    p0, q0 = top // s, left // s
    h_base, w_base = s * p0 - top, s * q0 - left
    tiles_h = _blocks(height - h_base, s)
    tiles_w = _blocks(width - w_base, s * tq)
    padded_h = tiles_h + p - 1
    padded_w = tiles_w * tq + _round_up(tq + p - 1, v) - tq
    if (n * out_channels + 1) * padded_h * padded_w > _INT32_MAX:
        raise ValueError(f"{op}: the padded grad_y exceeds the kernels' 32-bit index range")
    # gyp[r, c] = grad_y[r + p_lo, c + q_lo], zero outside grad_y
    p_lo, q_lo = p0 - (p - 1), q0 - (p - 1)
    gyp = xp.zeros((n, out_channels, padded_h, padded_w), dtype=grad_y.dtype)
    r0, r1 = max(0, -p_lo), min(padded_h, hout - p_lo)
    c0, c1 = max(0, -q_lo), min(padded_w, wout - q_lo)
    if r0 < r1 and c0 < c1:
        gyp[:, :, r0:r1, c0:c1] = grad_y[:, :, r0 + p_lo:r1 + p_lo, c0 + q_lo:c1 + q_lo]
    out_per_group = out_channels // g
    x_blocks = _blocks(n * tiles_h * tiles_w, THREADS)
    splits = 1
    if x_blocks * g < _wave(xp, "c1"):
        splits = max(1, min(_blocks(_wave(xp, "c1"), x_blocks * g),
                            out_per_group // _MIN_C1_SPLIT, _MAX_GRID_YZ))
    split_o = _blocks(out_per_group, splits)
    splits = _blocks(out_per_group, split_o)
    partial = _partials(xp, grad_x, splits)
    launch(f"conv_input_grad_c1_{name}_{suffix}", _grid(x_blocks, splits, g, op),
           (THREADS, 1, 1),
           (gyp, weight, partial, n, g, out_per_group, height, width, tiles_h, tiles_w,
            padded_h, padded_w, h_base, w_base, split_o))
    _sum_partials(partial, grad_x, suffix)


def _most_phase_taps(taps, sh, sw, dh, dw):
    """The most taps any stride phase of the input gradient gets."""
    phases = ((taps[:, 0] * dh) % sh) * sw + (taps[:, 1] * dw) % sw
    return int(np.bincount(phases).max())


def _padded(xp, x, padding, op):
    """x with its zero padding (top, bottom, left, right) made real: the weight gradient's
    gather then reads inside x for every column and tests nothing (kernels/conv.cu)."""
    top, bottom, left, right = padding
    if not any(padding):
        return x
    n, c, h, w = x.shape
    shape = (n, c, h + top + bottom, w + left + right)
    if (n * c + 1) * shape[2] * shape[3] > _INT32_MAX:
        raise ValueError(f"{op}: the padded input {shape} exceeds the kernels' 32-bit index "
                         "range")
    out = xp.zeros(shape, dtype=x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def conv2d_weight_grad(x, grad_y, geom, taps):
    op = "conv2d_weight_grad"
    xp = array_module(x)
    suffix = _check_dtypes(op, x=x, grad_y=grad_y)
    _check_4d(op, x=x, grad_y=grad_y)
    n, channels = x.shape[:2]
    out_channels = grad_y.shape[1]
    g = geom.groups
    if channels % g:
        raise ValueError(f"{op}: x has {channels} channels, not divisible by groups={g}")
    in_per_group = channels // g
    _check_shape(op, "x", x, (n, channels) + tuple(geom.in_size), "(N, C, H, W)")
    _check_shape(op, "grad_y", grad_y, (n, out_channels) + tuple(geom.out_size),
                 "(N, O, Hout, Wout)")
    _check_geometry(op, geom, n, channels, out_channels, in_per_group)
    taps = _tap_array(op, taps, geom.kernel)
    kh, kw = geom.kernel
    hout, wout = geom.out_size
    shape = (out_channels, in_per_group, kh, kw)
    if len(taps) == 0 or x.size == 0 or grad_y.size == 0:
        return xp.zeros(shape, dtype=x.dtype)
    x, grad_y = _contiguous(xp, x), _contiguous(xp, grad_y)
    out_per_group, n_taps = out_channels // g, len(taps)
    if _halo_tile(out_per_group, suffix):
        partial = _weight_grad_halo(xp, x, grad_y, geom, taps, suffix, op)
    else:
        partial = _weight_grad_gemm(xp, x, grad_y, geom, taps, op)
    splits = partial.shape[0]
    if splits == 1 and _is_raster(taps, geom.kernel):
        return partial.reshape(shape)  # already grad_w's layout: no reduction, no scatter
    (tap_table,) = _tables(xp, "taps", taps)
    grad_w = xp.zeros(shape, dtype=x.dtype)
    count = out_channels * in_per_group * n_taps
    launch(f"conv_weight_grad_reduce_{suffix}", (min(_blocks(count, THREADS), 4096), 1, 1),
           (THREADS, 1, 1),
           (partial, tap_table, grad_w, splits, out_channels, in_per_group, kh, kw, n_taps))
    return grad_w


def _weight_grad_gemm(xp, x, grad_y, geom, taps, op):
    """The partial weight gradients (splits, O, Cg*T) of the implicit GEMM (more than 32
    output channels per group)."""
    suffix = _DTYPE_SUFFIX[x.dtype]
    n, channels = x.shape[:2]
    out_channels, g = grad_y.shape[1], geom.groups
    in_per_group, out_per_group, n_taps = channels // g, out_channels // g, len(taps)
    hout, wout = geom.out_size
    (tap_table,) = _tables(xp, "taps", taps)
    # Splitting the reduction fills the device, so the large tile needs no block count.
    name, bm, bn = _tile(out_per_group, in_per_group * n_taps, g, 1)
    x_blocks, y_blocks = _blocks(in_per_group * n_taps, bn), _blocks(out_per_group, bm)
    splits, split_columns = _weight_grad_splits(n * hout * wout, x_blocks * y_blocks * g, g,
                                                _target_blocks(xp))
    if splits * out_channels * in_per_group * n_taps > _INT32_MAX:
        raise ValueError(f"{op}: the {splits} partial weight gradients exceed the kernels' "
                         "32-bit index range")
    partial = xp.empty((splits, out_channels, in_per_group * n_taps), dtype=x.dtype)
    sh, sw, _, _, dh, dw = _geometry(geom)
    x = _padded(xp, x, geom.padding, op)
    launch(f"conv_weight_grad_{name}_{suffix}", _grid(x_blocks, y_blocks, g * splits, op),
           (THREADS, 1, 1),
           (x, grad_y, tap_table, partial, n, channels, x.shape[2], x.shape[3],
            out_channels, hout, wout, n_taps, g, sh, sw, 0, 0, dh, dw, splits,
            split_columns))
    return partial


# The halo weight gradient (kernels/conv.cu, conv_weight_grad_halo_m16): per dtype,
# (positions per chunk U, shared x halo XS, columns per block KC; WeightGradHaloSizes)
# and its rows per block (up to 32 output channels run as two row blocks).
_WG_HALO = {"f32": (128, 8192, 64), "f64": (128, 1536, 32)}
_WG_HALO_ROWS = 16


def _weight_grad_halo(xp, x, grad_y, geom, taps, suffix, op):
    """The partial weight gradients (splits, O, Cg*T) of a conv with at most 32 output
    channels per group on the halo weight gradient: per stride phase of x (x itself at
    stride 1) and per launch's taps, grad_y and that phase laid out in rasters in which
    every tap reads x at a constant offset (kernels/conv.cu)."""
    n, channels = x.shape[:2]
    out_channels, g = grad_y.shape[1], geom.groups
    in_per_group, out_per_group = channels // g, out_channels // g
    hout, wout = geom.out_size
    sh, sw = geom.stride
    bm = _WG_HALO_ROWS
    u, xs, kc = _WG_HALO[suffix]
    v = 16 // x.itemsize
    launches = []
    for (ph, pw), index, a, b in _forward_phases(geom, taps):
        src = x if (sh, sw) == (1, 1) else xp.ascontiguousarray(x[:, :, ph::sh, pw::sw])
        if src.size == 0:  # every tap of the phase reads padding: its gradient is zero
            continue
        for chunk in _reach_chunks(a, b, wout, xs - u, max_taps=kc):
            launches.append((src, index[chunk],
                             _halo_raster(a[chunk], b[chunk], hout, wout)))
    partial_shape = (out_channels, in_per_group * len(taps))
    if not launches:
        return xp.zeros((1,) + partial_shape, dtype=x.dtype)
    chunks = [_blocks(hout * rw, u) for _, _, (_, rw, *_) in launches]
    blocks = [_blocks(in_per_group, min(kc // len(index), xs // _round_up(u + reach, v)))
              for _, index, (_, _, _, _, reach, _) in launches]
    tiles = min(blocks) * _blocks(out_per_group, bm) * g
    splits = max(1, min(_blocks(_target_blocks(xp), tiles), n * min(chunks),
                        _MAX_GRID_YZ // g))
    if splits * out_channels * in_per_group * len(taps) > _INT32_MAX:
        raise ValueError(f"{op}: the {splits} partial weight gradients exceed the kernels' "
                         "32-bit index range")
    partial = xp.zeros((splits,) + partial_shape, dtype=x.dtype)
    for (src, index, (rh, rw, shift_h, shift_w, reach, offsets)), per_image in zip(launches,
                                                                                  chunks):
        width_x = _round_up(u + reach, v)
        cb = min(kc // len(index), xs // width_x, in_per_group)
        plane = _round_up(max(per_image * u + reach, rh * rw), v)
        # A block loads xs // width_x + 1 halo channels and bm rows from its first: the
        # arrays go on that far past their last plane (zeros)
        x_size = (n * channels + xs // width_x + 1) * plane
        gy_size = (n * out_channels + bm) * plane
        if max(x_size, gy_size) > _INT32_MAX:
            raise ValueError(f"{op}: the rasters of x and grad_y exceed the kernels' 32-bit "
                             "index range")
        # gyr[n, o, p*rw + q] = grad_y[n, o, p, q]; xr[n, c, r*rw + s] = the phase at
        # (r + shift_h, s + shift_w); zero elsewhere
        gyr = xp.zeros(gy_size, dtype=x.dtype)
        gyr[:n * out_channels * plane].reshape(n, out_channels, plane)[:, :, :hout * rw].reshape(
            n, out_channels, hout, rw)[:, :, :, :wout] = grad_y
        xr = xp.zeros(x_size, dtype=x.dtype)
        view = xr[:n * channels * plane].reshape(n, channels, plane)[:, :, :rh * rw].reshape(
            n, channels, rh, rw)
        r0, r1 = max(0, -shift_h), min(rh, src.shape[2] - shift_h)
        c0, c1 = max(0, -shift_w), min(rw, src.shape[3] - shift_w)
        if r0 < r1 and c0 < c1:
            view[:, :, r0:r1, c0:c1] = src[:, :, r0 + shift_h:r1 + shift_h,
                                           c0 + shift_w:c1 + shift_w]
        (table,) = _tables(xp, "taps", np.stack([offsets, index], axis=1).astype(np.int32))
        launch(f"conv_weight_grad_halo_m16_{suffix}",
               _grid(_blocks(in_per_group, cb), _blocks(out_per_group, bm), g * splits, op),
               (THREADS, 1, 1),
               (xr, gyr, table, partial, n, channels, out_channels, g, len(taps), len(index),
                plane, width_x, per_image, cb, splits, _blocks(n * per_image, splits)))
    return partial
