"""Fast WaveNet generation step on CUDA (kernels/wavenet.cu).

Same functions and results as ``tinygen/backend/reference/wavenet.py`` (read that
first: ``StepWeights``, the ring-buffer layout, what a step computes):
``step(weights, ring, t, previous, cond=None)`` advances B sequences by one sample
in L + 1 launches (one per layer, each with several blocks per sequence sharing the
layer's gate channels, then the skip convolutions and output layers, again with several
blocks per sequence), writing the ring buffers on the device and returning the logits
(B, Q) in the weights' dtype.

The kernel reads the weights in its own layout (``pack``: one flat array, every
mat-vec weight transposed so that the threads of a warp read consecutive addresses;
the kernel file documents it).  ``step`` takes either ``StepWeights``, packed anew on
every call, or what ``pack`` returned: pack once when stepping many times.

Two more functions draw the next code inside the kernel (inverse CDF of
softmax(logits / temperature) from given uniforms, exactly as
``tinygen.models.wavenet.model.sample_codes``), so that generation needs no round
trip to the host per sample: ``sample`` (one step) and ``generate`` (many steps, each
reading the codes the previous one drew).

``previous`` and ``cond`` may be host arrays; they are copied to the weights' device.
"""
import numbers
import os
from typing import NamedTuple

import numpy as np

from .. import array_module, to_numpy
from ..reference.wavenet import StepWeights, check_weights
from .launch import launch, launch_each

# Limits of kernels/wavenet.cu (its activations live in static shared memory).
MAX_RESIDUAL = 256
MAX_SKIP = 512
MAX_CLASSES = 1024
MAX_KERNEL_SIZE = 4
MAX_THREADS = 256
# Blocks per sequence for the skip convolutions at most (fewer when there are fewer layers).
MAX_HEAD_BLOCKS = 8
# Blocks per sequence of each layer launch: one per GATE_CHANNELS_PER_BLOCK gate channels,
# at most MAX_LAYER_BLOCKS (each block also repeats the R x R residual conv: more blocks
# add that work, see kernels/wavenet.cu).
GATE_CHANNELS_PER_BLOCK = 4
MAX_LAYER_BLOCKS = 32

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


class PackedStepWeights(NamedTuple):
    """StepWeights in the kernel's layout, on the weights' device."""
    params: object        # flat array (layout: kernels/wavenet.cu)
    dilations: object     # (L,) int64
    ring_offsets: object  # (L,) int64: layer l's first ring slot
    n_layers: int
    residual: int
    skip: int
    classes: int
    kernel_size: int
    slots: int            # ring slots of all layers together


def _host_dilations(weights):
    return np.asarray(to_numpy(weights.dilations), dtype=np.int64)


def ring_layout(weights):
    """``(offsets, sizes, slots)`` (host int64 arrays, an int): where each layer's ring
    buffer lies in ``ring``; ``weights``: StepWeights or PackedStepWeights."""
    dilations = _host_dilations(weights)
    k = weights.kernel_size if isinstance(weights, PackedStepWeights) else \
        weights.conv_w.shape[1]
    sizes = (k - 1) * dilations + 1
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return offsets, sizes, int(sizes.sum())


def _dims(weights):
    """(xp, dtype, L, R, S, Q, k)."""
    if isinstance(weights, PackedStepWeights):
        return (array_module(weights.params), weights.params.dtype, weights.n_layers,
                weights.residual, weights.skip, weights.classes, weights.kernel_size)
    L, k, _, R = weights.conv_w.shape
    return (array_module(weights.embed), weights.embed.dtype, L, R, weights.skip_w.shape[1],
            weights.embed.shape[0], k)


def new_ring(weights, batch):
    """All-zero ring buffers for ``batch`` sequences about to start at t = 0, on the
    weights' device."""
    xp, dtype, _, R, _, _, _ = _dims(weights)
    return xp.zeros((int(batch), ring_layout(weights)[2], R), dtype=dtype)


def multiply_adds(weights):
    """Multiply-adds of one step of one sequence."""
    _, _, L, R, S, Q, k = _dims(weights)
    return L * (k * 2 * R * R + R * R + S * R) + S * S + Q * S


