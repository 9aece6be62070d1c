"""VAEs (tinygen.models.vae): the bounds' order (ELBO <= IWAE_k, rising with k), the
closed-form KL, gradients through the reparameterisation, training on real
Fashion-MNIST, sampling, reconstructions and interpolation, the Experiments."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.data import DataError, load_fashion_mnist
from tinygen.models import EXPERIMENTS, get_experiment
from tinygen.models import likelihoods as L
from tinygen.models.vae import ConvVAE, MLPVAE
from tinygen.testing import gradcheck


def _synthetic_images(n, seed=0):
    """uint8 'garments': a bright blob of random size and place on a dark background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    out = np.empty((n, 28, 28), np.uint8)
    for i in range(n):
        cy, cx, r = rng.uniform(9, 19), rng.uniform(9, 19), rng.uniform(4, 9)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        out[i] = np.clip(255 * blob + rng.normal(0, 10, (28, 28)), 0, 255).astype(np.uint8)
    return out


@pytest.fixture(scope="module")
def real_train_images():
    try:
        images, _ = load_fashion_mnist("train")
    except DataError as exc:
        pytest.skip(f"the real Fashion-MNIST is not available: {exc}")
    return images[:512]


def _tiny_mlp(likelihood="bernoulli", scale=1.0, seed=0, latent_dim=4, hidden=(32,)):
    model = MLPVAE(latent_dim=latent_dim, hidden=hidden, likelihood=likelihood,
                   dtype=np.float64)
    model.reset_parameters(np.random.default_rng(seed))
    for p in model.parameters():
        p.data *= scale  # larger weights: a posterior that matters, gaps that show
    return model


# --- the bounds -------------------------------------------------------------------------------
def test_elbo_below_iwae_and_iwae_rises_with_k():
    model = _tiny_mlp(scale=3.0)
    x = model.prepare(_synthetic_images(24), np.random.default_rng(1))
    g = np.random.default_rng(2)
    elbo = np.mean([model.elbo(x, g).numpy() for _ in range(20)], axis=0)   # (24,)
    bounds = {k: model.iwae_bound(x, k, g) for k in (1, 5, 50, 500)}
    assert bounds[50].shape == (24,) and bounds[50].dtype == np.float64
    assert np.all(bounds[50] >= elbo)                    # per image, by a wide margin here
    means = [bounds[k].mean() for k in (5, 50, 500)]
    assert elbo.mean() < means[0] < means[1] < means[2]
    # k = 1 is an unbiased (noisy) estimate of the ELBO itself.
    assert abs(bounds[1].mean() - elbo.mean()) < 0.25 * (means[2] - elbo.mean())


def test_iwae_does_not_depend_on_the_chunk_size():
    model = _tiny_mlp(scale=2.0)
    x = model.prepare(_synthetic_images(1), np.random.default_rng(1))
    # One image: the noise stream is the same however the k samples are split up.
    a = model.iwae_bound(x, 50, np.random.default_rng(0), chunk=7)
    b = model.iwae_bound(x, 50, np.random.default_rng(0), chunk=4096)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    # Many images in blocks: finite, one value per image, in any chunking.
    xs = model.prepare(_synthetic_images(5), np.random.default_rng(1))
    out = model.iwae_bound(xs, 30, np.random.default_rng(0), chunk=64)
    assert out.shape == (5,) and np.all(np.isfinite(out))
    with pytest.raises(ValueError, match="k must be a positive int"):
        model.iwae_bound(xs, 0, np.random.default_rng(0))


def test_iwae_runs_without_a_graph_and_keeps_the_mode():
    model = ConvVAE(latent_dim=3, channels=(4, 8), hidden=16, batchnorm=True)
    model.train()
    x = model.prepare(_synthetic_images(3), np.random.default_rng(0))
    model.iwae_bound(x, 4, np.random.default_rng(0))
    assert model.training and tg.is_grad_enabled()
    # BatchNorm's running statistics are untouched in evaluation mode.
    assert all(int(m.num_batches_tracked.item()) == 0 for m in model.modules()
               if isinstance(m, tg.nn.BatchNorm2d))


def test_closed_form_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(0, 1, (2, 3, 4))
    kl = L.gaussian_kl_standard(tg.tensor(mu, dtype=np.float64),
                                tg.tensor(logvar, dtype=np.float64)).numpy().sum(-1)
    eps = rng.standard_normal((200_000, 3, 4))
    z = mu + np.exp(0.5 * logvar) * eps
    log_q = np.sum(-0.5 * (eps ** 2 + np.log(2 * np.pi) + logvar), -1)
    log_p = np.sum(-0.5 * (z ** 2 + np.log(2 * np.pi)), -1)
    terms = log_q - log_p
    stderr = terms.std(0) / np.sqrt(len(terms))
    assert np.all(np.abs(terms.mean(0) - kl) < 5 * stderr)


