"""Batch normalisation kernels (numba, cached, shared out among threads).

Same functions and signatures as ``tinygen.backend.reference.batch_norm``
(read that file for the maths); tested against it.  The input is a contiguous
``(N, C, L)`` array; per-channel vectors are float64 ``(C,)`` arrays.

Parallel layout: the N * C rows of length L are independent, so every pass is
a loop over a range of rows (good when C is small but N large, and vice versa),
the ranges shared out among threads by ``chunks.share_range`` (small inputs on
the calling thread).  Per-row partial sums go to an (N, C) float64 array and are
then added per channel, so no two threads ever write the same location and the
result does not depend on the number of threads.  All accumulation is in float64.
"""
import numpy as np
from numba import njit

from .chunks import share_range
from ..reference.batch_norm import (finish_backward_stats, finish_train_forward,
                                    finish_train_stats)

# Reductions may reorder their float64 additions, so that LLVM can vectorise them
# (strict left-to-right order makes each add wait for the previous one).  Only
# reassociation: no assumptions about NaN or infinity.
REDUCE_MATH = {"reassoc", "contract"}


def _by_rows(kernel, x3, outs, *args):
    """``kernel(*args, *outs, lo, hi)`` over the N * C rows of ``x3``, shared out among
    threads; returns ``outs``."""
    n, c = x3.shape[:2]
    share_range(kernel, n * c, x3.size, *args, *outs)
    return outs


@njit(cache=True, nogil=True, fastmath=REDUCE_MATH)
def _row_moments(x3, means, squares, lo, hi):
    """For every (n, c) row of rows [lo, hi), in float64: its mean, and the sum over L
    of (x - that mean)^2 (two passes over the row, the second from cache)."""
    n, c, length = x3.shape
    for row in range(lo, hi):
        i, j = row // c, row % c
        s = 0.0
        for k in range(length):
            s += x3[i, j, k]
        m = s / length
        q = 0.0
        for k in range(length):
            d = x3[i, j, k] - m
            q += d * d
        means[i, j] = m
        squares[i, j] = q


def channel_stats(x3):
    """Per-channel mean and biased variance (float64), in ONE pass over memory: each
    row's mean and centred sum of squares (two passes over the row while it is in
    cache), then the rows merged per channel (Chan et al.'s pairwise update, all rows
    of one length): sum of squares = sum of the rows' + L * sum (row mean - mean)^2.
    As accurate as the reference's two passes over the whole batch (no sum(x^2) -
    sum(x)^2 cancellation) but not its bits; it reads x once instead of twice, which
    in a training step (x just written by the layer before, larger than the cache)
    is the time: DCGAN's 7x7 and 14x14 batch norms."""
    n, _, length = x3.shape
    means = np.empty(x3.shape[:2], dtype=np.float64)
    squares = np.empty(x3.shape[:2], dtype=np.float64)
    _by_rows(_row_moments, x3, (means, squares), x3)
    mean = means.sum(axis=0) / n
    spread = means - mean
    var = (squares.sum(axis=0) + length * (spread * spread).sum(axis=0)) / (n * length)
    return mean, var


def train_stats(x3, eps, running_mean=None, running_var=None, momentum=0.1):
    """Per-channel ``(mean, var, inv_std)`` and the running update (as the reference:
    its composition, on these kernels' channel statistics)."""
    mean, var = channel_stats(x3)
    return finish_train_stats(x3, mean, var, eps, running_mean, running_var, momentum)


def train_forward(x3, weight, bias, eps, running_mean=None, running_var=None, momentum=0.1):
    """``train_stats`` then ``normalize_affine`` (as the reference's composition)."""
    mean, _, inv_std = train_stats(x3, eps, running_mean, running_var, momentum)
    return finish_train_forward(normalize_affine, x3, weight, bias, mean, inv_std)


def normalize_affine(x3, mean, scale, shift):
    """``y = (x - mean[c]) * scale[c] + shift[c]`` in ``x3``'s dtype."""
    return _by_rows(_normalize_affine, x3, (np.empty_like(x3),), x3, mean, scale, shift)[0]


@njit(cache=True, nogil=True)
def _normalize_affine(x3, mean, scale, shift, out, lo, hi):
    n, c, length = x3.shape
    for row in range(lo, hi):
        i, j = row // c, row % c
        m, a, b = mean[j], scale[j], shift[j]
        for k in range(length):
            out[i, j, k] = (x3[i, j, k] - m) * a + b


@njit(cache=True, nogil=True, fastmath=REDUCE_MATH)
def _row_backward_sums(g3, x3, mean, sg, sgx, lo, hi):
    n, c, length = x3.shape
    for row in range(lo, hi):
        i, j = row // c, row % c
        m = mean[j]
        a = 0.0
        b = 0.0
        for k in range(length):
            g = np.float64(g3[i, j, k])
            a += g
            b += g * (x3[i, j, k] - m)
        sg[i, j] = a
        sgx[i, j] = b


def backward_reduce(g3, x3, mean):
    """Per-channel ``sum(g)`` and ``sum(g * (x - mean))`` in float64."""
    sums = (np.empty(x3.shape[:2], dtype=np.float64), np.empty(x3.shape[:2], dtype=np.float64))
    sg, sgx = _by_rows(_row_backward_sums, x3, sums, g3, x3, mean)
    return sg.sum(axis=0), sgx.sum(axis=0)


def backward_stats(g3, x3, mean, inv_std):
    """Per-channel ``sum(g)`` and ``sum(g * xhat)`` in float64 (as the reference)."""
    return finish_backward_stats(*backward_reduce(g3, x3, mean), inv_std)


def backward_input(g3, x3, mean, inv_std, weight, sum_g, sum_g_xhat):
    """``dx = weight*inv_std * (g - sum_g/M - xhat * sum_g_xhat/M)`` in x's dtype."""
    return _by_rows(_backward_input, x3, (np.empty_like(x3),), g3, x3, mean, inv_std, weight,
                    sum_g, sum_g_xhat)[0]


@njit(cache=True, nogil=True)
def _backward_input(g3, x3, mean, inv_std, weight, sum_g, sum_g_xhat, out, lo, hi):
    n, c, length = x3.shape
    count = n * length
    for row in range(lo, hi):
        i, j = row // c, row % c
        m, s = mean[j], inv_std[j]
        k_scale = weight[j] * s
        a = sum_g[j] / count
        b = sum_g_xhat[j] / count
        for k in range(length):
            xhat = (x3[i, j, k] - m) * s
            out[i, j, k] = k_scale * (g3[i, j, k] - a - xhat * b)
