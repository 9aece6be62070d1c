"""Reference WaveNet generation step in plain numpy: the oracle for the fast kernels.

Fast WaveNet (Paine et al. 2016) draws a sample with ONE step of every layer instead of
a forward pass over the whole receptive field: each layer keeps a ring buffer of its
recent inputs, so its dilated causal conv only needs the buffered input ``d`` steps
back.  ``step`` advances B independent sequences by one sample.  Read this file for
what a step computes; ``tinygen/backend/numba_kernels/wavenet.py`` computes the same
thing fast.

Packed weights (``StepWeights``; every array C-contiguous, all in one float dtype;
L layers, R residual, S skip channels, Q classes, kernel size k):

    embed   (Q, R)        row c: the input embedding of code c (the 1x1 conv's weight,
                          transposed, so a one-hot input is a row lookup)
    embed_b (R,)
    conv_w  (L, k, 2R, R) layer l's dilated conv; tap j multiplies its input at
                          t - (k-1-j) * d_l (tap k-1 is the current input)
    conv_b  (L, 2R)       rows [:R] feed tanh (the filter), rows [R:] sigmoid (the gate)
    res_w   (L, R, R)     res_b  (L, R)      residual 1x1 conv
    skip_w  (L, S, R)     skip_b (L, S)      skip 1x1 conv
    out1_w  (S, S)        out1_b (S,)        first output 1x1 conv
    out2_w  (Q, S)        out2_b (Q,)        second output 1x1 conv -> logits
    dilations (L,) int64

Ring buffers (``new_ring``): one float array ``ring`` of shape (B, slots, R).  Layer l
owns the ``(k-1) * d_l + 1`` slots from ``offsets[l]`` on (``ring_layout``); its input
at time t lives in slot ``offsets[l] + t % size_l``.  A fresh ring is all zeros, which
is exactly the causal convolution's zero padding before t = 0.

One step at time t, for every sequence b (``previous[b]``: the code x_{t-1}, or -1 at
t = 0 where the network's input is the all-zero start vector):

    h = embed_b + embed[previous]                       (just embed_b at the start)
    for every layer l:
        ring[slot of t] = h
        z = conv_b[l] + cond[l] + sum_j conv_w[l, j] @ ring[slot of t - (k-1-j) d_l]
        g = tanh(z[:R]) * sigmoid(z[R:])
        h = h + res_w[l] @ g + res_b[l];   skip += skip_w[l] @ g + skip_b[l]
    logits = out2_w @ relu(out1_w @ relu(skip) + out1_b) + out2_b

``cond`` (B, L, 2R) is the conditioning term of every layer's gate at this step (global
class and/or local features, already multiplied by their weights); None for none.
"""
from typing import NamedTuple

import numpy as np


class StepWeights(NamedTuple):
    embed: np.ndarray
    embed_b: np.ndarray
    conv_w: np.ndarray
    conv_b: np.ndarray
    res_w: np.ndarray
    res_b: np.ndarray
    skip_w: np.ndarray
    skip_b: np.ndarray
    out1_w: np.ndarray
    out1_b: np.ndarray
    out2_w: np.ndarray
    out2_b: np.ndarray
    dilations: np.ndarray


def ring_layout(weights):
    """``(offsets, sizes, slots)``: where each layer's ring buffer lies in ``ring``."""
    k = weights.conv_w.shape[1]
    sizes = (k - 1) * np.asarray(weights.dilations, dtype=np.int64) + 1
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return offsets, sizes, int(sizes.sum())


def pack(weights):
    """The weights in this implementation's layout: ``StepWeights`` as they are (the
    CUDA kernel packs them into one flat array instead)."""
    return weights


def new_ring(weights, batch):
    """All-zero ring buffers for ``batch`` sequences about to start at t = 0."""
    return np.zeros((int(batch), ring_layout(weights)[2], weights.res_w.shape[1]),
                    dtype=weights.embed.dtype)


# the last weights that passed check_weights, with their ring layout: a generator calls
# step thousands of times with the same weights, and checking them costs more than a
# small model's step.  (The numba kernel still checks the shapes it relies on.)
_checked = (None, None)


def _checked_layout(weights):
    """``check_weights(weights)``, then ``ring_layout(weights)`` -- both remembered for
    the last weights seen."""
    global _checked
    if _checked[0] is not weights:
        check_weights(weights)
        _checked = (weights, ring_layout(weights))
    return _checked[1]


