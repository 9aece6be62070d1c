"""Fast WaveNet generation step on the CPU (numba, cached).

Same functions and results as ``tinygen/backend/reference/wavenet.py`` (read that
first: it defines ``StepWeights``, the ring-buffer layout and what a step computes).

Why a kernel.  One sample of a 20-layer, 64-channel WaveNet is ~0.6 M multiply-adds
spread over 82 small mat-vecs and as many bias adds and gates; numpy spends more
time dispatching those than computing.  Here the whole step -- embedding lookup, per layer the ring-buffer write,
the k taps of the dilated conv, bias and conditioning, the gate, residual and skip
1x1 convs, then the two output layers -- is one compiled loop nest with no
temporaries beyond a few channel vectors per sequence.

Layout.  Weights are (out, in) row-major, so every output channel is a dot product
over a contiguous row; ``fastmath`` reassociation lets LLVM vectorise those
reductions (the results then differ from numpy's BLAS in the last bits only).
Accumulation is in the weights' dtype, like the reference.  The B sequences are
independent: with a batch big enough to pay for waking another thread, ranges of
them are shared out among threads (``chunks.parallel_range``; each thread writes
only its own sequences' ring rows and logits), otherwise all run on the calling
thread.

Checks.  ``step`` validates its arguments in Python (``check_step``; the weights only
the first time it sees them), and the compiled driver re-checks every shape its loops
index with before touching memory, so bad input raises instead of crashing.
"""
import numpy as np
from numba import njit

from .chunks import parallel_range as _parallel_range
from ..reference.wavenet import (  # noqa: F401  (the shared layout, re-exported)
    StepWeights, check_step, new_ring, pack, ring_layout,
)

FAST = {"reassoc", "contract"}


@njit(cache=True, fastmath=FAST)
def _matvec_add(w, x, out):
    """out += w @ x for w (O, I) row-major.  The accumulator starts from out[o] (of
    the arrays' dtype): the loop then vectorises, 2-3x faster than one that peels
    the first product off."""
    for o in range(w.shape[0]):
        acc = out[o]
        for i in range(w.shape[1]):
            acc += w[o, i] * x[i]
        out[o] = acc


@njit(cache=True)
def _relu(x):
    for i in range(x.shape[0]):
        if x[i] < 0:
            x[i] = 0


@njit(cache=True, fastmath=FAST)
def _one_sequence(b, embed, embed_b, conv_w, conv_b, res_w, res_b, skip_w, skip_b,
                  out1_w, out1_b, out2_w, out2_b, dilations, offsets, sizes, ring, t,
                  previous, cond, has_cond, logits):
    n_layers, k, r2, r = conv_w.shape
    h = embed_b.copy()
    if previous[b] >= 0:
        h += embed[previous[b]]
    z = np.empty(r2, dtype=h.dtype)
    g = np.empty(r, dtype=h.dtype)
    skip = np.zeros(skip_w.shape[1], dtype=h.dtype)
    for l in range(n_layers):
        d, base, size = dilations[l], offsets[l], sizes[l]
        ring[b, base + t % size, :] = h
        z[:] = conv_b[l]
        if has_cond:
            z += cond[b, l]
        for j in range(k):
            slot = (t - (k - 1 - j) * d) % size   # the input at t - (k-1-j) d
            if slot < 0:
                slot += size
            _matvec_add(conv_w[l, j], ring[b, base + slot], z)
        for i in range(r):
            # sigmoid in tanh form, as in the reference (never overflows)
            g[i] = np.tanh(z[i]) * (0.5 * np.tanh(0.5 * z[r + i]) + 0.5)
        h += res_b[l]
        _matvec_add(res_w[l], g, h)
        skip += skip_b[l]
        _matvec_add(skip_w[l], g, skip)
    _relu(skip)
    y = out1_b.copy()
    _matvec_add(out1_w, skip, y)
    _relu(y)
    logits[b, :] = out2_b
    _matvec_add(out2_w, y, logits[b])


