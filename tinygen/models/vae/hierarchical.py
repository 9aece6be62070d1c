"""``HierConvVAE``: a convolutional VAE with two stochastic layers, after ConvHVAE
(Tomczak & Welling, "VAE with a VampPrior", AISTATS 2018).

Generative model   p(x, z1, z2) = p(x | z1, z2) p(z1 | z2) p(z2)
Inference model    q(z1, z2 | x) = q(z1 | x, z2) q(z2 | x)

z2 (``latent_dim``) is the top layer, under the prior p(z2): N(0, I) or the VampPrior
(1/K) sum_k q(z2 | u_k) -- the mixture of the top encoder's posteriors at the learned
pseudo-inputs, as in the paper's hierarchical VampPrior.  z1 (``latent1_dim``) sits
below it; p(z1 | z2), q(z1 | x, z2) and q(z2 | x) are diagonal Gaussians, p(x | z1, z2)
is the likelihood (Bernoulli logits over binarised pixels by default).

Networks (sizes scaled to a 2-core CPU; the paper has 40 units in each stochastic
layer, gated conv/dense layers and 300-unit hidden layers):

    features(x)    (1,28,28) -conv 4x4 s2-> (32,14,14) -conv 4x4 s2-> (64,7,7)
                   -> flatten -> hidden (ReLU)                   [shared by both q's]
    q(z2 | x)      features -> 2 * latent_dim
    q(z1 | x, z2)  [features, hidden(z2)] -> hidden -> 2 * latent1_dim
    p(z1 | z2)     z2 -> hidden -> 2 * latent1_dim
    p(x | z1, z2)  [z1, z2] -> hidden -> (64,7,7) -convT-> (32,14,14) -convT-> (C,28,28)

The two posteriors share the convolutional features of x (the paper gives each its own
x-network): a pass over the pixels is the costly part on a CPU, and the VampPrior runs
q(z2 | .) on every pseudo-input at every step anyway.  Every log-variance is clamped
to [-6, 2] (the paper's hardtanh range), which keeps p(z1 | z2) from collapsing onto a
point while the KL weight is still warming up.

The ELBO, one reparameterised sample (z2 ~ q(z2|x), then z1 ~ q(z1|x,z2)):

    log p(x|z1,z2) - [log q(z1|x,z2) - log p(z1|z2)] - KL_2
    KL_2 = KL(q(z2|x) || N(0,I)) in closed form under the standard prior, else the
           sample estimate log q(z2|x) - log p(z2)

with the log q terms formed from the standardised noise (``log_q_from_noise``) so
they do not lose digits to z - mu.  The importance-weighted bound uses the same joint
proposal: w = p(x|z1,z2) p(z1|z2) p(z2) / (q(z1|x,z2) q(z2|x)).
"""
import numbers

import numpy as np

from ... import nn
from ...backend import to_numpy
from ...ops.elementwise import clamp, exp
from ...ops.reduce import sum as _sum
from ...ops.shape import chunk, concatenate
from ..likelihoods import gaussian_kl_standard, gaussian_log_prob
from .model import VAE, _positive_count, _repeat, _samples_of, log_mean_exp
from .networks import _sizes, conv_decoder_layers, conv_encoder_layers, conv_sizes
from .prior import LOG_2PI, mixture_log_prob

LOGVAR_RANGE = (-6.0, 2.0)


def log_q_from_noise(eps, logvar):
    """log N(z; mu, diag(exp(logvar))) summed over the last axis, at z = mu + sigma eps,
    written with eps itself: -(eps^2 + logvar + log 2 pi) / 2 per dimension."""
    return _sum((eps * eps + logvar + LOG_2PI) * -0.5, axis=-1)


def kl_sample(eps, q_logvar, z, p_mean, p_logvar):
    """The one-sample estimate log q(z) - log p(z) (summed over the last axis), z drawn
    from q as mu_q + exp(q_logvar / 2) eps, p = N(p_mean, diag(exp(p_logvar)))."""
    return log_q_from_noise(eps, q_logvar) - _sum(gaussian_log_prob(z, p_mean, p_logvar),
                                                  axis=-1)


def _gaussian_params(h):
    """A layer's output (N, 2L) as (mean, clamped log-variance)."""
    mean, logvar = chunk(h, 2, axis=1)
    return mean, clamp(logvar, *LOGVAR_RANGE)


def _numpy_log_normal(z, mean, logvar):
    """log N(z; mean, diag(exp(logvar))) summed over the last axis, float64 numpy."""
    d = z - mean
    return np.sum(-0.5 * (d * d * np.exp(-logvar) + logvar + LOG_2PI), axis=-1)


