"""The discretized logistic mixture: PixelCNN++'s output distribution for 8-bit pixels
(Salimans et al. 2017, "PixelCNN++", section 2.1-2.2).

A pixel's C channels (C = 1, or 3 for R, G, B) are modelled jointly by a mixture of K
components.  Given component k, each channel is a logistic discretised into the 256
levels (``likelihoods.discretized_logistic_log_prob``: level 0 owns (-inf, -1 + 1/255],
level 255 owns [1 - 1/255, inf)), and for C = 3 the channels are coupled linearly, in
PixelCNN++'s order:

    mean_R = mu_R
    mean_G = mu_G + a * x_R                  a, b, c = tanh(raw coefficients), in (-1, 1)
    mean_B = mu_B + b * x_R + c * x_G

where x_R, x_G are the pixel's own R and G values on the [-1, 1] scale.  So

    p(x) = sum_k pi_k p_R(x_R | k) p_G(x_G | x_R, k) p_B(x_B | x_R, x_G, k)

with pi = softmax(mixture logits).  Each bin's mass is integrated exactly in log space
(log sigmoid(a) + log sigmoid(-b) + log(1 - e^(b - a)) for the bin [b, a] standardised;
the edge bins -softplus(-a) and -softplus(b)), so PixelCNN++'s fallback to the density
at the bin centre for masses below 1e-5 is not needed: far tails keep their exact
log-mass and gradient, and the 256 probabilities of a channel sum to 1 to rounding.
Log-scales are clamped below at ``LOG_SCALE_MIN`` = -7 as in PixelCNN++ (the reason is
beside the constant in ``likelihoods.py``).

The parameters of a pixel must see none of its own channels (the coupling is the only
route from R to G and B); a network then runs once per pixel, not once per sub-pixel,
to sample.

Parameter layout along axis 1 of the network output (P = K (1 + 2C) for C = 1,
K (1 + 2C + 3) for C = 3):

    [ mixture logits (K) | means (C x K) | log-scales (C x K) | coefficients (3 x K) ]

(channel-major: the means of channel c are entries c*K .. c*K + K - 1 of that block;
coefficients only for C = 3, ordered a, b, c as above).

Why this lives in its own module beside ``likelihoods.py``: it is a composition of
tinygen ops (hence differentiable to any order), not a new op, and it owns a network
parameterisation (the layout above, the coupling, the sampler) that only the
autoregressive image models use; ``likelihoods.py`` keeps the per-element densities it
builds on.
"""
import numbers

import numpy as np

from ..autograd.tensor import Tensor
from ..backend import to_numpy
from ..ops.elementwise import clamp, tanh
from ..ops.reduce import log_softmax, logsumexp
from ..ops.shape import stack
from .likelihoods import (LOG_SCALE_MIN, categorical_inverse_cdf,
                          discretized_logistic_log_prob)

LEVELS = 256
# the coupling coefficients of a 3-channel pixel: G on R, B on R, B on G
COUPLINGS = 3


def _positive_int(name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"discretized logistic mixture: {name} must be a positive int, "
                         f"got {value!r}")
    return int(value)