@njit(cache=True)
def _shapes_agree(embed, embed_b, conv_w, conv_b, res_w, res_b, skip_w, skip_b, out1_w,
                  out1_b, out2_w, out2_b, dilations, offsets, sizes, ring, previous, cond,
                  has_cond, logits):
    """Every shape the loops rely on, re-checked in compiled code: ``step`` checks the
    weights only when it first sees them, so this guards against arrays reshaped in
    place since then (an out-of-bounds read would crash the process, not raise)."""
    q, r = embed.shape
    n_layers, k, r2, _ = conv_w.shape
    s = skip_w.shape[1]
    batch, slots, _ = ring.shape
    ok = (r2 == 2 * r and conv_w.shape[3] == r and embed_b.shape[0] == r
          and conv_b.shape[0] == n_layers and conv_b.shape[1] == r2
          and res_w.shape[0] == n_layers and res_w.shape[1] == r and res_w.shape[2] == r
          and res_b.shape[0] == n_layers and res_b.shape[1] == r
          and skip_w.shape[0] == n_layers and skip_w.shape[2] == r
          and skip_b.shape[0] == n_layers and skip_b.shape[1] == s
          and out1_w.shape[0] == s and out1_w.shape[1] == s and out1_b.shape[0] == s
          and out2_w.shape[0] == q and out2_w.shape[1] == s and out2_b.shape[0] == q
          and dilations.shape[0] == n_layers and offsets.shape[0] == n_layers
          and sizes.shape[0] == n_layers and ring.shape[2] == r
          and previous.shape[0] == batch and logits.shape[0] == batch
          and logits.shape[1] == q)
    if has_cond:
        ok = ok and cond.shape[0] == batch and cond.shape[1] == n_layers \
            and cond.shape[2] == r2
    for l in range(n_layers):
        ok = ok and sizes[l] == (k - 1) * dilations[l] + 1 and offsets[l] >= 0 \
            and offsets[l] + sizes[l] <= slots
    return ok


@njit(cache=True, nogil=True)
def _step(embed, embed_b, conv_w, conv_b, res_w, res_b, skip_w, skip_b, out1_w, out1_b,
          out2_w, out2_b, dilations, offsets, sizes, ring, t, previous, cond, has_cond, logits,
          lo, hi):
    """One step of sequences [lo, hi) (False, touching nothing, if a shape disagrees)."""
    if not _shapes_agree(embed, embed_b, conv_w, conv_b, res_w, res_b, skip_w, skip_b,
                         out1_w, out1_b, out2_w, out2_b, dilations, offsets, sizes, ring,
                         previous, cond, has_cond, logits):
        return False
    for b in range(lo, hi):
        _one_sequence(b, embed, embed_b, conv_w, conv_b, res_w, res_b, skip_w, skip_b,
                      out1_w, out1_b, out2_w, out2_b, dilations, offsets, sizes, ring, t,
                      previous, cond, has_cond, logits)
    return True


def multiply_adds(weights):
    """Multiply-adds of one step of one sequence."""
    L, k, r2, r = weights.conv_w.shape
    s, q = weights.skip_w.shape[1], weights.out2_w.shape[0]
    return L * (k * r2 * r + r * r + s * r) + s * s + q * s


def step(weights, ring, t, previous, cond=None):
    """Advance B sequences from time t to t + 1 (see the reference); returns the
    logits (B, Q) in the weights' dtype and writes ``ring`` in place."""
    offsets, sizes, _ = check_step(weights, ring, t, previous, cond)
    batch = ring.shape[0]
    logits = np.empty((batch, weights.embed.shape[0]), dtype=weights.embed.dtype)
    has_cond = cond is not None
    if not has_cond:
        cond = np.zeros((0, 0, 0), dtype=ring.dtype)
    w = weights
    arrays = (w.embed, w.embed_b, w.conv_w, w.conv_b, w.res_w, w.res_b, w.skip_w, w.skip_b,
              w.out1_w, w.out1_b, w.out2_w, w.out2_b, w.dilations, offsets, sizes, ring)
    agreed = []
    _parallel_range(lambda lo, hi: agreed.append(_step(*arrays, int(t), previous, cond,
                                                      has_cond, logits, lo, hi)),
                   batch, batch * multiply_adds(weights))
    if not all(agreed):
        raise ValueError("wavenet step: the weights' shapes changed since they were "
                         "checked (arrays reshaped in place?); pack them again")
    return logits