def pack(weights):
    """``StepWeights`` -> ``PackedStepWeights`` (the kernel's layout, same device)."""
    if isinstance(weights, PackedStepWeights):
        return weights
    check_weights(weights)
    xp = array_module(weights.embed)
    for name in StepWeights._fields[:-1]:
        if array_module(getattr(weights, name)) is not xp:
            raise ValueError(f"wavenet step: weights.{name} is not on the same device as "
                             "weights.embed")
    w = weights
    L, k, _, R = w.conv_w.shape
    S, Q = w.skip_w.shape[1], w.embed.shape[0]
    for what, value, limit in (("residual channels", R, MAX_RESIDUAL),
                               ("skip channels", S, MAX_SKIP),
                               ("classes (quantization)", Q, MAX_CLASSES),
                               ("kernel size", k, MAX_KERNEL_SIZE)):
        if value > limit:
            raise ValueError(f"wavenet step: the CUDA kernel supports at most {limit} {what}, "
                             f"got {value}")
    layers = xp.concatenate([                    # (L, layer_stride), input-major mat-vecs
        w.conv_w.transpose(0, 1, 3, 2).reshape(L, -1), w.conv_b,
        w.res_w.transpose(0, 2, 1).reshape(L, -1), w.res_b,
        w.skip_w.transpose(0, 2, 1).reshape(L, -1), w.skip_b], axis=1)
    params = xp.concatenate([w.embed.ravel(), w.embed_b, layers.ravel(), w.out1_w.T.ravel(),
                             w.out1_b, w.out2_w.T.ravel(), w.out2_b])
    offsets, _, slots = ring_layout(w)
    return PackedStepWeights(params, xp.asarray(_host_dilations(w)), xp.asarray(offsets),
                             L, R, S, Q, k, slots)


# --- argument checks -------------------------------------------------------------------------
def _describe(a):
    return f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}".strip()


def _check_ring(packed, ring):
    xp, dtype = array_module(packed.params), packed.params.dtype
    shape = (packed.slots, packed.residual)
    if getattr(ring, "ndim", None) != 3 or ring.shape[1:] != shape or ring.dtype != dtype \
            or array_module(ring) is not xp or not ring.flags.c_contiguous:
        raise ValueError(f"wavenet step: ring must be a C-contiguous {dtype} array of shape "
                         f"(B, {shape[0]}, {shape[1]}) on the weights' device (see new_ring), "
                         f"got {_describe(ring)}")
    return ring.shape[0]


def _check_t(t):
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
        raise ValueError(f"wavenet step: t must be a non-negative int, got {t!r}")
    return int(t)


def _device_previous(packed, previous, batch):
    xp = array_module(packed.params)
    if getattr(previous, "shape", None) != (batch,) \
            or not np.issubdtype(previous.dtype, np.integer):
        raise ValueError(f"wavenet step: previous must be an integer array of shape ({batch},) "
                         f"(codes, -1 at the start), got {_describe(previous)}")
    previous = xp.ascontiguousarray(xp.asarray(previous, dtype=np.int64))
    if batch:
        low, high = int(previous.min()), int(previous.max())
        if low < -1 or high >= packed.classes:
            raise ValueError(f"wavenet step: previous codes must lie in [0, {packed.classes}) "
                             f"(or be -1 at the start), got values in [{low}, {high}]")
    return previous


def _device_cond(packed, cond, shape):
    if cond is None:
        return None
    xp, dtype = array_module(packed.params), packed.params.dtype
    if getattr(cond, "shape", None) != shape or cond.dtype != dtype:
        raise ValueError(f"wavenet step: cond must be None or a {dtype} array of shape {shape}, "
                         f"got {_describe(cond)}")
    return xp.ascontiguousarray(xp.asarray(cond))


def _check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not temperature > 0:
        raise ValueError(f"wavenet step: temperature must be a positive number, got "
                         f"{temperature!r}")
    return float(temperature)


def _device_uniforms(packed, uniforms, shape):
    if getattr(uniforms, "shape", None) != shape:
        raise ValueError(f"wavenet step: uniforms must have shape {shape}, got "
                         f"{_describe(uniforms)}")
    xp = array_module(packed.params)
    return xp.ascontiguousarray(xp.asarray(uniforms, dtype=np.float64))


def check_step(weights, ring, t, previous, cond):
    """Raise a ValueError naming the first of one step's arguments that does not fit the
    weights (StepWeights or PackedStepWeights); ``previous``/``cond`` may be host arrays."""
    packed = pack(weights)
    batch = _check_ring(packed, ring)
    _check_t(t)
    _device_previous(packed, previous, batch)
    _device_cond(packed, cond, (batch, packed.n_layers, 2 * packed.residual))


