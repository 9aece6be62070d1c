"""Log-densities that generative models share, written with differentiable tinygen ops.

Every function returns per-element log-probabilities (nats), in the broadcast shape of
its arguments; a model sums them over the dimensions of one example itself.

- ``bernoulli_log_prob(logits, x)``: binary pixels from logits (the VAE on binarised data).
- ``discretized_logistic_log_prob(x, mean, log_scale)``: 8-bit pixels (PixelCNN++'s
  likelihood, Salimans et al. 2017), for the VAE on 8-bit data and the components of
  PixelCNN's mixture output (``logistic_mixture.py``).
- ``gaussian_log_prob``, ``standard_normal_log_prob``, ``gaussian_kl_standard``: the
  diagonal Gaussians of a VAE's encoder and prior.

The likelihood *objects* at the end (``Bernoulli``, ``DiscretizedLogistic``) bundle
what a model needs about its data format: how a uint8 batch becomes the tensor the model
sees, how many decoder channels parametrise a pixel, the log-likelihood, and how decoder
parameters become uint8 images again (their means, or samples).
"""
import math

import numpy as np

from ..autograd.tensor import Tensor
from ..ops.elementwise import clamp, exp, log, softplus, where, _const
from ..ops.loss import binary_cross_entropy_with_logits
from ..ops.shape import chunk
from ..data.transforms import binarize_dynamic, quantize_8bit, to_symmetric, to_unit

LOG_2PI = math.log(2.0 * math.pi)
# PixelCNN++'s lower bound on a discretised logistic's log-scale (its code:
# ``tf.maximum(log_scales, -7.)``).  At s = e^-7 ~ 9e-4 a logistic centred on a level
# puts tanh(h / 2s) ~ 0.97 of its mass into that level's bin (half-width h = 1/255), so
# the bound costs at most ~0.04 bits per sub-pixel, while 1/s <= e^7 ~ 1100 bounds the
# standardised bin edges (x -+ h - mean)/s and with them the gradients.
LOG_SCALE_MIN = -7.0


def _tensor_like(x, like):
    """``x`` (Tensor, numpy array or number) as a Tensor of ``like``'s dtype, no gradient."""
    if isinstance(x, Tensor):
        return x
    return _const(np.asarray(x, dtype=like.dtype))


# --- Bernoulli ---------------------------------------------------------------------------
def bernoulli_log_prob(logits, x):
    """log p(x) for x in {0, 1} under Bernoulli(sigmoid(logits)), elementwise:
    ``x * logits - softplus(logits)``, computed as minus the stable BCE-with-logits."""
    return -binary_cross_entropy_with_logits(logits, _tensor_like(x, logits), reduction="none")


# --- discretized logistic ------------------------------------------------------------------
def _log1mexp(d):
    """log(1 - exp(-d)) for d > 0, accurate for small d too (no expm1 op: a series there).

    Both branches are evaluated (``where``); each one's input is clamped into the
    range where it is finite, so the branch not taken never produces inf/NaN
    values or gradients."""
    small = clamp(d, max=1e-2)
    # 1 - exp(-d) = d (1 - d/2 + d^2/6 - d^3/24 + d^4/120 - ...); the first term left out,
    # d^5/720, is < 2e-13 for d < 1e-2.
    series = log(small) + log(1.0 - small * (0.5 - small * (1.0 / 6.0 - small * (
        1.0 / 24.0 - small * (1.0 / 120.0)))))
    large = log(1.0 - exp(-clamp(d, min=1e-2)))
    return where(d.data < 1e-2, series, large)


