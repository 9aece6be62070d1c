"""Batch normalisation in plain numpy: the readable oracle for the fast kernels.

Every function works on a ``(N, C, L)`` view of the input: N samples, C
channels, L = the product of the spatial sizes (1 for a ``(N, C)`` input).
Statistics are per channel, over the N * L values of that channel.  They are
accumulated in float64 whatever the input's dtype, so float32 results are as
accurate as float32 allows.  Per-channel vectors (mean, scale, shift, sums) are
float64 arrays of shape ``(C,)``.

The forward pass, for each channel c with M = N * L values:

    mean    = sum(x) / M
    var     = sum((x - mean)^2) / M           (biased: what normalises the batch)
    inv_std = 1 / sqrt(var + eps)
    y       = (x - mean) * (weight * inv_std) + bias

The backward pass, with xhat = (x - mean) * inv_std:

    dbias   = sum(g)
    dweight = sum(g * xhat)
    dx      = weight * inv_std / M * (M * g - sum(g) - xhat * sum(g * xhat))

(the two subtracted terms are what the batch statistics' own dependence on x
contributes: shifting every x moves the mean, scaling every x moves the std).
"""
import numpy as np


def _per_channel(vector):
    """A (C,) vector shaped (1, C, 1) to broadcast over (N, C, L)."""
    return vector[None, :, None]


def channel_stats(x3):
    """Per-channel mean and biased variance of ``x3`` (N, C, L), in float64.

    Two passes (mean first, then the squared deviations from it) rather than
    sum(x^2) - sum(x)^2, which cancels catastrophically when |mean| >> std.
    """
    x = x3.astype(np.float64)
    mean = x.mean(axis=(0, 2))
    centered = x - _per_channel(mean)
    var = (centered * centered).mean(axis=(0, 2))
    return mean, var


def normalize_affine(x3, mean, scale, shift):
    """``y = (x - mean[c]) * scale[c] + shift[c]`` in ``x3``'s dtype.

    Training passes the batch mean and ``scale = weight * inv_std``; evaluation
    passes the running mean and ``scale = weight / sqrt(running_var + eps)``.
    Subtracting the mean first (instead of folding it into the shift) keeps
    float32 accurate when the mean is large compared with the spread.
    """
    x = x3.astype(np.float64)
    y = (x - _per_channel(mean)) * _per_channel(scale) + _per_channel(shift)
    return y.astype(x3.dtype)


def backward_reduce(g3, x3, mean):
    """Per-channel ``sum(g)`` and ``sum(g * (x - mean))`` in float64."""
    g = g3.astype(np.float64)
    centered = x3.astype(np.float64) - _per_channel(mean)
    return g.sum(axis=(0, 2)), (g * centered).sum(axis=(0, 2))


def backward_input(g3, x3, mean, inv_std, weight, sum_g, sum_g_xhat):
    """The input gradient ``dx`` in ``x3``'s dtype (formula in the module docstring).

    ``weight`` is the (C,) float64 weight (ones without affine); ``sum_g`` and
    ``sum_g_xhat`` come from ``backward_reduce`` (the latter times inv_std).
    """
    n, _, length = x3.shape
    count = n * length
    g = g3.astype(np.float64)
    xhat = (x3.astype(np.float64) - _per_channel(mean)) * _per_channel(inv_std)
    dx = _per_channel(weight * inv_std) * (
        g - _per_channel(sum_g / count) - xhat * _per_channel(sum_g_xhat / count)
    )
    return dx.astype(x3.dtype)
