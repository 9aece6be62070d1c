"""The hierarchical conv VAE (``tinygen train vae-hier``): its loss pieces against their
definitions and finite differences, the bounds' order, the importance-sampled
log-likelihood against an exact marginal, the runner (checkpoint, resume, sample grid)
and its options' errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinygen import tensor
from tinygen.models.likelihoods import gaussian_log_prob
from tinygen.models.vae.hierarchical import HierConvVAE, kl_sample, log_q_from_noise
from tinygen.testing import gradcheck


def tiny_hier(prior="standard", latent=2, latent1=2, seed=0, scale=None, **kw):
    m = HierConvVAE(latent_dim=latent, latent1_dim=latent1, channels=(2, 3), hidden=6,
                    dtype=np.float64, prior=prior, **kw)
    m.reset_parameters(np.random.default_rng(seed))
    if scale is not None:
        for name, p in m.named_parameters():
            if not name.startswith("prior."):
                p.data *= scale
    return m


def binary_images(n, seed=1, p=0.3):
    return (np.random.default_rng(seed).random((n, 28, 28)) < p).astype(np.float64)


# --- the loss pieces ---------------------------------------------------------------------------
@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 4), dims=st.integers(1, 4), seed=st.integers(0, 2 ** 16))
def test_gaussian_log_density_and_kl_sample_match_definitions_and_gradients(n, dims, seed):
    rng = np.random.default_rng(seed)
    eps, mu_q, p_mean = (rng.standard_normal((n, dims)) for _ in range(3))
    q_logvar, p_logvar = (rng.uniform(-1.5, 1.5, (n, dims)) for _ in range(2))
    z = mu_q + np.exp(0.5 * q_logvar) * eps

    def log_normal(v, m, lv):      # straight from the density's definition
        return np.log(np.exp(-(v - m) ** 2 / (2 * np.exp(lv))) / np.sqrt(2 * math.pi *
                                                                        np.exp(lv)))

    np.testing.assert_allclose(
        gaussian_log_prob(tensor(z), tensor(p_mean), tensor(p_logvar)).data,
        log_normal(z, p_mean, p_logvar), rtol=1e-10, atol=1e-12)
    # log q written with the noise equals the density of q at z = mu + sigma eps
    np.testing.assert_allclose(log_q_from_noise(tensor(eps), tensor(q_logvar)).data,
                               log_normal(z, mu_q, q_logvar).sum(-1), rtol=1e-10)
    expected = (log_normal(z, mu_q, q_logvar) - log_normal(z, p_mean, p_logvar)).sum(-1)

    # the KL sample as the model forms it: z from (mu_q, q_logvar, eps), all differentiable
    def kl(e, mq, lvq, pm, plv):
        from tinygen.ops.elementwise import exp
        return kl_sample(e, lvq, mq + exp(lvq * 0.5) * e, pm, plv)

    args = [tensor(a, requires_grad=True) for a in (eps, mu_q, q_logvar, p_mean, p_logvar)]
    np.testing.assert_allclose(kl(*args).data, expected, rtol=1e-9, atol=1e-12)
    gradcheck(kl, args)
    gradcheck(gaussian_log_prob, [tensor(a, requires_grad=True) for a in
                                  (z, p_mean, p_logvar)])


@pytest.mark.parametrize("prior", ["standard", "vamp"])
def test_elbo_gradient_by_finite_differences(prior):
    """The whole one-sample ELBO (both KL pieces, the VampPrior's components) against
    finite differences in float64 along the decoder's, p(z1|z2)'s and q(z1|x,z2)'s
    weights, with the same noise every call."""
    m = tiny_hier(prior, pseudo_inputs=3)
    x = binary_images(2)
    params = [m.p1[2].weight, m.q1[2].bias, m.q2.bias, m.decoder_input[0].weight]

    def neg_elbo(*ps):
        saved = [p.data for p in params]
        try:
            for p, q in zip(params, ps):
                p.data = q.data
            return -m.elbo(x, np.random.default_rng(5))
        finally:
            for p, s in zip(params, saved):
                p.data = s

    # the graph must run through the parameters themselves: differentiate in place
    out = -m.elbo(x, np.random.default_rng(5))
    weights = np.random.default_rng(9).standard_normal(out.shape)
    (out * tensor(weights)).sum().backward()
    for p in params:
        analytic = np.array(p.grad.data)
        numeric = np.zeros_like(analytic)
        flat, step = p.data.reshape(-1), 1e-6
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + step
            hi = float(np.sum(neg_elbo(*params).data * weights))
            flat[i] = old - step
            lo = float(np.sum(neg_elbo(*params).data * weights))
            flat[i] = old
            numeric.reshape(-1)[i] = (hi - lo) / (2 * step)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


# --- the bounds -------------------------------------------------------------------------------
def test_elbo_below_iwae_and_iwae_rises_with_k():
    m = tiny_hier(scale=2.0)
    x = binary_images(3)
    g = np.random.default_rng(2)
    reps = np.repeat(x, 300, axis=0)                              # 300 draws per image
    elbo = m.elbo(reps, g).numpy().reshape(3, 300)
    k1 = m.iwae_bound(reps, 1, g, chunk=4096).reshape(3, 300)
    bounds = {k: m.iwae_bound(x, k, g, chunk=64) for k in (2, 20, 1000)}
    means = [bounds[k].mean() for k in (2, 20, 1000)]
    assert np.all(bounds[20] > elbo.mean(1))
    assert elbo.mean() < means[0] < means[1] < means[2]
    # k = 1 is a one-sample ELBO over the joint proposal: unbiased for the ELBO itself
    stderr = np.hypot(elbo.std(1), k1.std(1)) / math.sqrt(300)
    assert np.all(np.abs(k1.mean(1) - elbo.mean(1)) < 4 * stderr), (k1.mean(1), elbo.mean(1))
    assert means[2] - elbo.mean() > 5 * stderr.max()              # the test can tell


def test_iwae_does_not_depend_on_the_chunk_size():
    m = tiny_hier("vamp", scale=1.5, pseudo_inputs=3)
    x = binary_images(1)
    a = m.iwae_bound(x, 40, np.random.default_rng(0), chunk=7)
    b = m.iwae_bound(x, 40, np.random.default_rng(0), chunk=4096)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    out = m.iwae_bound(binary_images(5), 30, np.random.default_rng(0), chunk=64)
    assert out.shape == (5,) and np.all(np.isfinite(out))


def exact_log_marginal(m, x, grid=np.linspace(-7, 7, 141)):
    """log p(x) = log int int p(x|z1,z2) p(z1|z2) p(z2) dz1 dz2 on a grid (1-D z1, z2),
    trapezoid rule in both directions."""
    z1, z2 = (a.reshape(-1, 1) for a in np.meshgrid(grid, grid, indexing="ij"))
    with m._evaluating():
        p_mean, p_logvar = (t.data for t in m._p1(tensor(z2)))
        log_p1 = -0.5 * ((z1 - p_mean) ** 2 * np.exp(-p_logvar) + p_logvar
                         + math.log(2 * math.pi))[:, 0]
        log_px = m.log_likelihood(m.decode(tensor(np.concatenate([z1, z2], 1))),
                                  np.broadcast_to(x, (len(z1), 1, 28, 28))).data
    f = (log_px + log_p1 + m.log_prior(z2)).reshape(len(grid), len(grid))
    top = f.max()
    inner = np.trapezoid(np.exp(f - top), grid, axis=1)
    return top + math.log(np.trapezoid(inner, grid))


@pytest.mark.parametrize("prior", ["standard", "vamp"])
def test_iwae_bound_converges_to_the_exact_marginal(prior):
    m = tiny_hier(prior, latent=1, latent1=1, scale=2.0, pseudo_inputs=3)
    x = binary_images(1, seed=3)[0]
    exact = exact_log_marginal(m, x)
    rng = np.random.default_rng(0)
    k1 = m.iwae_bound(np.broadcast_to(x, (100, 28, 28)), 1, rng, chunk=512)
    estimates = m.iwae_bound(np.broadcast_to(x, (4, 28, 28)), 2000, rng, chunk=512)
    assert k1.mean() < exact - 1.0, (k1.mean(), exact)      # a real gap to close
    assert abs(estimates.mean() - exact) < 0.06, (estimates, exact)
