"""``VAE``: what every variational autoencoder here shares, whatever its networks.

A subclass provides ``_encoder_output(x) -> (N, 2 * latent_dim)`` (the means, then
the log-variances) and ``decode(z) -> params`` (N, C, H, W), C being the likelihood's
channels per pixel (1 Bernoulli logit; or the discretised logistic's mean and
log-scale).  From those this class builds

    elbo(x, generator)       per example: E_q[log p(x|z)] - KL(q(z|x) || p(z)), with one
                             reparameterised sample z = mu + sigma * eps and the KL in
                             closed form (the training objective, maximised)
    iwae_bound(x, k, ...)    per example: log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q
                             (Burda et al. 2016); a lower bound on log p(x) that
                             tightens as k grows: the test log-likelihood estimate
    log_weight_terms(x, k, generator)   the same k log-weights, split into log p(x|z_i)
                             and log p(z_i) - log q(z_i|x), differentiable: training on
                             their importance-weighted bound is IWAE (``train_k``)
    sample, reconstruct, interpolate   uint8 images for looking at

Prior (``prior``): ``"standard"`` N(0, I), KL in closed form; or ``"vamp"``, the
VampPrior over ``pseudo_inputs`` learned pseudo-inputs (``prior.py``), KL estimated
with the same sample z as the likelihood, log p(z) exact in the IWAE bound.

Every random draw comes from the numpy Generator passed in (noise arrays are drawn on
the CPU and moved to the model's device), so results are reproducible from a seed.
``x`` is always the model's input format: what ``prepare(images_uint8, generator)``
returns (binary {0, 1} for the Bernoulli likelihood, [-1, 1] for the discretised
logistic), shaped (N, 1, H, W) or (N, H, W).
"""
import contextlib
import math

import numpy as np

from ...autograd.grad_mode import no_grad
from ...autograd.tensor import Tensor
from ...backend import to_numpy
from ...creation import tensor
from ...nn import init
from ...nn.module import Module
from ...ops.elementwise import exp
from ...ops.reduce import sum as _sum
from ...ops.shape import chunk, expand
from ..likelihoods import gaussian_kl_standard, get_likelihood
from .pixel_decoder import PixelDecoderHead
from .prior import LOG_2PI, VampPrior, mixture_log_prob


def _positive_count(k, who):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{who}: k must be a positive int, got {k!r}")
    return int(k)


def log_mean_exp(log_w, axis=0):
    """log mean_i exp(log_w_i) along ``axis`` (numpy, float64), without overflow."""
    log_w = np.asarray(log_w, dtype=np.float64)
    top = log_w.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.mean(np.exp(log_w - top), axis=axis))


def _repeat(x, k):
    """x (N, ...) stacked k times along the first axis: (k * N, ...), sample-major."""
    return expand(x, (k,) + tuple(x.shape)).reshape((k * x.shape[0],) + tuple(x.shape[1:]))


def _samples_of(x, k):
    """``_repeat`` for a bound's pass of k samples per image (None stays None)."""
    return x if x is None or k == 1 else _repeat(x, k)