def discretized_logistic_log_prob(x, mean, log_scale, num_classes=256):
    """log P(x) of pixels discretised into ``num_classes`` levels, under a logistic
    distribution with ``mean`` and ``log_scale`` (PixelCNN++, Salimans et al. 2017).

    ``x`` holds the levels rescaled to [-1, 1] (level k is 2k/(num_classes-1) - 1,
    what ``tinygen.data.to_symmetric`` gives for uint8); ``mean`` and ``log_scale``
    are on the same scale.  Level k owns the bin [x - h, x + h], h = 1/(num_classes-1);
    the two edge levels own everything beyond: (-inf, -1 + h] and [1 - h, inf).  Hence
    the probabilities of all levels sum to exactly 1 (see the tests).

    With s = exp(log_scale), a = (x + h - mean)/s and b = (x - h - mean)/s, the
    log-mass of an inner bin is log(sigmoid(a) - sigmoid(b)), computed without
    cancellation as

        log sigmoid(a) + log sigmoid(-b) + log(1 - exp(-(a - b)))

    (because sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - e^(b-a))), with
    a - b = 2h/s formed directly.  So no PixelCNN++-style fallback to the density at
    the bin centre is needed when the bin's mass underflows.  The edges are
    log sigmoid(a) = -softplus(-a) and log(1 - sigmoid(b)) = -softplus(b).
    """
    if num_classes < 2:
        raise ValueError(f"discretized_logistic_log_prob: num_classes must be >= 2, got "
                         f"{num_classes}")
    x = _tensor_like(x, mean)
    half = 1.0 / (num_classes - 1)
    inv_scale = exp(-log_scale)
    centered = x - mean
    a = (centered + half) * inv_scale          # upper edge of the bin, standardised
    b = (centered - half) * inv_scale          # lower edge
    log_cdf_upper = -softplus(-a)              # log sigmoid(a)
    log_sf_lower = -softplus(b)                # log (1 - sigmoid(b))
    inner = log_cdf_upper + log_sf_lower + _log1mexp(inv_scale * (2.0 * half))
    xd = x.data
    first = xd < -1.0 + half / 2               # level 0: the bin is (-inf, -1 + h]
    last = xd > 1.0 - half / 2                 # level num_classes-1: [1 - h, inf)
    return where(first, log_cdf_upper, where(last, log_sf_lower, inner))


def discretized_logistic_sample(mean, log_scale, generator, num_classes=256):
    """Integer levels 0..num_classes-1 drawn from the discretised logistic (numpy arrays
    or Tensors in; an int64 numpy array out): a logistic draw, rounded to its bin."""
    mean = mean.data if isinstance(mean, Tensor) else np.asarray(mean)
    log_scale = log_scale.data if isinstance(log_scale, Tensor) else np.asarray(log_scale)
    u = generator.uniform(1e-5, 1.0 - 1e-5, size=np.broadcast(mean, log_scale).shape)
    draw = mean + np.exp(log_scale) * (np.log(u) - np.log1p(-u))
    return _levels(draw, num_classes)


def categorical_inverse_cdf(weights, u):
    """Draws from categorical distributions by inverse CDF (numpy): ``weights`` (N, K,
    ...) are non-negative and need not be normalised, ``u`` (N, ...) uniforms in [0, 1);
    returns the int64 indices (N, ...): the first category whose cumulative weight
    exceeds ``u`` times the total."""
    cdf = np.cumsum(weights, axis=1)
    index = (cdf < (u * cdf[:, -1])[:, None]).sum(axis=1)
    return np.minimum(index, weights.shape[1] - 1)


def _levels(values, num_classes=256):
    """Values on the [-1, 1] scale -> the nearest level 0..num_classes-1 (int64)."""
    k = np.rint((np.asarray(values, dtype=np.float64) + 1.0) * (num_classes - 1) / 2.0)
    return np.clip(k, 0, num_classes - 1).astype(np.int64)


# --- Gaussians ---------------------------------------------------------------------------
def gaussian_log_prob(z, mean, logvar):
    """log N(z; mean, diag(exp(logvar))), elementwise."""
    diff = z - mean
    return (diff * diff * exp(-logvar) + logvar + LOG_2PI) * -0.5


def standard_normal_log_prob(z):
    """log N(z; 0, I), elementwise."""
    return (z * z + LOG_2PI) * -0.5


