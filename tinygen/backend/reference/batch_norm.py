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

The op calls fused entry points on every device, which the CUDA kernels run in
one launch each (two for the forward): ``train_forward`` (``train_stats``: mean,
var, inv_std and the running-statistics update; then the normalised output) and
``backward_stats`` (sum(g), sum(g * xhat)).  Here they are composed from the pieces
above by ``finish_train_stats``, ``finish_train_forward`` and
``finish_backward_stats``, which the numba module shares, so the composition is
written once.
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
    ``sum_g_xhat`` come from ``backward_stats``.
    """
    n, _, length = x3.shape
    count = n * length
    g = g3.astype(np.float64)
    xhat = (x3.astype(np.float64) - _per_channel(mean)) * _per_channel(inv_std)
    dx = _per_channel(weight * inv_std) * (
        g - _per_channel(sum_g / count) - xhat * _per_channel(sum_g_xhat / count)
    )
    return dx.astype(x3.dtype)


# --- the fused entry points -------------------------------------------------------------------
def train_stats(x3, eps, running_mean=None, running_var=None, momentum=0.1):
    """Per-channel ``(mean, var, inv_std)`` in float64 (var biased, ``inv_std = 1 /
    sqrt(var + eps)``); with running buffers, also updates them in place (see
    ``finish_train_stats``)."""
    mean, var = channel_stats(x3)
    return finish_train_stats(x3, mean, var, eps, running_mean, running_var, momentum)


def train_forward(x3, weight, bias, eps, running_mean=None, running_var=None, momentum=0.1):
    """The training forward: ``train_stats``, then ``normalize_affine`` with
    ``scale = weight * inv_std`` and ``shift = bias`` (weight/bias: None, i.e. 1 and 0, or
    (C,) arrays).  Returns ``(y, mean, inv_std)``."""
    mean, _, inv_std = train_stats(x3, eps, running_mean, running_var, momentum)
    return finish_train_forward(normalize_affine, x3, weight, bias, mean, inv_std)


def backward_stats(g3, x3, mean, inv_std):
    """Per-channel ``sum(g)`` and ``sum(g * xhat)`` in float64: the bias and weight
    gradients, and what ``backward_input`` needs."""
    return finish_backward_stats(*backward_reduce(g3, x3, mean), inv_std)


def finish_train_stats(x3, mean, var, eps, running_mean, running_var, momentum):
    """``train_stats`` given ``channel_stats(x3)``: adds inv_std and the running update

        running = (1 - momentum) * running + momentum * batch

    in the buffers' dtype, with the batch's *unbiased* variance ``var * M / (M - 1)``
    for ``running_var`` (as PyTorch: the running variance estimates the population's,
    while the batch is normalised with its own biased one)."""
    if not eps > 0:
        raise ValueError(f"batch_norm: eps must be positive, got {eps!r}")
    inv_std = 1.0 / np.sqrt(var + eps)
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: running_mean and running_var must both be given or both "
                         "be None")
    if running_mean is not None:
        n, _, length = x3.shape
        count = n * length
        if count < 2:
            raise ValueError(f"batch_norm: the unbiased variance for the running statistics "
                             f"needs more than 1 value per channel, got input shape {x3.shape}")
        _update_running(running_mean, mean, momentum)
        _update_running(running_var, var * (count / (count - 1)), momentum)
    return mean, var, inv_std


def finish_train_forward(normalize, x3, weight, bias, mean, inv_std):
    """``train_forward`` given ``train_stats``'s mean and inv_std and a normalize_affine."""
    scale = inv_std if weight is None else weight.astype(np.float64) * inv_std
    shift = np.zeros_like(inv_std) if bias is None else bias.astype(np.float64)
    return normalize(x3, mean, scale, shift), mean, inv_std


def finish_backward_stats(sum_g, sum_g_centered, inv_std):
    """``backward_stats`` given ``backward_reduce``: xhat = (x - mean) * inv_std, and
    inv_std is constant per channel, so sum(g * xhat) = sum(g * (x - mean)) * inv_std."""
    return sum_g, sum_g_centered * inv_std


def _update_running(running, batch, momentum):
    running[...] = ((1.0 - momentum) * running + momentum * batch).astype(running.dtype)
