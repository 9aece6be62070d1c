"""The VampPrior VAE, the importance-sampled log-likelihood against an exact marginal,
and the training schedules (KL warm-up, cosine learning rate)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinygen import tensor
from tinygen.models.vae.networks import ConvVAE, MLPVAE
from tinygen.models.vae.prior import mixture_log_prob
from tinygen.testing import gradcheck


def naive_mixture(z, means, logvars):
    """(N,) log (1/K) sum_k N(z; m_k, v_k), straight from the definition."""
    d = z[:, None, :] - means[None]
    log_n = np.sum(-0.5 * (d * d / np.exp(logvars) + logvars + math.log(2 * math.pi)), axis=2)
    return np.log(np.mean(np.exp(log_n), axis=1))


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 4), k=st.integers(1, 4), dims=st.integers(1, 3),
       seed=st.integers(0, 2 ** 16))
def test_mixture_log_prob_matches_the_definition_and_its_gradients(n, k, dims, seed):
    rng = np.random.default_rng(seed)
    z, means = rng.standard_normal((n, dims)), rng.standard_normal((k, dims))
    logvars = rng.uniform(-1.0, 1.0, (k, dims))
    expected = naive_mixture(z, means, logvars)
    np.testing.assert_allclose(mixture_log_prob(z, means, logvars), expected, rtol=1e-10)
    args = [tensor(a, requires_grad=True) for a in (z, means, logvars)]
    np.testing.assert_allclose(mixture_log_prob(*args).data, expected, rtol=1e-10)
    gradcheck(mixture_log_prob, args)


def tiny_vae(prior, latent=1, seed=0, scale=None, **kw):
    m = MLPVAE(latent_dim=latent, hidden=(6,), dtype=np.float64, prior=prior, **kw)
    m.reset_parameters(np.random.default_rng(seed))
    if scale is not None:          # gentle weights: p(x|z) varies slowly with z
        for p in m.parameters():
            if p is not getattr(getattr(m, "prior", None), "pseudo_logits", None):
                p.data *= scale
    return m


def test_vamp_elbo_gradient_through_the_pseudo_inputs():
    """The pseudo-inputs reach the loss only through the prior's components (encoder at
    u_k) -- finite differences in float64 check that whole path, along three random
    directions in pseudo-input space (all 3 x 784 entries would take minutes)."""
    from tinygen.ops.elementwise import sigmoid

    m = tiny_vae("vamp", latent=2, pseudo_inputs=3)
    x = (np.random.default_rng(1).random((2, 28, 28)) < 0.4).astype(np.float64)
    low, high = m.prior.low, m.prior.high
    rng = np.random.default_rng(2)
    base = tensor(rng.standard_normal((3, 1, 28, 28)) * 0.5)
    directions = [tensor(rng.standard_normal((3, 1, 28, 28))) for _ in range(3)]

    def neg_elbo(t):
        a = base + directions[0] * t[0] + directions[1] * t[1] + directions[2] * t[2]
        m.prior.pseudo_inputs = lambda: sigmoid(a) * (high - low) + low
        return -m.elbo(x, np.random.default_rng(5))       # the same noise every call

    gradcheck(neg_elbo, [tensor(np.zeros(3), requires_grad=True)], atol=1e-6)


def exact_log_marginal(m, x, grid=np.linspace(-9, 9, 6001)):
    """log p(x) = log int p(x|z) p(z) dz by the trapezoid rule (latent_dim = 1)."""
    z = grid[:, None]
    with m._evaluating():
        log_px = m.log_likelihood(m.decode(tensor(z)), np.broadcast_to(
            x, (len(grid),) + x.shape).reshape(len(grid), 1, 28, 28)).data
    f = log_px + m.log_prior(z)
    top = f.max()
    return top + math.log(np.trapezoid(np.exp(f - top), grid))


@pytest.mark.parametrize("prior", ["standard", "vamp"])
def test_iwae_bound_converges_to_the_exact_marginal(prior):
    m = tiny_vae(prior, scale=0.6, pseudo_inputs=4)
    x = (np.random.default_rng(3).random((28, 28)) < 0.3).astype(np.float64)
    exact = exact_log_marginal(m, x)
    rng = np.random.default_rng(0)
    k1 = m.iwae_bound(np.broadcast_to(x, (200, 28, 28)), 1, rng, chunk=512)
    estimates = m.iwae_bound(np.broadcast_to(x, (4, 28, 28)), 2000, rng, chunk=512)
    # k = 1 (the ELBO) sits about a nat below; k = 2000 (samples of one image batched
    # into passes of 512) within Monte-Carlo noise (std ~0.02) of the exact value
    assert k1.mean() < exact - 0.5
    assert abs(estimates.mean() - exact) < 0.04, (estimates, exact)


def test_vamp_vae_trains_samples_and_evaluates():
    from tinygen.models.vae.experiment import ConvVAEExperiment

    e = ConvVAEExperiment({"prior": "vamp", "pseudo_inputs": 5, "channels": [4, 8],
                           "hidden": 16, "latent_dim": 4, "kl_warmup_steps": 4,
                           "lr_schedule": "cosine", "lr_decay_steps": 10, "iwae_k": 3})
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28)).astype(np.uint8)
    g = np.random.default_rng(0)
    before = e.model.prior.pseudo_logits.data.copy()
    for _ in range(2):
        out = e.train_step((images,), g)
    assert e.steps == 2 and np.isfinite(out["loss"])
    assert not np.array_equal(before, e.model.prior.pseudo_logits.data)   # learned
    assert e.sample(3, g).shape == (3, 28, 28)
    metrics = e.evaluate((images, None), g)
    assert metrics["test_iwae_nats"] >= metrics["test_elbo_nats"] - 5
    assert set(e.model.state_dict()) >= {"prior.pseudo_logits"}
    clone = ConvVAEExperiment(dict(e.config))
    clone.load_extra_state(e.extra_state())
    assert clone.kl_weight() == 0.5 and clone.learning_rate() == e.learning_rate()


def test_schedules():
    from tinygen.models.vae.experiment import ConvVAEExperiment

    e = ConvVAEExperiment({"kl_warmup_steps": 10, "lr_schedule": "cosine", "lr": 1e-3,
                           "lr_min": 1e-5, "lr_decay_steps": 100, "channels": [4],
                           "hidden": None, "latent_dim": 2})
    assert [e.kl_weight(s) for s in (0, 5, 10, 50)] == [0.0, 0.5, 1.0, 1.0]
    assert e.learning_rate(0) == pytest.approx(1e-3)
    assert e.learning_rate(50) == pytest.approx((1e-3 + 1e-5) / 2)
    assert e.learning_rate(100) == e.learning_rate(500) == pytest.approx(1e-5)
    plain = ConvVAEExperiment({"channels": [4], "hidden": None, "latent_dim": 2})
    assert plain.kl_weight(0) == 1.0 and plain.learning_rate(10 ** 6) == plain.config["lr"]
    with pytest.raises(ValueError, match="lr_decay_steps"):
        ConvVAEExperiment({"lr_schedule": "cosine"})
    with pytest.raises(ValueError, match="prior must be"):
        ConvVAE(prior="gaussian-mixture")


def test_kl_warmup_scales_only_the_kl_gradient():
    """At warm-up weight 0 the step follows the reconstruction term alone: the encoder's
    log-variance head gets no pull towards the prior."""
    from tinygen.models.vae.experiment import MLPVAEExperiment

    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28)).astype(np.uint8)
    grads = {}
    for warm in (0, 10 ** 9):
        e = MLPVAEExperiment({"hidden": [8], "latent_dim": 2, "kl_warmup_steps": warm})
        e.optimizer.step = lambda: None                       # keep the gradients only
        e.train_step((images,), np.random.default_rng(1))
        grads[warm] = np.array(e.model.encoder[-1].weight.grad.data)
    # weight 1 (no warm-up, warm=0) differs from weight ~0 (step 0 of a long warm-up)
    assert not np.allclose(grads[0], grads[10 ** 9])