class DiscretizedLogisticMixture:
    """K-component discretized logistic mixture over C-channel 8-bit pixels.

    mixture = DiscretizedLogisticMixture(channels=3, mixtures=10)
    params: a Tensor (N, mixture.parameters_per_pixel, *spatial) (a network's output)
    mixture.log_prob(params, images)  -> Tensor (N, *spatial), log p(pixel) in nats
    mixture.sample(params, generator) -> uint8 (N, C, *spatial)
    """

    def __init__(self, channels, mixtures=10, log_scale_min=LOG_SCALE_MIN):
        channels = _positive_int("channels", channels)
        if channels not in (1, 3):
            raise ValueError(f"discretized logistic mixture: channels must be 1 (grey) or 3 "
                             f"(R, G, B with the PixelCNN++ coupling), got {channels}")
        self.channels = channels
        self.mixtures = _positive_int("mixtures", mixtures)
        self.log_scale_min = float(log_scale_min)

    @property
    def parameters_per_pixel(self):
        coefficients = COUPLINGS if self.channels == 3 else 0
        return self.mixtures * (1 + 2 * self.channels + coefficients)

    def __repr__(self):
        return (f"DiscretizedLogisticMixture(channels={self.channels}, "
                f"mixtures={self.mixtures}, log_scale_min={self.log_scale_min})")

    # --- checks --------------------------------------------------------------------------
    def _check_params(self, params):
        shape = tuple(params.shape)
        if len(shape) < 2 or shape[1] != self.parameters_per_pixel:
            raise ValueError(f"discretized logistic mixture: params must have shape (N, "
                             f"{self.parameters_per_pixel}, ...) for channels={self.channels}, "
                             f"mixtures={self.mixtures}; got {shape}")
        if np.dtype(params.dtype).kind != "f":
            raise TypeError(f"discretized logistic mixture: params must be floating point, "
                            f"got dtype {params.dtype}")

    def _check_images(self, params, images):
        """``images`` as an int64 numpy array (N, C, *spatial) of levels 0..255."""
        x = to_numpy(images.data) if isinstance(images, Tensor) else np.asarray(images)
        expected = (params.shape[0], self.channels) + tuple(params.shape[2:])
        if x.shape != expected:
            raise ValueError(f"discretized logistic mixture: images must have shape "
                             f"{expected} to match params {tuple(params.shape)}; got {x.shape}")
        if x.dtype.kind not in "iu":
            raise TypeError(f"discretized logistic mixture: images must hold integer levels "
                            f"0..{LEVELS - 1}, got dtype {x.dtype}")
        if x.size and (x.min() < 0 or x.max() >= LEVELS):
            raise ValueError(f"discretized logistic mixture: images must hold levels "
                             f"0..{LEVELS - 1}, got values in [{x.min()}, {x.max()}]")
        return x.astype(np.int64)

    # --- parameters ----------------------------------------------------------------------
    def split(self, params):
        """Tensors ``(logits (N, K, *S), means (N, C, K, *S), log_scales (N, C, K, *S),
        coefficients (N, 3, K, *S) or None)``: log-scales clamped below at
        ``log_scale_min``, coefficients through tanh (into (-1, 1))."""
        if not isinstance(params, Tensor):
            raise TypeError(f"discretized logistic mixture: params must be a Tensor, got "
                            f"{type(params).__name__}")
        self._check_params(params)
        n, spatial = params.shape[0], tuple(params.shape[2:])
        K, C = self.mixtures, self.channels
        per_channel = (n, C, K) + spatial
        logits = params[:, :K]
        means = params[:, K:K + C * K].reshape(per_channel)
        log_scales = clamp(params[:, K + C * K:K + 2 * C * K].reshape(per_channel),
                           min=self.log_scale_min)
        coefficients = None
        if C == 3:
            coefficients = tanh(params[:, K + 2 * C * K:].reshape((n, COUPLINGS, K) + spatial))
        return logits, means, log_scales, coefficients

    # --- likelihood ----------------------------------------------------------------------
    def log_prob(self, params, images):
        """log p(pixel) in nats, a Tensor (N, *spatial), for uint8 ``images``
        (N, C, *spatial) under the mixture ``params`` (N, P, *spatial)."""
        logits, means, log_scales, coefficients = self.split(params)   # checks params
        levels = self._check_images(params, images)
        # the levels on the [-1, 1] scale, a constant (N, C, 1, *S) beside the K components
        x_np = (levels * (2.0 / (LEVELS - 1)) - 1.0).astype(params.dtype)[:, :, None]
        x = Tensor._make(x_np)
        if params.device != "cpu":
            x = x.to(device=params.device)
        if coefficients is not None:
            x_r, x_g = x[:, 0], x[:, 1]
            means = stack([means[:, 0],
                           means[:, 1] + coefficients[:, 0] * x_r,
                           means[:, 2] + coefficients[:, 1] * x_r + coefficients[:, 2] * x_g],
                          axis=1)
        per_channel = discretized_logistic_log_prob(x, means, log_scales, LEVELS)
        per_component = per_channel.sum(axis=1) + log_softmax(logits, axis=1)  # (N, K, *S)
        return logsumexp(per_component, axis=1)

    # --- sampling ------------------------------------------------------------------------
    def sample(self, params, generator):
        """uint8 levels (N, C, *spatial) drawn from the mixture (numpy, float64).

        Draws ``generator.random((N, *spatial))`` (the component, by inverse CDF of the
        mixture weights) then ``generator.random((N, C, *spatial))`` (a logistic draw
        per channel, by its inverse CDF), in that order.  A channel's draw is rounded to
        its level and clipped to 0..255 before it enters the later channels' means: the
        coupling conditions on the pixel's discrete values, as ``log_prob`` does."""
        data = params.data if isinstance(params, Tensor) else params
        self._check_params(data)
        p = np.asarray(to_numpy(data), dtype=np.float64)
        n, spatial = p.shape[0], p.shape[2:]
        K, C = self.mixtures, self.channels
        logits = p[:, :K]
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        component = categorical_inverse_cdf(weights, generator.random((n,) + spatial))
        u = generator.random((n, C) + spatial)

        def chosen(block, rows):
            """The chosen component's entries of a (rows x K) parameter block."""
            start = K + block * C * K
            values = p[:, start:start + rows * K].reshape((n, rows, K) + spatial)
            return np.take_along_axis(values, component[:, None, None], axis=2)[:, :, 0]

        means = chosen(0, C)
        scales = np.exp(np.maximum(chosen(1, C), self.log_scale_min))
        coefficients = np.tanh(chosen(2, COUPLINGS)) if C == 3 else None
        with np.errstate(divide="ignore"):   # u = 0 draws -inf: level 0, which owns it
            logistic = np.log(u) - np.log1p(-u)
        out = np.empty((n, C) + spatial, dtype=np.uint8)
        x = np.empty((n, C) + spatial)       # the drawn levels on the [-1, 1] scale
        for c in range(C):
            mean = means[:, c]
            if c == 1:
                mean = mean + coefficients[:, 0] * x[:, 0]
            elif c == 2:
                mean = mean + coefficients[:, 1] * x[:, 0] + coefficients[:, 2] * x[:, 1]
            value = mean + scales[:, c] * logistic[:, c]
            level = np.clip(np.rint((value + 1.0) * ((LEVELS - 1) / 2.0)), 0, LEVELS - 1)
            out[:, c] = level
            x[:, c] = level * (2.0 / (LEVELS - 1)) - 1.0
        return out