def check_weights(weights):
    """Raise a ValueError/TypeError naming the first field of the wrong shape or dtype."""
    if not isinstance(weights, StepWeights):
        raise TypeError(f"wavenet step: weights must be StepWeights, got "
                        f"{type(weights).__name__}")
    Q, R = weights.embed.shape
    L, k, R2, _ = weights.conv_w.shape
    S = weights.skip_w.shape[1]
    expected = {"embed": (Q, R), "embed_b": (R,), "conv_w": (L, k, 2 * R, R),
                "conv_b": (L, 2 * R), "res_w": (L, R, R), "res_b": (L, R),
                "skip_w": (L, S, R), "skip_b": (L, S), "out1_w": (S, S), "out1_b": (S,),
                "out2_w": (Q, S), "out2_b": (Q,), "dilations": (L,)}
    dtype = weights.embed.dtype
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"wavenet step: weights must be float32 or float64, got {dtype}")
    for name, shape in expected.items():
        a = getattr(weights, name)
        if a.shape != shape:
            raise ValueError(f"wavenet step: weights.{name} has shape {a.shape}, expected "
                             f"{shape}")
        if name == "dilations":
            if a.dtype != np.int64 or (a < 1).any():
                raise ValueError("wavenet step: weights.dilations must be positive int64")
        elif a.dtype != dtype or not a.flags.c_contiguous:
            raise ValueError(f"wavenet step: weights.{name} must be C-contiguous {dtype}, got "
                             f"{a.dtype}{'' if a.flags.c_contiguous else ' (not contiguous)'}")


def check_step(weights, ring, t, previous, cond):
    """Validate the weights and one step's arguments; returns the ring layout."""
    layout = _checked_layout(weights)
    Q, R = weights.embed.shape
    L = weights.conv_w.shape[0]
    slots = layout[2]
    if not isinstance(ring, np.ndarray) or ring.ndim != 3 or ring.shape[1:] != (slots, R) \
            or ring.dtype != weights.embed.dtype or not ring.flags.c_contiguous:
        raise ValueError(f"wavenet step: ring must be a C-contiguous {weights.embed.dtype} "
                         f"array of shape (B, {slots}, {R}) (see new_ring), got "
                         f"{getattr(ring, 'dtype', type(ring).__name__)} "
                         f"{getattr(ring, 'shape', '')}")
    B = ring.shape[0]
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
        raise ValueError(f"wavenet step: t must be a non-negative int, got {t!r}")
    if not isinstance(previous, np.ndarray) or previous.shape != (B,) \
            or previous.dtype != np.int64:
        raise ValueError(f"wavenet step: previous must be an int64 array of shape ({B},), got "
                         f"{getattr(previous, 'dtype', type(previous).__name__)} "
                         f"{getattr(previous, 'shape', '')}")
    if B and (previous.min() < -1 or previous.max() >= Q):
        raise ValueError(f"wavenet step: previous codes must lie in [0, {Q}) (or be -1 at "
                         f"the start), got values in [{previous.min()}, {previous.max()}]")
    if cond is not None and (not isinstance(cond, np.ndarray)
                             or cond.shape != (B, L, 2 * R) or cond.dtype != ring.dtype
                             or not cond.flags.c_contiguous):
        raise ValueError(f"wavenet step: cond must be None or a C-contiguous {ring.dtype} "
                         f"array of shape ({B}, {L}, {2 * R}), got "
                         f"{getattr(cond, 'dtype', type(cond).__name__)} "
                         f"{getattr(cond, 'shape', '')}")
    return layout


def _sigmoid(x):
    # the tanh form never overflows (1 / (1 + exp(-x)) does for x < -709 in float64)
    return 0.5 * np.tanh(0.5 * x) + 0.5


def step(weights, ring, t, previous, cond=None):
    """Advance B sequences from time t to t + 1: writes ``ring`` in place, returns the
    logits (B, Q) of the next sample, in the weights' dtype."""
    offsets, sizes, _ = check_step(weights, ring, t, previous, cond)
    w = weights
    R = w.embed.shape[1]
    k = w.conv_w.shape[1]
    started = (previous >= 0)[:, None]
    h = w.embed_b + np.where(started, w.embed[np.maximum(previous, 0)], 0)
    skip = 0
    for l, d in enumerate(w.dilations):
        base, size = offsets[l], sizes[l]
        ring[:, base + t % size] = h
        z = w.conv_b[l] + (0 if cond is None else cond[:, l])
        for j in range(k):
            past = ring[:, base + (t - (k - 1 - j) * d) % size]   # input at t - (k-1-j) d
            z = z + past @ w.conv_w[l, j].T
        g = np.tanh(z[:, :R]) * _sigmoid(z[:, R:])
        h = h + g @ w.res_w[l].T + w.res_b[l]
        skip = skip + g @ w.skip_w[l].T + w.skip_b[l]
    y = np.maximum(skip, 0) @ w.out1_w.T + w.out1_b
    return (np.maximum(y, 0) @ w.out2_w.T + w.out2_b).astype(w.embed.dtype, copy=False)