class HierConvVAE(VAE):
    def __init__(self, latent_dim=32, latent1_dim=32, channels=(32, 64), hidden=256,
                 likelihood="bernoulli", dtype=None, device=None, prior="standard",
                 pseudo_inputs=500, **decoder):
        super().__init__(latent_dim, likelihood, prior, pseudo_inputs, dtype, device=device,
                         **decoder)
        if (isinstance(latent1_dim, bool) or not isinstance(latent1_dim, numbers.Integral)
                or latent1_dim < 1):
            raise ValueError(f"latent1_dim must be a positive int, got {latent1_dim!r}")
        if isinstance(hidden, bool) or not isinstance(hidden, numbers.Integral) or hidden < 1:
            raise ValueError(f"HierConvVAE: hidden must be a positive int (the width of its "
                             f"dense layers), got {hidden!r}")
        channels = _sizes(channels)
        self.latent1_dim, self.channels, self.hidden = int(latent1_dim), channels, int(hidden)
        kw = dict(dtype=dtype, device=device)
        sizes = conv_sizes(channels, "HierConvVAE")
        self.feature_shape = (channels[-1], sizes[-1], sizes[-1])
        features = channels[-1] * sizes[-1] ** 2
        h, l1, l2 = self.hidden, self.latent1_dim, latent_dim

        self.features = nn.Sequential(*conv_encoder_layers(channels, False, kw),
                                      nn.Linear(features, h, **kw), nn.ReLU())
        self.q2 = nn.Linear(h, 2 * l2, **kw)
        self.q1_z2 = nn.Sequential(nn.Linear(l2, h, **kw), nn.ReLU())
        self.q1 = nn.Sequential(nn.Linear(2 * h, h, **kw), nn.ReLU(),
                                nn.Linear(h, 2 * l1, **kw))
        self.p1 = nn.Sequential(nn.Linear(l2, h, **kw), nn.ReLU(), nn.Linear(h, 2 * l1, **kw))
        self.decoder_input = nn.Sequential(nn.Linear(l1 + l2, h, **kw), nn.ReLU(),
                                           nn.Linear(h, features, **kw), nn.ReLU())
        self.decoder = nn.Sequential(*conv_decoder_layers(
            channels, sizes, self.decoder_channels, False, kw))

    # --- the four conditionals ----------------------------------------------------------------
    def encode(self, x):
        """q(z2|x): (mean, logvar), each (N, latent_dim) -- also the VampPrior's components
        when x are the pseudo-inputs."""
        return _gaussian_params(self.q2(self.features(self._input(x))))

    def _q1(self, features, z2):
        """q(z1 | x, z2) from x's features and z2: (mean, logvar), each (N, latent1_dim)."""
        return _gaussian_params(self.q1(concatenate([features, self.q1_z2(z2)], axis=1)))

    def _p1(self, z2):
        """p(z1 | z2): (mean, logvar), each (N, latent1_dim)."""
        return _gaussian_params(self.p1(z2))

    def decode(self, code):
        """p(x | z1, z2) parameters (N, C, 28, 28) for code = [z1, z2] (N, latent1 + latent)."""
        if code.ndim != 2 or code.shape[1] != self.latent1_dim + self.latent_dim:
            raise ValueError(f"HierConvVAE.decode: expected codes [z1, z2] of shape (N, "
                             f"{self.latent1_dim + self.latent_dim}), got {code.shape}")
        h = self.decoder_input(code).reshape(code.shape[0], *self.feature_shape)
        return self.decoder(h)

    # --- the bound ------------------------------------------------------------------------------
    def elbo_terms(self, x, generator):
        """(expected log-likelihood, KL_1 + KL_2) per example, one joint sample each."""
        log_px, kl1, kl2 = self.elbo_parts(x, generator)
        return log_px, kl1 + kl2

    def elbo_parts(self, x, generator):
        """(log p(x|z1,z2), log q(z1|x,z2) - log p(z1|z2), KL_2) per example."""
        x = self._input(x)
        h = self.features(x)
        mu2, logvar2 = _gaussian_params(self.q2(h))
        eps2 = self._tensor(self._noise(generator, mu2.shape))
        z2 = mu2 + exp(logvar2 * 0.5) * eps2
        mu1, logvar1 = self._q1(h, z2)
        eps1 = self._tensor(self._noise(generator, mu1.shape))
        z1 = mu1 + exp(logvar1 * 0.5) * eps1
        p_mean, p_logvar = self._p1(z2)
        log_px = self.log_likelihood(self.decode(concatenate([z1, z2], axis=1)), x)
        kl1 = kl_sample(eps1, logvar1, z1, p_mean, p_logvar)
        if self.prior_name == "standard":
            kl2 = _sum(gaussian_kl_standard(mu2, logvar2), axis=1)
        else:
            kl2 = log_q_from_noise(eps2, logvar2) - mixture_log_prob(
                z2, *self.prior_components())
        return log_px, kl1, kl2

    def log_weight_terms(self, x, k, generator):
        """(log p(x|z1,z2), log p(z1|z2) p(z2) - log q(z1|x,z2) q(z2|x)), each (k, N), for
        k joint draws per image, differentiable (``VAE.log_weight_terms``).  The noise is
        drawn (k, N, latent + latent1) in one piece, z2's columns first, as
        ``_iwae_block`` draws it; x's features are computed once for all k draws."""
        k = _positive_count(k, "log_weight_terms")
        x = self._input(x)
        n, l1, l2 = x.shape[0], self.latent1_dim, self.latent_dim
        h = self.features(x)
        mu2, logvar2 = _gaussian_params(self.q2(h))
        eps = self._noise(generator, (k, n, l2 + l1))
        eps2, eps1 = self._tensor(eps[..., :l2]), self._tensor(eps[..., l2:].reshape(k * n, l1))
        z2 = (mu2 + exp(logvar2 * 0.5) * eps2).reshape(k * n, l2)          # sample-major
        log_q2 = log_q_from_noise(eps2, logvar2)                           # (k, N)
        mu1, logvar1 = self._q1(_repeat(h, k), z2)
        z1 = mu1 + exp(logvar1 * 0.5) * eps1
        p_mean, p_logvar = self._p1(z2)
        log_px = self.log_likelihood(self.decode(concatenate([z1, z2], axis=1)),
                                     _repeat(x, k), _samples_of(self._pixel_context(x), k))
        log_ratio = (self._log_prior(z2) - kl_sample(eps1, logvar1, z1, p_mean, p_logvar))
        return log_px.reshape(k, n), log_ratio.reshape(k, n) - log_q2

    def _iwae_block(self, x, k, generator, samples_per_pass, components):
        """log (1/k) sum_i w_i for the images x (b of them), w_i over the joint proposal;
        x's features are computed once and reused by every sample's q(z1 | x, z2)."""
        b = x.shape[0]
        feats = self.features(x)
        mu2, logvar2 = (to_numpy(t.data).astype(np.float64)
                        for t in _gaussian_params(self.q2(feats)))
        sigma2 = np.exp(0.5 * logvar2)
        feats_np = to_numpy(feats.data)
        x_np = to_numpy(x.data)
        l1, l2 = self.latent1_dim, self.latent_dim
        log_w = np.empty((k, b), dtype=np.float64)
        context = self._pixel_context(x)
        for s0 in range(0, k, samples_per_pass):
            s = min(samples_per_pass, k - s0)
            # one draw per (sample, image) for both layers: the stream, and so the
            # estimate, is the same whatever the pass size
            eps = self._noise(generator, (s, b, l2 + l1)).astype(np.float64)
            eps2, eps1 = eps[..., :l2], eps[..., l2:].reshape(s * b, l1)
            z2 = (mu2 + sigma2 * eps2).reshape(s * b, l2)                 # sample-major
            log_q2 = np.sum(-0.5 * (eps2 * eps2 + logvar2 + LOG_2PI), axis=-1)
            log_p2 = self.log_prior(z2, components).reshape(s, b)
            z2_t = self._tensor(z2)
            f = self._tensor(np.broadcast_to(feats_np, (s,) + feats_np.shape).reshape(
                s * b, -1))
            mu1, logvar1 = (to_numpy(t.data).astype(np.float64) for t in self._q1(f, z2_t))
            z1 = mu1 + np.exp(0.5 * logvar1) * eps1
            log_q1 = np.sum(-0.5 * (eps1 * eps1 + logvar1 + LOG_2PI), axis=-1)
            p_mean, p_logvar = (to_numpy(t.data).astype(np.float64) for t in self._p1(z2_t))
            log_p1 = _numpy_log_normal(z1, p_mean, p_logvar)
            params = self.decode(self._tensor(np.concatenate([z1, z2], axis=1)))
            xs = x if s == 1 else self._tensor(np.broadcast_to(
                x_np, (s,) + x_np.shape).reshape((s * b,) + x_np.shape[1:]))
            log_px = to_numpy(self.log_likelihood(params, xs, _samples_of(context, s)).data)
            log_w[s0:s0 + s] = ((log_px.astype(np.float64) + log_p1 - log_q1).reshape(s, b)
                                + log_p2 - log_q2)
        return log_mean_exp(log_w)

    # --- codes for sampling and looking ---------------------------------------------------------
    def _prior_code(self, generator, n):
        """[z1, z2]: z2 ~ p(z2), then z1 ~ p(z1 | z2)."""
        z2 = self._prior_noise(generator, n)
        p_mean, p_logvar = (to_numpy(t.data) for t in self._p1(self._tensor(z2)))
        eps1 = self._noise(generator, p_mean.shape)
        z1 = p_mean + np.exp(0.5 * p_logvar) * eps1
        return np.concatenate([z1, z2], axis=1).astype(z2.dtype)

    def _posterior_code(self, x):
        """[mean of q(z1 | x, mu2), mu2], mu2 the mean of q(z2 | x)."""
        h = self.features(self._input(x))
        mu2, _ = _gaussian_params(self.q2(h))
        mu1, _ = self._q1(h, mu2)
        return concatenate([mu1, mu2], axis=1)

    def extra_repr(self):
        return (f"latent_dim={self.latent_dim}, latent1_dim={self.latent1_dim}, "
                f"likelihood={self.likelihood.name!r}, prior={self.prior_name!r}")

