"""Training on the importance-weighted bound (``train_k``, IWAE): the differentiable
log-weights of every VAE (flat MLP/conv, hierarchical; standard and VampPrior) against
the evaluation's ``iwae_bound`` from the same noise, against the ELBO's pieces at k = 1,
their gradients against finite differences in float64, and the training step."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinygen.models.vae import ConvVAE, HierConvVAE, MLPVAE
from tinygen.models.vae.experiment import ConvVAEExperiment, MLPVAEExperiment
from tinygen.models.vae.model import log_mean_exp
from tinygen.ops.reduce import logsumexp
from tinygen.testing import gradcheck
from tinygen.training.options import ConfigError, check_options

MAKERS = {
    "mlp": lambda **kw: MLPVAE(latent_dim=3, hidden=(8,), **kw),
    "conv": lambda **kw: ConvVAE(latent_dim=3, channels=(2, 3), hidden=6, **kw),
    "hier": lambda **kw: HierConvVAE(latent_dim=3, latent1_dim=2, channels=(2, 3), hidden=6,
                                     **kw),
}


def make(arch, prior, seed=0, scale=1.5):
    model = MAKERS[arch](dtype=np.float64, prior=prior, pseudo_inputs=3)
    model.reset_parameters(np.random.default_rng(seed))
    for name, p in model.named_parameters():
        if not name.startswith("prior."):
            p.data *= scale            # a posterior that matters: the k weights differ
    return model


def images(n, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28)).astype(np.uint8)


def iwae_from_terms(model, x, k, seed):
    log_px, log_ratio = model.log_weight_terms(x, k, np.random.default_rng(seed))
    return logsumexp(log_px + log_ratio, axis=0) - math.log(k)


@pytest.mark.parametrize("prior", ["standard", "vamp"])
@pytest.mark.parametrize("arch", sorted(MAKERS))
@settings(max_examples=4, deadline=None)
@given(n=st.integers(1, 3), k=st.integers(1, 6), seed=st.integers(0, 2 ** 16))
def test_training_bound_is_the_evaluation_bound_from_the_same_noise(arch, prior, n, k, seed):
    model = make(arch, prior, seed % 7)
    x = model.prepare(images(n, seed), np.random.default_rng(seed))
    log_px, log_ratio = model.log_weight_terms(x, k, np.random.default_rng(seed))
    assert log_px.shape == log_ratio.shape == (k, n)
    bound = iwae_from_terms(model, x, k, seed).numpy()
    # one pass holding all k * n decodings draws the noise exactly as log_weight_terms does
    reference = model.iwae_bound(x, k, np.random.default_rng(seed), chunk=k * n)
    np.testing.assert_allclose(bound, reference, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_one_draw_gives_the_elbo_pieces(arch):
    """k = 1 under the VampPrior is the training ELBO itself (its KL is the same
    one-sample estimate); under the standard prior the likelihood term is the ELBO's and
    the sampled ratio averages to minus the closed-form KL.  (The hierarchical ELBO
    draws z2's noise, then z1's; its weights draw both in one piece, as its
    ``iwae_bound`` does: the first test covers it.)"""
    x = make(arch, "vamp").prepare(images(4), np.random.default_rng(0))
    vamp = make(arch, "vamp")
    log_px, log_ratio = vamp.log_weight_terms(x, 1, np.random.default_rng(5))
    elbo_px, kl = vamp.elbo_terms(x, np.random.default_rng(5))
    np.testing.assert_allclose(log_px.numpy()[0], elbo_px.numpy(), rtol=1e-12)
    np.testing.assert_allclose(log_ratio.numpy()[0], -kl.numpy(), rtol=1e-10, atol=1e-10)

    std = make(arch, "standard")
    log_px, _ = std.log_weight_terms(x, 1, np.random.default_rng(5))
    np.testing.assert_allclose(log_px.numpy()[0], std.elbo_terms(
        x, np.random.default_rng(5))[0].numpy(), rtol=1e-12)
    _, kl = std.elbo_terms(x, np.random.default_rng(5))
    _, ratio = std.log_weight_terms(x, 4000, np.random.default_rng(6))
    ratio = ratio.numpy()
    stderr = ratio.std(0) / math.sqrt(ratio.shape[0])
    assert np.all(np.abs(-ratio.mean(0) - kl.numpy()) < 5 * stderr)


@pytest.mark.parametrize("arch,prior", [("mlp", "vamp"), ("conv", "standard"),
                                        ("hier", "vamp")])
def test_iwae_gradient_by_finite_differences(arch, prior):
    """The bound per image (a random upstream gradient over the images) along the
    decoder's last layer, the encoder's head and, for the hierarchical model, p(z1|z2)."""
    model = make(arch, prior, scale=1.0)
    x = model.prepare(images(2), np.random.default_rng(0))
    if arch == "mlp":
        params = (model.decoder[-1].bias, model.encoder[-1].bias)
    elif arch == "conv":
        params = (model.decoder[-1].bias, model.encoder[-1].bias)
    else:
        params = (model.p1[2].bias, model.q2.bias, model.q1[2].bias)
    gradcheck(lambda *_: iwae_from_terms(model, x, 4, 3), params)


def test_the_bound_tightens_with_k_and_stays_below_log_p():
    model = make("mlp", "standard", scale=3.0)
    x = model.prepare(images(16), np.random.default_rng(1))
    means = [np.mean([iwae_from_terms(model, x, k, s).numpy().mean() for s in range(4)])
             for k in (1, 8, 64)]
    assert means[0] < means[1] < means[2]
    # and the numpy helper is the logsumexp the graph computes
    log_px, log_ratio = model.log_weight_terms(x, 8, np.random.default_rng(2))
    np.testing.assert_allclose(log_mean_exp((log_px + log_ratio).numpy()),
                               iwae_from_terms(model, x, 8, 2).numpy(), rtol=1e-12)


def test_train_step_on_the_iwae_bound_and_its_option(real_or_synthetic_images):
    e = ConvVAEExperiment({"train_k": 4, "latent_dim": 4, "channels": [4, 8], "hidden": 16,
                           "lr": 3e-3})
    g = np.random.default_rng(0)
    batch = (real_or_synthetic_images[:64],)
    first = e.train_step(batch, g)
    assert set(first) == {"loss", "recon", "kl"} and e.steps == 1
    # the reported loss is -IWAE_4, at most the -ELBO estimate from the same draws
    assert first["loss"] <= first["recon"] + first["kl"] + 1e-6
    for _ in range(25):
        last = e.train_step(batch, g)
    assert last["loss"] < first["loss"] - 40
    with pytest.raises(ConfigError, match="train_k"):
        defaults = ConvVAEExperiment.default_config()
        check_options(defaults, {**defaults, "train_k": 0})


def test_warmup_weights_only_the_prior_ratio():
    """At warm-up weight 0 the decoder's gradient differs from weight 1's (the weights
    w_i, and so each draw's share of the gradient, change), and at warm-up 0 the prior's
    ratio gets no gradient: the encoder's log-variance head is pulled by log p(x|z) alone."""
    imgs = images(8)
    grads = {}
    for warm in (0, 10 ** 9):
        e = MLPVAEExperiment({"hidden": [8], "latent_dim": 2, "kl_warmup_steps": warm,
                              "train_k": 3})
        e.optimizer.step = lambda: None                     # keep the gradients only
        e.train_step((imgs,), np.random.default_rng(1))
        grads[warm] = np.array(e.model.encoder[-1].weight.grad.data)
    assert not np.allclose(grads[0], grads[10 ** 9])


@pytest.fixture(scope="module")
def real_or_synthetic_images():
    from tinygen.data import DataError, load_fashion_mnist
    try:
        return load_fashion_mnist("train")[0][:64]
    except DataError:
        return images(64)
