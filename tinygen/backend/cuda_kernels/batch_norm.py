"""Batch normalisation kernels on CUDA (kernels/batch_norm.cu).

Same results as ``tinygen.backend.reference.batch_norm`` (read that file for the
maths) and the numba kernels, for the family's contract
(``tinygen.backend.kernels.CONTRACTS``): ``train_stats``, ``train_forward``,
``normalize_affine``, ``backward_stats``, ``backward_input``; ``channel_stats`` and
``backward_reduce`` are
here too, but only the kernel tests call them.  The input is an ``(N, C, L)`` array
(cupy on a GPU, numpy under the CPU emulator); per-channel vectors are float64
``(C,)`` arrays, and outputs are allocated with the input's array module.

The fused functions each do in one launch (two for the forward) what the CPU modules
compose from ``channel_stats``, ``normalize_affine`` and ``backward_reduce``:

* ``train_stats(x3, eps, running_mean, running_var, momentum)``: the batch mean,
  biased variance and ``inv_std``, and the running-statistics update (unbiased
  variance, as PyTorch) in place;
* ``train_forward(x3, weight, bias, eps, ...)``: the same, then the normalised output:
  two launches in all (the statistics kernel also writes the per-channel scale and
  shift that the normalising kernel applies);
* ``backward_stats(g3, x3, mean, inv_std)``: ``sum(g)`` and ``sum(g * xhat)``.

Reductions run on a (C, S) grid of blocks: S splits of each channel's N * L values,
so that a GPU has enough blocks even when C is small (``_reduction_grid``); the last
block of each channel merges the splits (see the kernel file).  Their per-channel
tickets live in one zeroed array per device that the kernels leave zeroed (the last
block of a channel resets its ticket), so no launch clears them.  Launches go to one
stream, as all of tinygen's do: two reductions running at once would share tickets.

Arrays whose rows are a multiple of 16 bytes long and 16-byte aligned are read and
written with 16-byte vector accesses (``_vector``).
"""
import numpy as np

from .. import array_module
from .launch import launch

# Threads per reduction block: at most kMaxReduceThreads of kernels/batch_norm.cu.
REDUCE_THREADS = 256
ELEMENTWISE_THREADS = 256
# Reductions aim at this many blocks in all (an H100 has 132 SMs), but a split holds
# at least MIN_CHUNK values of its channel, so small inputs are not scattered.
TARGET_BLOCKS = 1024
MIN_CHUNK = 4096
MAX_SPLITS = 65535          # gridDim.y
# Grid-stride elementwise kernels: enough blocks to fill the GPU, no more.
MAX_ELEMENTWISE_BLOCKS = 4096

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
VECTOR_BYTES = 16

# Per-device ticket arrays (see the module doc): (array module name, device) -> int32 array.
_tickets = {}


# --- argument checks -------------------------------------------------------------------------
def _check_input(name, x3):
    if not hasattr(x3, "ndim") or x3.ndim != 3:
        raise ValueError(f"batch_norm: {name} must be an (N, C, L) array, got "
                         f"{getattr(x3, 'shape', type(x3).__name__)}")
    if x3.dtype not in _SUFFIX:
        raise TypeError(f"batch_norm: {name} must be float32 or float64, got {x3.dtype}")
    return array_module(x3).ascontiguousarray(x3)


def _check_pair(g3, x3):
    g3 = _check_input("grad", g3)
    if g3.shape != x3.shape or g3.dtype != x3.dtype:
        raise ValueError(f"batch_norm: grad ({g3.dtype} {g3.shape}) must match the input "
                         f"({x3.dtype} {x3.shape})")
    return g3


def _channel_vector(name, vector, x3):
    """``vector`` as a contiguous float64 (C,) array on x3's device (host vectors, as the
    op computes some, are copied over)."""
    xp = array_module(x3)
    vector = xp.ascontiguousarray(xp.asarray(vector, dtype=np.float64))
    channels = x3.shape[1]
    if vector.shape != (channels,):
        raise ValueError(f"batch_norm: {name} must have shape ({channels},) for an input of "
                         f"shape {x3.shape}, got {vector.shape}")
    return vector


def _running_buffer(name, buffer, x3):
    channels = x3.shape[1]
    if getattr(buffer, "shape", None) != (channels,) or buffer.dtype != x3.dtype:
        raise ValueError(f"batch_norm: {name} must be a {x3.dtype} array of shape ({channels},) "
                         f"for an input of {x3.dtype} {x3.shape}, got "
                         f"{getattr(buffer, 'dtype', type(buffer).__name__)} "
                         f"{getattr(buffer, 'shape', '')}")
    if array_module(buffer) is not array_module(x3) or not buffer.flags.c_contiguous:
        raise ValueError(f"batch_norm: {name} must be a contiguous array on the input's device "
                         "(it is updated in place)")
    return buffer


def _values_per_channel(x3, what):
    n, _, length = x3.shape
    count = n * length
    if count == 0:
        raise ValueError(f"batch_norm: {what} needs at least one value per channel, got an "
                         f"input of shape {x3.shape}")
    return count