def gaussian_kl_standard(mean, logvar):
    """KL(N(mean, diag(exp(logvar))) || N(0, I)), elementwise (sum over latent dims):
    0.5 (mean^2 + exp(logvar) - logvar - 1)."""
    return (mean * mean + exp(logvar) - logvar - 1.0) * 0.5


# --- likelihood objects: a data format and its decoder parametrisation ---------------------
class Bernoulli:
    """Binary pixels; the decoder outputs one logit per pixel.

    ``prepare`` binarises uint8 images dynamically: each pixel is 1 with probability
    (its value / 255), drawn from ``generator`` (a fresh draw every time it is called)."""

    name = "bernoulli"
    channels = 1  # decoder output channels per image channel

    def prepare(self, images, generator, dtype=np.float32):
        """uint8 (N, H, W) -> float {0, 1} (N, 1, H, W)."""
        x = binarize_dynamic(to_unit(np.asarray(images)), generator, dtype=dtype)
        return x.reshape(x.shape[0], 1, *x.shape[-2:])

    def log_prob(self, params, x):
        """Per-pixel log p(x | params); params are the logits (N, 1, H, W)."""
        return bernoulli_log_prob(params, x)

    def mean_images(self, params):
        """The Bernoulli means sigmoid(logits) as uint8 (N, H, W) grey levels."""
        logits = np.asarray(params.data if isinstance(params, Tensor) else params, np.float64)
        p = 0.5 * (1.0 + np.tanh(0.5 * logits))     # a sigmoid that never overflows
        return np.clip(np.rint(p * 255.0), 0, 255).astype(np.uint8)[:, 0]

    def sample_images(self, params, generator):
        """Binary samples as uint8 (N, H, W) images of 0 and 255."""
        logits = np.asarray(params.data if isinstance(params, Tensor) else params, np.float64)
        p = 0.5 * (1.0 + np.tanh(0.5 * logits))
        return ((generator.random(p.shape) < p) * 255).astype(np.uint8)[:, 0]


class DiscretizedLogistic:
    """8-bit pixels; the decoder outputs two channels per pixel: the mean (channel 0) and
    the log-scale (channel 1), on the [-1, 1] scale of ``to_symmetric``.

    The log-scale is clamped below at ``log_scale_min`` (``LOG_SCALE_MIN``, -7 as in
    PixelCNN++), so a pixel's probability cannot collapse onto a single level with
    vanishing scale."""

    name = "discretized-logistic"
    channels = 2

    def __init__(self, log_scale_min=LOG_SCALE_MIN):
        self.log_scale_min = float(log_scale_min)

    def prepare(self, images, generator=None, dtype=np.float32):
        """uint8 (N, H, W) -> float in [-1, 1] (N, 1, H, W); deterministic."""
        x = to_symmetric(quantize_8bit(images), dtype=dtype)
        return x.reshape(x.shape[0], 1, *x.shape[-2:])

    def split(self, params):
        mean, log_scale = chunk(params, 2, axis=1)
        return mean, clamp(log_scale, min=self.log_scale_min)

    def log_prob(self, params, x):
        mean, log_scale = self.split(params)
        return discretized_logistic_log_prob(x, mean, log_scale)

    def mean_images(self, params):
        """The logistic's mean, rounded to the nearest level, as uint8 (N, H, W)."""
        mean = params.data[:, :1] if isinstance(params, Tensor) else np.asarray(params)[:, :1]
        return _levels(mean).astype(np.uint8)[:, 0]

    def sample_images(self, params, generator):
        data = params.data if isinstance(params, Tensor) else np.asarray(params)
        log_scale = np.maximum(data[:, 1:2], self.log_scale_min)
        return discretized_logistic_sample(data[:, :1], log_scale, generator).astype(
            np.uint8)[:, 0]


LIKELIHOODS = {"bernoulli": Bernoulli, "discretized-logistic": DiscretizedLogistic}


def get_likelihood(name):
    """A likelihood object by its config name."""
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose one of "
                         f"{', '.join(sorted(LIKELIHOODS))}")
    return LIKELIHOODS[name]()
