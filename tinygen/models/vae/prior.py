"""Priors p(z) for the VAEs: the standard normal, and the VampPrior.

VampPrior (Tomczak & Welling 2018): p(z) = (1/K) sum_k q(z | u_k), a mixture of the
encoder's own posteriors at K learned pseudo-inputs u_k (images the optimiser shapes).
With it the KL term has no closed form: the ELBO uses the one-sample estimate
log q(z|x) - log p(z) at the reparameterised z, and the importance-weighted bound uses
log p(z) directly.

The Gaussian log-densities of N points under K diagonal components are written as
matrix products -- sum_d (z_d - m_kd)^2 / v_kd = (z^2) @ (1/v)^T - 2 z @ (m/v)^T +
sum_d m_kd^2 / v_kd -- so an (N, K, L) array is never formed (N = 4096 decoder passes
x K = 500 components x L = 40 latents would be 80 M numbers).
"""
import math

import numpy as np

from ...backend import array_module
from ...backend.kernels import kernels
from ...nn import Parameter
from ...nn.module import Module
from ...ops.elementwise import exp, sigmoid
from ...ops.linalg import matmul
from ...ops.reduce import logsumexp, sum as _sum
from ...ops.shape import transpose

LOG_2PI = math.log(2.0 * math.pi)


def mixture_log_prob(z, means, logvars):
    """log (1/K) sum_k N(z; means_k, diag(exp(logvars_k))) per row of z (N, L): (N,).
    Tensors (differentiable in all three) or numpy arrays (float64 arithmetic)."""
    if isinstance(z, np.ndarray):
        # the products through the backend's matmul, not numpy's ``@``: a bare numpy GEMM
        # wakes OpenBLAS's own threads, which then spin for a while after it and took the
        # second core from tinygen's pool in the bound's passes (one of these per pass:
        # the hierarchical pixelcnn VAE's IS pass 68 ms against 46 ms with BLAS held)
        matmul_ = kernels("linalg", z, "matmul").matmul
        inv = np.exp(-logvars)                                            # (K, L)
        quad = (matmul_(z * z, inv.T) - 2.0 * matmul_(z, (means * inv).T)
                + np.sum(means * means * inv, 1))
        log_n = -0.5 * (quad + np.sum(logvars, 1) + z.shape[1] * LOG_2PI)  # (N, K)
        top = log_n.max(axis=1, keepdims=True)
        return (top[:, 0] + np.log(np.mean(np.exp(log_n - top), axis=1)))
    inv = exp(-logvars)
    quad = (matmul(z * z, transpose(inv, 0, 1)) - matmul(z, transpose(means * inv, 0, 1)) * 2.0
            + _sum(means * means * inv, axis=1))
    log_n = (quad + _sum(logvars, axis=1) + z.shape[1] * LOG_2PI) * -0.5
    return logsumexp(log_n, axis=1) - math.log(log_n.shape[1])


class VampPrior(Module):
    """K pseudo-inputs u_k = low + (high - low) sigmoid(a_k), a_k free parameters of the
    images' shape (the sigmoid keeps them in the data's range, [0, 1] for binary
    pixels, [-1, 1] for 8-bit ones scaled)."""

    def __init__(self, n_components, image_shape, low=0.0, high=1.0, dtype=None):
        super().__init__()
        if isinstance(n_components, bool) or int(n_components) < 1:
            raise ValueError(f"the VampPrior needs at least one pseudo-input, got "
                             f"{n_components!r}")
        self.n_components, self.low, self.high = int(n_components), float(low), float(high)
        self.pseudo_logits = Parameter(np.zeros((self.n_components, *image_shape),
                                                dtype=dtype or np.float32))

    def reset_parameters(self, generator=None):
        """a_k ~ N(0, 1): pseudo-inputs spread around the middle of the range."""
        generator = generator if generator is not None else np.random.default_rng()
        a = self.pseudo_logits.data
        noise = generator.standard_normal(a.shape).astype(a.dtype)
        a[...] = array_module(a).asarray(noise)

    def pseudo_inputs(self):
        return sigmoid(self.pseudo_logits) * (self.high - self.low) + self.low

    def extra_repr(self):
        return f"n_components={self.n_components}"