# --- gradients through the reparameterisation -------------------------------------------------
@pytest.mark.parametrize("likelihood", ["bernoulli", "discretized-logistic"])
def test_gradcheck_elbo_wrt_encoder_weights_mlp(likelihood):
    model = _tiny_mlp(likelihood, latent_dim=2, hidden=(3,))
    x = model.prepare(_synthetic_images(2), np.random.default_rng(0))
    first, last = model.encoder[1], model.encoder[-1]
    # Every encoder parameter but the first layer's 784x3 weight (its entries take the
    # same path as the first layer's bias, and would cost 4704 evaluations).
    params = [first.bias, last.weight, last.bias]

    def elbo(*_):  # fixed noise: the same generator state for every evaluation
        return model.elbo(x, np.random.default_rng(7))

    gradcheck(elbo, tuple(params))


def test_gradcheck_elbo_wrt_encoder_weights_conv():
    model = ConvVAE(latent_dim=2, channels=(2,), hidden=None, dtype=np.float64)
    model.reset_parameters(np.random.default_rng(0))
    x = model.prepare(_synthetic_images(2), np.random.default_rng(0))
    conv, linear = model.encoder[0], model.encoder[-1]
    gradcheck(lambda *_: model.elbo(x, np.random.default_rng(7)),
              (conv.weight, conv.bias, linear.bias))


def test_every_parameter_gets_a_gradient():
    for model in (ConvVAE(latent_dim=3, channels=(4, 8), hidden=16, batchnorm=True),
                  MLPVAE(latent_dim=3, hidden=(16,), likelihood="discretized-logistic")):
        x = model.prepare(_synthetic_images(4), np.random.default_rng(0))
        (-model.elbo(x, np.random.default_rng(1)).mean()).backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and np.all(np.isfinite(p.grad.numpy())), name
            assert np.any(p.grad.numpy() != 0), name


# --- architecture ---------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [(8,), (4, 8), (4, 8, 8)])
@pytest.mark.parametrize("likelihood", ["bernoulli", "discretized-logistic"])
def test_conv_vae_shapes(channels, likelihood):
    model = ConvVAE(latent_dim=5, channels=channels, hidden=None, likelihood=likelihood)
    mu, logvar = model.encode(np.zeros((2, 28, 28), np.float32))
    assert mu.shape == logvar.shape == (2, 5)
    assert model.decode(mu).shape == (2, L.get_likelihood(likelihood).channels, 28, 28)


def test_same_seed_same_model_and_bad_arguments():
    a, b = (get_experiment("vae")({"seed": 3}) for _ in range(2))
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
    with pytest.raises(ValueError, match="latent_dim"):
        MLPVAE(latent_dim=0)
    with pytest.raises(ValueError, match="channels"):
        ConvVAE(channels=())
    with pytest.raises(ValueError, match="expected images of shape"):
        MLPVAE().encode(np.zeros((2, 1, 32, 32), np.float32))


# --- looking at it ----------------------------------------------------------------------------
def test_sampling_shapes_and_dtypes():
    model = _tiny_mlp()
    s = model.sample(5, np.random.default_rng(0))
    assert s.shape == (5, 28, 28) and s.dtype == np.uint8
    np.testing.assert_array_equal(s, model.sample(5, np.random.default_rng(0)))
    drawn = model.sample(5, np.random.default_rng(0), mean=False)
    assert drawn.dtype == np.uint8 and set(np.unique(drawn)) <= {0, 255}
    logistic = _tiny_mlp("discretized-logistic")
    assert logistic.sample(3, np.random.default_rng(0), mean=False).shape == (3, 28, 28)
    x = model.prepare(_synthetic_images(4), np.random.default_rng(0))
    r = model.reconstruct(x)
    assert r.shape == (4, 28, 28) and r.dtype == np.uint8


@pytest.mark.parametrize("make", [lambda: _tiny_mlp(scale=2.0),
                                  lambda: ConvVAE(latent_dim=4, channels=(4, 8), hidden=16)])
def test_interpolation_ends_decode_to_the_reconstructions(make):
    model = make()
    x = model.prepare(_synthetic_images(6), np.random.default_rng(0))
    path = model.interpolate(x[:3], x[3:], steps=7)
    assert path.shape == (3, 7, 28, 28) and path.dtype == np.uint8
    # The same latents decoded in a different batch: equal up to BLAS rounding (1 level).
    for ends, images in ((path[:, 0], x[:3]), (path[:, -1], x[3:])):
        diff = np.abs(ends.astype(int) - model.reconstruct(images).astype(int))
        assert diff.max() <= 1 and np.mean(diff == 0) > 0.999