# --- launches --------------------------------------------------------------------------------
def _threads(packed):
    """Enough threads for the widest phase (one output channel each), in whole warps."""
    R, S, Q, k = packed.residual, packed.skip, packed.classes, packed.kernel_size
    widest = max(2 * R, R + S, Q, k * R)
    return min(MAX_THREADS, -(-widest // 32) * 32)


def _head_blocks(packed):
    """G: blocks per sequence for the skip convolutions (each takes every G-th layer)."""
    return max(1, min(packed.n_layers, MAX_HEAD_BLOCKS))


def _layer_blocks(packed):
    """P: blocks per sequence of each layer launch, each with ceil(R / P) gate channels
    (P recomputed from that share, so that no block is left without channels)."""
    R = packed.residual
    wanted = max(1, min(MAX_LAYER_BLOCKS, -(-R // GATE_CHANNELS_PER_BLOCK)))
    chunk = -(-R // wanted)
    return -(-R // chunk)


def _step_calls(packed, ring, t, previous, cond, logits, uniforms, sampled, temperature,
                sample, t_device=None):
    """One step's launches as a list of (function, arguments) -- a launch per layer (P
    blocks per sequence), then the skip convolutions and output layers (G blocks per
    sequence); see kernels/wavenet.cu.  With ``t_device`` (a (1,) int64 device array)
    the layers read the time from it (t is passed as -1) and a last launch,
    wavenet_advance, adds one to it: the same calls then serve every step (StepGraph)."""
    xp = array_module(packed.params)
    dtype = packed.params.dtype
    batch = ring.shape[0]
    has_cond = cond is not None
    if not has_cond:                      # the kernel never reads it (has_cond = 0)
        cond = xp.empty(1, dtype=dtype)
    if uniforms is None:                  # nor these (sample = 0)
        uniforms = xp.empty(1, dtype=np.float64)
        sampled = xp.empty(1, dtype=np.int64)
    replayed = t_device is not None
    if not replayed:                      # nor this (t >= 0)
        t_device = xp.empty(1, dtype=np.int64)
    shares = _head_blocks(packed)
    hidden = xp.empty(2 * batch * packed.residual, dtype=np.float64)
    gates = xp.empty(batch * packed.n_layers * packed.residual, dtype=np.float64)
    partial = xp.empty(batch * shares * packed.skip, dtype=np.float64)
    tickets = xp.zeros(batch, dtype=np.int32)  # each sequence's last block resets its own
    suffix, threads = _SUFFIX[dtype], _threads(packed)
    calls = [
        (launch_each, (f"wavenet_layer_{suffix}", (batch, _layer_blocks(packed)), threads,
                       (packed.params, packed.dilations, packed.ring_offsets, ring, cond,
                        previous, hidden, gates, packed.n_layers, packed.residual,
                        packed.skip, packed.classes, packed.kernel_size, packed.slots,
                        -1 if replayed else t, t_device, int(has_cond), 0),
                       "layer", range(packed.n_layers))),  # layers 0 .. L-1, checked once
        (launch, (f"wavenet_heads_{suffix}", (batch, shares), threads,
                  (packed.params, gates, partial, tickets, logits, uniforms, sampled,
                   packed.n_layers, packed.residual, packed.skip, packed.classes,
                   packed.kernel_size, temperature, int(sample)))),
    ]
    if replayed:
        calls.append((launch, (f"wavenet_advance_{suffix}", (1, 1), 32, (t_device,))))
    return calls


def _launch(packed, ring, t, previous, cond, logits, uniforms, sampled, temperature, sample):
    for function, args in _step_calls(packed, ring, t, previous, cond, logits, uniforms,
                                      sampled, temperature, sample):
        function(*args)


def step(weights, ring, t, previous, cond=None):
    """Advance B sequences from time t to t + 1 (see the reference); returns the
    logits (B, Q) in the weights' dtype and writes ``ring`` in place."""
    packed = pack(weights)
    batch = _check_ring(packed, ring)
    t = _check_t(t)
    previous = _device_previous(packed, previous, batch)
    cond = _device_cond(packed, cond, (batch, packed.n_layers, 2 * packed.residual))
    xp = array_module(packed.params)
    logits = xp.empty((batch, packed.classes), dtype=packed.params.dtype)
    if batch:
        _launch(packed, ring, t, previous, cond, logits, None, None, 1.0, False)
    return logits


def sample(weights, ring, t, previous, uniforms, temperature=1.0, cond=None):
    """``step``, then one code per sequence drawn in the kernel from
    softmax(logits / temperature) with ``uniforms`` (B,) in [0, 1); returns
    ``(logits, codes)``, codes int64 (B,)."""
    packed = pack(weights)
    batch = _check_ring(packed, ring)
    t = _check_t(t)
    previous = _device_previous(packed, previous, batch)
    cond = _device_cond(packed, cond, (batch, packed.n_layers, 2 * packed.residual))
    uniforms = _device_uniforms(packed, uniforms, (batch,))
    temperature = _check_temperature(temperature)
    xp = array_module(packed.params)
    logits = xp.empty((batch, packed.classes), dtype=packed.params.dtype)
    codes = xp.empty(batch, dtype=np.int64)
    if batch:
        _launch(packed, ring, t, previous, cond, logits, uniforms, codes, temperature, True)
    return logits, codes


def generate(weights, ring, t, previous, uniforms, temperature=1.0, cond=None, graph=None):
    """``n = len(uniforms)`` steps from time t: step i draws codes[i] with uniforms[i]
    (B,) and feeds them to step i + 1, all on the device.  ``previous``: the codes
    before time t (-1 at the start); ``cond``: None, (B, L, 2R) for every step, or
    (n, B, L, 2R) per step.  Returns the codes, int64 (n, B).

    ``graph=True`` (default: the environment variable TINYGEN_WAVENET_GRAPH=1) runs the
    steps as one replayed set of launches with fixed arguments (StepGraph): on a GPU a
    CUDA graph captured once (cupy's stream capture) and launched per step, so a step
    costs the host one graph launch and two copies instead of L + 1 kernel launches;
    on the emulator the same calls replayed in Python.  The codes are the same either
    way (bit for bit)."""
    packed = pack(weights)
    batch = _check_ring(packed, ring)
    t = _check_t(t)
    previous = _device_previous(packed, previous, batch)
    if getattr(uniforms, "ndim", None) != 2 or uniforms.shape[1] != batch:
        raise ValueError(f"wavenet step: uniforms must have shape (n_steps, {batch}), got "
                         f"{_describe(uniforms)}")
    n = uniforms.shape[0]
    uniforms = _device_uniforms(packed, uniforms, (n, batch))
    per_layer = (batch, packed.n_layers, 2 * packed.residual)
    per_step = cond is not None and getattr(cond, "ndim", None) == 4
    cond = _device_cond(packed, cond, (n,) + per_layer if per_step else per_layer)
    temperature = _check_temperature(temperature)
    xp = array_module(packed.params)
    logits = xp.empty((batch, packed.classes), dtype=packed.params.dtype)
    codes = xp.empty((n, batch), dtype=np.int64)
    if graph is None:
        graph = os.environ.get(GRAPH_ENV, "0") == "1"
    if batch and n and graph:
        _generate_replayed(packed, ring, t, previous, uniforms, temperature, cond, per_step,
                           logits, codes)
    elif batch:
        for i in range(n):
            _launch(packed, ring, t + i, previous if i == 0 else codes[i - 1],
                    cond[i] if per_step else cond, logits, uniforms[i], codes[i], temperature,
                    True)
    return codes


# --- one step's launches replayed: a CUDA graph on the GPU ------------------------------------
GRAPH_ENV = "TINYGEN_WAVENET_GRAPH"


class StepGraph:
    """One step's launches (``_step_calls`` with a device time) with fixed arguments, run
    once per step.  On a GPU (``xp`` cupy) everything runs on a stream of its own
    (``stream``; ``with graph:`` makes it current after it has waited for the current
    one, and makes the current one wait for it on exit): the first ``run`` executes the
    calls (which also loads their kernels), the second captures them into a CUDA graph
    (cupy's stream capture), and every run launches that graph.  On the emulator
    (numpy) every run executes the calls again.  ``captures`` counts the captures."""

    def __init__(self, xp, calls):
        self.xp, self.calls = xp, calls
        self.runs = self.captures = 0
        self.graph = None
        self.stream = None if xp is np else xp.cuda.Stream(non_blocking=True)
        self._outer = None

    def __enter__(self):
        if self.stream is not None:
            self._outer = self.xp.cuda.get_current_stream()
            self.stream.wait_event(self._outer.record())
            self.stream.__enter__()
        return self

    def __exit__(self, *exc):
        if self.stream is not None:
            self.stream.__exit__(*exc)
            self._outer.wait_event(self.stream.record())
        return False

    def _execute(self):
        for function, args in self.calls:
            function(*args)

    def run(self):
        if self.stream is None or self.runs == 0:
            self._execute()
        else:
            if self.graph is None:
                self.stream.begin_capture()
                try:
                    self._execute()
                finally:
                    self.graph = self.stream.end_capture()
                self.captures += 1
            self.graph.launch(stream=self.stream)
        self.runs += 1


def _generate_replayed(packed, ring, t, previous, uniforms, temperature, cond, per_step,
                       logits, codes):
    """generate's steps through one StepGraph: its arguments are buffers that hold each
    step's inputs, copied in before the step -- the uniforms, the per-step cond -- the
    time in device memory (moved on by the step's last launch), and one code buffer
    that a step reads as ``previous`` (its layers run before its heads write the drawn
    codes into it) and that is copied out into codes[i] after it."""
    xp = array_module(packed.params)
    batch = ring.shape[0]
    t_device = xp.asarray(np.array([t], dtype=np.int64))
    drawn = xp.array(previous, dtype=np.int64)
    u = xp.empty(batch, dtype=np.float64)
    c = xp.array(cond[0]) if per_step else cond
    plan = StepGraph(xp, _step_calls(packed, ring, -1, drawn, c, logits, u, drawn,
                                     temperature, True, t_device=t_device))
    with plan:
        for i in range(len(uniforms)):
            u[...] = uniforms[i]
            if per_step:
                c[...] = cond[i]
            plan.run()
            codes[i] = drawn
    return plan