class VAE(Module):
    image_shape = (1, 28, 28)

    def __init__(self, latent_dim, likelihood="bernoulli", prior="standard", pseudo_inputs=500,
                 dtype=None, decoder="factorized", pixel_channels=32, pixel_layers=2,
                 pixel_features=8, device=None):
        super().__init__()
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
        self.latent_dim = latent_dim
        self.likelihood = get_likelihood(likelihood)
        if decoder not in ("factorized", "pixelcnn"):
            raise ValueError(f"decoder must be 'factorized' (p(x|z) a product over pixels) or "
                             f"'pixelcnn' (autoregressive over pixels), got {decoder!r}")
        # What decode() outputs per pixel: the likelihood's parameters, or the features the
        # autoregressive head reads beside the pixels (pixel_decoder.py).
        self.pixel_head = None
        self.decoder_channels = self.likelihood.channels
        if decoder == "pixelcnn":
            self.pixel_head = PixelDecoderHead(pixel_channels, pixel_layers, pixel_features,
                                               self.likelihood.channels, dtype=dtype,
                                               device=device)
            self.decoder_channels = self.pixel_head.features
        if prior not in ("standard", "vamp"):
            raise ValueError(f"prior must be 'standard' or 'vamp', got {prior!r}")
        self.prior_name = prior
        if prior == "vamp":
            low = 0.0 if self.likelihood.name == "bernoulli" else -1.0
            self.prior = VampPrior(pseudo_inputs, self.image_shape, low, 1.0, dtype=dtype)

    # --- what subclasses provide -------------------------------------------------------------
    def _encoder_output(self, x):
        raise NotImplementedError

    def decode(self, z):
        """Decoder parameters (N, C, H, W) for latents z (N, latent_dim)."""
        raise NotImplementedError

    # --- plumbing ----------------------------------------------------------------------------
    def reset_parameters(self, generator=None):
        """Re-draw every layer's initial weights from ``generator`` (a numpy Generator;
        the default generator when None): one seed, one model, whatever ran before."""
        init.reset_parameters_(self, generator)

    def _parameter(self):
        return next(iter(self.parameters()))

    def _tensor(self, array):
        """A numpy array as a constant Tensor of the model's dtype, on its device."""
        p = self._parameter()
        return tensor(array, dtype=p.dtype, device=p.device)

    def _input(self, x):
        """x (numpy or Tensor, (N, H, W) or (N, 1, H, W)) as a (N, 1, H, W) Tensor."""
        if not isinstance(x, Tensor):
            x = self._tensor(np.asarray(x))
        if x.ndim == 3:
            x = x.reshape(x.shape[0], 1, *x.shape[1:])
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"{type(self).__name__}: expected images of shape (N, "
                             f"{', '.join(map(str, self.image_shape))}), got {x.shape}")
        return x

    def _noise(self, generator, shape):
        dtype = self._parameter().dtype
        return generator.standard_normal(shape, dtype=np.float64).astype(dtype)

    @contextlib.contextmanager
    def _evaluating(self):
        """No graph and evaluation mode (BatchNorm's running statistics), then restore."""
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                yield
        finally:
            self.train(was_training)

    def prepare(self, images, generator=None):
        """uint8 images (N, H, W) -> the model's input format (numpy float, (N, 1, H, W));
        the Bernoulli likelihood binarises dynamically with ``generator``."""
        return self.likelihood.prepare(images, generator, dtype=self._parameter().dtype)

    # --- the model ---------------------------------------------------------------------------
    def encode(self, x):
        """q(z|x) = N(mu, diag(exp(logvar))): returns (mu, logvar), each (N, latent_dim)."""
        mu, logvar = chunk(self._encoder_output(self._input(x)), 2, axis=1)
        return mu, logvar

    def log_likelihood(self, params, x, context=None):
        """log p(x | params) per example (N,): summed over the pixels.  ``params`` is what
        ``decode`` gave: the likelihood's parameters, or with the autoregressive decoder
        the features its head fuses with the pixels' context (one pass over the observed
        x; ``context``: ``pixel_head.context(x)`` when the caller has it already)."""
        if self.pixel_head is not None:
            if context is None:
                context = self.pixel_head.context(self._input(x))
            params = self.pixel_head.fuse(params, context)
        return _sum(self.likelihood.log_prob(params, x), axis=(1, 2, 3))

    def _pixel_context(self, x):
        """The pixel head's context of the images x, for a bound that decodes many samples
        of each (computed once, repeated per pass by ``_samples_of``); None without one."""
        return None if self.pixel_head is None else self.pixel_head.context(x)

    def elbo_terms(self, x, generator):
        """(expected log-likelihood, KL) per example, one reparameterised sample each."""
        x = self._input(x)
        mu, logvar = self.encode(x)
        eps = self._tensor(self._noise(generator, mu.shape))
        z = mu + exp(logvar * 0.5) * eps
        log_px = self.log_likelihood(self.decode(z), x)
        if self.prior_name == "standard":
            kl = _sum(gaussian_kl_standard(mu, logvar), axis=1)
        else:  # one-sample estimate: log q(z|x) - log p(z), at the z decoded above
            log_q = _sum((eps * eps + logvar + LOG_2PI) * -0.5, axis=1)
            kl = log_q - mixture_log_prob(z, *self.prior_components())
        return log_px, kl

    def elbo_parts(self, x, generator):
        """(log p(x|z), then each stochastic layer's KL term) per example: one layer here
        (``HierConvVAE`` has two); what ``free_bits`` training floors layer by layer."""
        return self.elbo_terms(x, generator)

    def log_weight_terms(self, x, k, generator):
        """(log p(x|z_i), log p(z_i) - log q(z_i|x)), each a Tensor (k, N), for k draws
        z_i = mu + sigma * eps_i from q(z|x) per image, differentiable: their sum is the
        log importance weight, and logsumexp over the k rows minus log k the IWAE bound.
        eps is drawn (k, N, latent) in one piece, as ``iwae_bound`` draws it when one pass
        holds all k * N decodings, so both give the same bound from the same generator.
        The encoder runs once; the decoder decodes all k * N codes in one call."""
        k = _positive_count(k, "log_weight_terms")
        x = self._input(x)
        n, dim = x.shape[0], self.latent_dim
        mu, logvar = self.encode(x)
        eps = self._tensor(self._noise(generator, (k, n, dim)))
        z = mu + exp(logvar * 0.5) * eps                                  # (k, N, L)
        log_q = _sum((eps * eps + logvar + LOG_2PI) * -0.5, axis=-1)
        log_p = self._log_prior(z.reshape(k * n, dim)).reshape(k, n)
        log_px = self.log_likelihood(self.decode(z.reshape(k * n, dim)), _repeat(x, k),
                                     _samples_of(self._pixel_context(x), k))
        return log_px.reshape(k, n), log_p - log_q

    def _log_prior(self, z):
        """log p(z) per row of z (a Tensor (N, latent_dim)), differentiable."""
        if self.prior_name == "standard":
            return _sum((z * z + LOG_2PI) * -0.5, axis=-1)
        return mixture_log_prob(z, *self.prior_components())

    def prior_components(self):
        """VampPrior: (means, logvars), each (K, latent_dim): q(z|u_k) at the pseudo-inputs."""
        return self.encode(self.prior.pseudo_inputs())

    def log_prior(self, z, components=None):
        """log p(z) per row of z (numpy (N, latent_dim)), float64.  ``components``: the
        VampPrior's (means, logvars) as ``_prior_numpy`` gives them, when the caller has
        them already (else they are computed: the encoder on every pseudo-input)."""
        z = np.asarray(z, dtype=np.float64)
        if self.prior_name == "standard":
            return np.sum(-0.5 * z * z - 0.5 * LOG_2PI, axis=-1)
        means, logvars = self._prior_numpy() if components is None else components
        return mixture_log_prob(z, means, logvars)

    def _prior_numpy(self):
        with self._evaluating():
            means, logvars = self.prior_components()
        return (to_numpy(means.data).astype(np.float64),
                to_numpy(logvars.data).astype(np.float64))

    def _prior_noise(self, generator, n):
        """z ~ p(z), (n, latent_dim) numpy of the model's dtype."""
        eps = self._noise(generator, (int(n), self.latent_dim))
        if self.prior_name == "standard":
            return eps
        means, logvars = self._prior_numpy()
        k = generator.integers(0, means.shape[0], int(n))
        return (means[k] + np.exp(0.5 * logvars[k]) * eps).astype(eps.dtype)

    def elbo(self, x, generator):
        """The evidence lower bound per example (N,), differentiable (maximise it)."""
        log_px, kl = self.elbo_terms(x, generator)
        return log_px - kl

    def iwae_bound(self, x, k, generator, chunk=4096):
        """Importance-weighted bound per example (numpy float64, (N,)), in nats:

            log p(x) >= log (1/k) sum_{i=1..k} p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x)

        k = 1 is the ELBO (with a sampled KL); the bound rises towards log p(x) as k
        grows.  Runs without a graph, in evaluation mode, decoding at most ``chunk``
        (image, sample) pairs at a time so that memory stays bounded for any k.
        log q is formed from the standardised noise itself, -(eps^2 + log 2 pi +
        logvar)/2, so it does not lose digits to z - mu; the weights are summed
        (logsumexp) in float64.
        """
        k, chunk = _positive_count(k, "iwae_bound"), max(1, int(chunk))
        with self._evaluating():
            x = self._input(x)
            n = x.shape[0]
            images_per_block = max(1, min(n, chunk // k))
            samples_per_pass = max(1, chunk // images_per_block)
            result = np.empty(n, dtype=np.float64)
            # the VampPrior's components, once for every pass: the encoder on all K
            # pseudo-inputs costs as much as a pass of 512 decodings
            components = self._prior_numpy() if self.prior_name == "vamp" else None
            for lo in range(0, n, images_per_block):
                xb = x[lo:lo + images_per_block]
                result[lo:lo + xb.shape[0]] = self._iwae_block(xb, k, generator,
                                                               samples_per_pass, components)
        return result

    def _iwae_block(self, x, k, generator, samples_per_pass, components):
        b = x.shape[0]
        mu, logvar = self.encode(x)
        mu_np = to_numpy(mu.data).astype(np.float64)
        logvar_np = to_numpy(logvar.data).astype(np.float64)
        sigma_np = np.exp(0.5 * logvar_np)
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        log_w = np.empty((k, b), dtype=np.float64)
        context = self._pixel_context(x)
        for s0 in range(0, k, samples_per_pass):
            s = min(samples_per_pass, k - s0)
            eps = self._noise(generator, (s, b, self.latent_dim)).astype(np.float64)
            z = mu_np + sigma_np * eps                                      # (s, b, L)
            log_q = np.sum(-0.5 * eps * eps - half_log_2pi - 0.5 * logvar_np, axis=-1)
            log_p_z = self.log_prior(z.reshape(s * b, self.latent_dim),
                                     components).reshape(s, b)
            params = self.decode(self._tensor(z.reshape(s * b, self.latent_dim)))
            xs = x if s == 1 else self._tensor(np.broadcast_to(
                to_numpy(x.data), (s,) + tuple(x.shape)).reshape((s * b,) + tuple(x.shape[1:])))
            log_px = to_numpy(self.log_likelihood(params, xs, _samples_of(context, s)).data)
            log_w[s0:s0 + s] = log_px.astype(np.float64).reshape(s, b) + log_p_z - log_q
        return log_mean_exp(log_w)

    # --- looking at it -------------------------------------------------------------------------
    def _images(self, params, generator, mean):
        if self.pixel_head is not None:
            # pixel by pixel; "mean" shows each pixel's mean given the pixels drawn before it
            if generator is None:
                raise ValueError("the autoregressive decoder draws its images pixel by pixel: "
                                 "pass a generator, also for mean images")
            to_input = lambda images: self.likelihood.prepare(   # noqa: E731
                images, generator, dtype=self._parameter().dtype)
            images, params = self.pixel_head.sample(params, self.likelihood, generator,
                                                    to_input)
            return self.likelihood.mean_images(params) if mean else images
        if mean:
            return self.likelihood.mean_images(to_numpy(params.data))
        if generator is None:
            raise ValueError("drawing samples of p(x|z) (mean=False) needs a generator")
        return self.likelihood.sample_images(to_numpy(params.data), generator)

    # What ``decode`` takes: the latent code.  Here z itself; a model with more than one
    # latent layer (hierarchical.py) decodes all of them, and overrides these two.
    def _prior_code(self, generator, n):
        """A code drawn from the generative model, (n, code) numpy."""
        return self._prior_noise(generator, n)

    def _posterior_code(self, x):
        """The code of each x at its posterior mean, a Tensor (N, code)."""
        return self.encode(x)[0]

    def sample(self, n, generator, mean=True):
        """``n`` images from z ~ p(z): uint8 (n, H, W).  ``mean=True`` shows the
        decoder's mean (grey levels for the Bernoulli), else a draw from p(x|z)."""
        with self._evaluating():
            z = self._tensor(self._prior_code(generator, n))
            return self._images(self.decode(z), generator, mean)

    def reconstruct(self, x, mean=True, generator=None):
        """Decode the posterior mean of each x: uint8 (N, H, W)."""
        with self._evaluating():
            return self._images(self.decode(self._posterior_code(x)), generator, mean)

    def interpolate(self, x_a, x_b, steps=8, mean=True, generator=None):
        """Decode ``steps`` evenly spaced points on the segment between the posterior means
        of x_a[i] and x_b[i] (both ends included): uint8 (N, steps, H, W).  The ends
        are exactly ``reconstruct(x_a)`` and ``reconstruct(x_b)``."""
        if steps < 2:
            raise ValueError(f"interpolate: steps must be >= 2, got {steps}")
        with self._evaluating():
            mu_a = to_numpy(self._posterior_code(x_a).data)
            mu_b = to_numpy(self._posterior_code(x_b).data)
            if mu_a.shape != mu_b.shape:
                raise ValueError(f"interpolate: x_a and x_b hold different numbers of images "
                                 f"({mu_a.shape[0]} and {mu_b.shape[0]})")
            t = np.linspace(0.0, 1.0, steps).reshape(1, steps, 1)
            z = (1.0 - t) * mu_a[:, None] + t * mu_b[:, None]           # (N, steps, L)
            z[:, 0], z[:, -1] = mu_a, mu_b                             # the ends exactly
            images = self._images(self.decode(self._tensor(z.reshape(-1, mu_a.shape[-1]))),
                                  generator, mean)
        return images.reshape(mu_a.shape[0], steps, *images.shape[1:])