# --- the Experiments -------------------------------------------------------------------------
def test_experiments_are_registered():
    assert get_experiment("vae").architecture == "conv"
    assert get_experiment("vae-mlp").architecture == "mlp"
    assert {"vae", "vae-mlp"} <= set(EXPERIMENTS)
    config = get_experiment("vae").default_config()
    assert config["likelihood"] == "bernoulli" and config["iwae_k"] >= 1
    with pytest.raises(ValueError, match="unknown likelihood"):
        get_experiment("vae")({"likelihood": "poisson"})


@pytest.mark.parametrize("name,likelihood", [("vae", "bernoulli"), ("vae-mlp", "bernoulli"),
                                             ("vae", "discretized-logistic"),
                                             ("vae-mlp", "discretized-logistic")])
def test_loss_decreases_on_real_fashion_mnist(real_train_images, name, likelihood):
    """30 Adam steps (batch 32) on 512 real images lower the negative ELBO of a fixed
    batch, measured with fixed noise before and after (per-batch training losses are
    too noisy for a short run: the batches differ more than 30 steps improve)."""
    small = {"vae": {"channels": [8, 16], "hidden": 64}, "vae-mlp": {"hidden": [128, 64]}}
    experiment = get_experiment(name)({"seed": 0, "likelihood": likelihood, "limit": 512,
                                       "latent_dim": 16, "lr": 3e-3, **small[name]})
    model = experiment.model
    x = model.prepare(real_train_images[:128], np.random.default_rng(123))

    def loss():
        with tg.no_grad():
            return float(-model.elbo(x, np.random.default_rng(5)).data.mean())

    before = loss()
    generator = np.random.default_rng(0)
    for step in range(30):
        lo = (step % 16) * 32
        stats = experiment.train_step((real_train_images[lo:lo + 32],), generator)
        assert np.isfinite(stats["loss"])
    after = loss()
    # Measured: -15% to -31% (Bernoulli), -9% to -14% (discretised logistic).
    assert after < before * (0.85 if likelihood == "bernoulli" else 0.95), (before, after)


def test_train_step_is_reproducible_from_the_generator():
    images = _synthetic_images(64)
    runs = []
    for _ in range(2):
        experiment = get_experiment("vae-mlp")({"seed": 1, "hidden": [32], "latent_dim": 4})
        g = np.random.default_rng(11)
        stats = [experiment.train_step((images[i:i + 16],), g) for i in range(0, 64, 16)]
        runs.append((stats, [p.numpy().copy() for p in experiment.model.parameters()]))
    assert runs[0][0] == runs[1][0]
    for p, q in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(p, q)
    assert set(runs[0][0][0]) == {"loss", "recon", "kl"}


@pytest.mark.parametrize("likelihood", ["bernoulli", "discretized-logistic"])
def test_evaluate_sample_and_visualize(likelihood):
    experiment = get_experiment("vae")({"seed": 0, "likelihood": likelihood, "test_limit": 6,
                                        "iwae_k": 4, "eval_batch": 4,
                                        "channels": [4, 8], "hidden": 16})
    test = (_synthetic_images(10, seed=5), np.zeros(10, np.int64))
    metrics = experiment.evaluate(test, np.random.default_rng(0))
    assert metrics["iwae_k"] == 4 and metrics["eval_images"] == 6
    assert np.isfinite(metrics["test_elbo_nats"]) and np.isfinite(metrics["test_iwae_nats"])
    assert metrics["test_iwae_nats"] < 0
    if likelihood == "bernoulli":
        assert metrics["test_binarize_seed"] == 0
        # The test set's binarisation is fixed by the seed, whatever the subset size.
        np.testing.assert_array_equal(experiment.test_inputs(test, 3),
                                      experiment.test_inputs(test)[:3])
    else:
        assert metrics["test_iwae_bpd"] > 0
    samples = experiment.sample(7, np.random.default_rng(0))
    assert samples.shape == (7, 28, 28) and samples.dtype == np.uint8
    for kind in ("samples", "reconstructions", "interpolations"):
        images = experiment.visualize(kind, 16, np.random.default_rng(0), test)
        assert images.shape == (16, 28, 28) and images.dtype == np.uint8, kind
    with pytest.raises(ValueError, match="unknown visualisation"):
        experiment.visualize("latents", 4, np.random.default_rng(0), test)