# --- launch geometry ---------------------------------------------------------------------------
def _address(array):
    return array.data.ptr if hasattr(array.data, "ptr") else array.ctypes.data


def _vector(x3, *arrays):
    """Values per vector access: 16 bytes' worth when every row of x3 (and of the
    other (N, C, L) arrays) starts 16-byte aligned, else 1."""
    width = VECTOR_BYTES // x3.itemsize
    aligned = all(_address(a) % VECTOR_BYTES == 0 for a in (x3, *arrays))
    return width if aligned and x3.shape[2] % width == 0 else 1


def _reduction_grid(channels, count, vector=1):
    """(splits, chunk): each channel's ``count`` values in ``splits`` chunks of ``chunk``
    (a multiple of ``vector``; the last one shorter), none empty."""
    wanted = -(-TARGET_BLOCKS // channels)
    splits = max(1, min(wanted, count // MIN_CHUNK, MAX_SPLITS))
    chunk = -(-count // splits)
    chunk = -(-chunk // vector) * vector
    return -(-count // chunk), chunk


def _elementwise_grid(total, vector=1):
    return min(MAX_ELEMENTWISE_BLOCKS, -(-total // (ELEMENTWISE_THREADS * vector)))


def _ticket_array(xp, channels):
    """At least ``channels`` zero tickets on the current device, reused across launches."""
    key = (xp.__name__, xp.cuda.Device().id if xp.__name__ == "cupy" else None)
    tickets = _tickets.get(key)
    if tickets is None or tickets.size < channels:
        tickets = _tickets[key] = xp.zeros(max(channels, 64), dtype=np.int32)
    return tickets


def _reduce(*args):
    """Launch a reduction; a launch that failed may have left tickets taken: forget them."""
    try:
        launch(*args)
    except BaseException:
        _tickets.clear()
        raise


# --- training statistics -------------------------------------------------------------------------
def _check_stats_arguments(x3, eps, running_mean, running_var):
    """(running_mean, running_var, update): the buffers checked, or placeholders the kernel
    never touches when there are none."""
    count = _values_per_channel(x3, "the batch statistics")
    if not eps > 0:
        raise ValueError(f"batch_norm: eps must be positive, got {eps!r}")
    update = running_mean is not None or running_var is not None
    if update:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var must both be given "
                             "or both be None")
        running_mean = _running_buffer("running_mean", running_mean, x3)
        running_var = _running_buffer("running_var", running_var, x3)
        if count < 2:
            raise ValueError(f"batch_norm: the unbiased variance for the running statistics "
                             f"needs more than 1 value per channel, got input shape {x3.shape}")
    else:  # never read or written (update_running = 0), but the kernel takes arrays
        running_mean = running_var = array_module(x3).empty(1, dtype=x3.dtype)
    return running_mean, running_var, update


def train_stats(x3, eps, running_mean=None, running_var=None, momentum=0.1):
    """Per-channel ``(mean, var, inv_std)`` (float64; var biased, inv_std = 1/sqrt(var + eps))
    in one launch; with running buffers (x3's dtype, (C,)), also updates them in place:
    ``running = (1 - momentum) * running + momentum * batch`` with the unbiased variance."""
    x3 = _check_input("input", x3)
    running_mean, running_var, update = _check_stats_arguments(x3, eps, running_mean,
                                                               running_var)
    return _train_stats(x3, None, None, eps, running_mean, running_var, momentum, update)[:3]


def _train_stats(x3, weight, bias, eps, running_mean, running_var, momentum, update):
    """(mean, var, inv_std, scale, shift) in one launch (arguments checked)."""
    xp = array_module(x3)
    n, channels, length = x3.shape
    count = n * length
    mean, var, inv_std, scale, shift = (xp.empty(channels, dtype=np.float64) for _ in range(5))
    if channels == 0:
        return mean, var, inv_std, scale, shift
    vector = _vector(x3)
    splits, chunk = _reduction_grid(channels, count, vector)
    partial_mean = xp.empty(channels * splits, dtype=np.float64)
    partial_m2 = xp.empty(channels * splits, dtype=np.float64)
    unused = xp.empty(1, dtype=x3.dtype)  # for absent weight/bias (never read)
    flags = int(bool(update)) | (2 if weight is not None else 0) | (4 if bias is not None else 0)
    _reduce(*(
        f"batch_norm_train_stats_{_SUFFIX[x3.dtype]}", (channels, splits), REDUCE_THREADS,
        (x3, unused if weight is None else weight, unused if bias is None else bias,
         partial_mean, partial_m2, _ticket_array(xp, channels), mean, var, inv_std, scale,
         shift, running_mean, running_var, n, channels, length, chunk, vector, float(eps),
         float(momentum) if update else 0.0, flags)))
    return mean, var, inv_std, scale, shift


def _affine_parameter(name, value, x3):
    """weight or bias: None, or a contiguous (C,) array of x3's dtype on its device."""
    if value is None:
        return None
    channels = x3.shape[1]
    if getattr(value, "shape", None) != (channels,) or value.dtype != x3.dtype \
            or array_module(value) is not array_module(x3):
        raise ValueError(f"batch_norm: {name} must be None or a {x3.dtype} array of shape "
                         f"({channels},) on the input's device, got "
                         f"{getattr(value, 'dtype', type(value).__name__)} "
                         f"{getattr(value, 'shape', '')}")
    return array_module(x3).ascontiguousarray(value)


def train_forward(x3, weight, bias, eps, running_mean=None, running_var=None, momentum=0.1):
    """The training forward in two launches: ``train_stats``, then
    ``y = (x - mean) * (weight * inv_std) + bias`` (weight/bias: None or (C,) arrays of
    x3's dtype).  Returns ``(y, mean, inv_std)``."""
    x3 = _check_input("input", x3)
    weight = _affine_parameter("weight", weight, x3)
    bias = _affine_parameter("bias", bias, x3)
    running_mean, running_var, update = _check_stats_arguments(x3, eps, running_mean,
                                                               running_var)
    mean, _, inv_std, scale, shift = _train_stats(x3, weight, bias, eps, running_mean,
                                                  running_var, momentum, update)
    return _normalize(x3, mean, scale, shift), mean, inv_std


def channel_stats(x3):
    """Per-channel mean and biased variance (float64)."""
    mean, var, _ = train_stats(x3, eps=1.0)  # (inv_std unused here)
    return mean, var


# --- forward ---------------------------------------------------------------------------------
def normalize_affine(x3, mean, scale, shift):
    """``y = (x - mean[c]) * scale[c] + shift[c]`` in ``x3``'s dtype."""
    x3 = _check_input("input", x3)
    mean, scale, shift = (_channel_vector(name, v, x3) for name, v in
                          (("mean", mean), ("scale", scale), ("shift", shift)))
    return _normalize(x3, mean, scale, shift)


def _normalize(x3, mean, scale, shift):
    y = array_module(x3).empty_like(x3)
    if x3.size:
        _, channels, length = x3.shape
        vector = _vector(x3, y)
        launch(f"batch_norm_normalize_affine_{_SUFFIX[x3.dtype]}",
               _elementwise_grid(x3.size, vector), ELEMENTWISE_THREADS,
               (x3, mean, scale, shift, y, x3.size, channels, length, vector))
    return y


# --- backward --------------------------------------------------------------------------------
def _backward_sums(g3, x3, mean, centered_scale):
    xp = array_module(x3)
    n, channels, length = x3.shape
    count = _values_per_channel(x3, "the backward sums")
    sum_g = xp.empty(channels, dtype=np.float64)
    sum_gc = xp.empty(channels, dtype=np.float64)
    if channels == 0:
        return sum_g, sum_gc
    vector = _vector(x3, g3)
    splits, chunk = _reduction_grid(channels, count, vector)
    partial_g = xp.empty(channels * splits, dtype=np.float64)
    partial_gc = xp.empty(channels * splits, dtype=np.float64)
    _reduce(*(
        f"batch_norm_backward_sums_{_SUFFIX[x3.dtype]}", (channels, splits), REDUCE_THREADS,
        (g3, x3, mean, centered_scale, partial_g, partial_gc, _ticket_array(xp, channels),
         sum_g, sum_gc, n, channels, length, chunk, vector)))
    return sum_g, sum_gc


def backward_reduce(g3, x3, mean):
    """Per-channel ``sum(g)`` and ``sum(g * (x - mean))`` in float64."""
    x3 = _check_input("input", x3)
    g3 = _check_pair(g3, x3)
    mean = _channel_vector("mean", mean, x3)
    ones = array_module(x3).ones(x3.shape[1], dtype=np.float64)
    return _backward_sums(g3, x3, mean, ones)


def backward_stats(g3, x3, mean, inv_std):
    """Per-channel ``sum(g)`` and ``sum(g * xhat)`` (xhat = (x - mean) * inv_std), float64,
    in one launch: the bias and weight gradients, and what ``backward_input`` needs."""
    x3 = _check_input("input", x3)
    g3 = _check_pair(g3, x3)
    mean = _channel_vector("mean", mean, x3)
    inv_std = _channel_vector("inv_std", inv_std, x3)
    return _backward_sums(g3, x3, mean, inv_std)


def backward_input(g3, x3, mean, inv_std, weight, sum_g, sum_g_xhat):
    """``dx = weight*inv_std * (g - sum_g/M - xhat * sum_g_xhat/M)`` in x's dtype."""
    x3 = _check_input("input", x3)
    g3 = _check_pair(g3, x3)
    vectors = [_channel_vector(name, v, x3) for name, v in
               (("mean", mean), ("inv_std", inv_std), ("weight", weight), ("sum_g", sum_g),
                ("sum_g_xhat", sum_g_xhat))]
    dx = array_module(x3).empty_like(x3)
    if x3.size:
        n, channels, length = x3.shape
        vector = _vector(x3, g3, dx)
        launch(f"batch_norm_backward_input_{_SUFFIX[x3.dtype]}",
               _elementwise_grid(x3.size, vector), ELEMENTWISE_THREADS,
               (g3, x3, *vectors, dx, x3.size, channels, length, 1.0 / (n * length), vector))
    return dx
