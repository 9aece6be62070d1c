"""The VAEs' autoregressive decoder (``-o decoder=pixelcnn``, pixel_decoder.py): causal in
raster order, its gradients against finite differences in float64, the bounds it gives
(the importance-weighted bound against an exact marginal, the context shared by a
bound's samples), pixel-by-pixel sampling against one pass, and the runner's options."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinygen import tensor
from tinygen.autograd.grad_mode import no_grad
from tinygen.models.vae.hierarchical import HierConvVAE
from tinygen.models.vae.model import log_mean_exp
from tinygen.models.vae.networks import ConvVAE, MLPVAE
from tinygen.models.vae.pixel_decoder import PixelDecoderHead
from tinygen.nn import init
from tinygen.testing import gradcheck

from ._helpers import assert_options_refused, binary_images, initialised


def head(channels=3, layers=1, features=2, out_channels=1, seed=0, scale=1.0):
    h = PixelDecoderHead(channels, layers, features, out_channels, dtype=np.float64)
    init.reset_parameters_(h, np.random.default_rng(seed))
    for p in h.parameters():
        p.data *= scale
    return h


# --- the head -----------------------------------------------------------------------------------
@settings(max_examples=6, deadline=None)
@given(height=st.integers(2, 6), width=st.integers(1, 6), layers=st.integers(0, 2),
       seed=st.integers(0, 2 ** 16))
def test_each_output_reads_only_the_pixels_before_it(height, width, layers, seed):
    """Flipping pixel p leaves every output at or before p (raster order) unchanged,
    bit for bit, and changes some output after it (when there is one its context can
    reach: the next pixel in the row, through the 7x7 mask's left taps)."""
    h = head(layers=layers, seed=seed, scale=3.0)
    rng = np.random.default_rng(seed)
    features = tensor(rng.standard_normal((2, 2, height, width)))
    x = (rng.random((2, 1, height, width)) < 0.5).astype(np.float64)
    base = h(features, tensor(x)).data.reshape(2, -1)
    for p in range(height * width):
        r, c = divmod(p, width)
        flipped = x.copy()
        flipped[:, :, r, c] = 1 - flipped[:, :, r, c]
        moved = np.abs(h(features, tensor(flipped)).data.reshape(2, -1) - base).max(axis=0)
        assert np.all(moved[:p + 1] == 0), (p, moved)
        if c + 1 < width:
            assert moved[p + 1:].max() > 0, p          # the test can tell


@settings(max_examples=5, deadline=None)
@given(height=st.integers(1, 5), width=st.integers(1, 5), layers=st.integers(0, 2),
       out_channels=st.sampled_from([1, 2]), seed=st.integers(0, 2 ** 16))
def test_head_gradients_by_finite_differences(height, width, layers, out_channels, seed):
    """d params / d features by gradcheck (random upstream gradient), and d / d every
    weight of the head by central differences along a random upstream gradient."""
    h = head(layers=layers, out_channels=out_channels, seed=seed)
    rng = np.random.default_rng(seed)
    x = tensor((rng.random((2, 1, height, width)) < 0.5).astype(np.float64))
    features = tensor(rng.standard_normal((2, 2, height, width)), requires_grad=True)
    gradcheck(lambda f: h(f, x), [features])
    check_parameters(list(h.parameters()), lambda: h(features, x), rng)


def check_parameters(params, forward, rng, step=1e-6):
    """Central differences of sum(forward() * w) along each parameter entry, against the
    gradient backward() gives, w a random upstream gradient."""
    out = forward()
    weights = rng.standard_normal(out.shape)
    for p in params:
        p.grad = None
    (out * tensor(weights)).sum().backward()
    for p in params:
        analytic = np.array(p.grad.data)
        numeric = np.zeros_like(analytic)
        flat = p.data.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + step
            hi = float(np.sum(forward().data * weights))
            flat[i] = old - step
            lo = float(np.sum(forward().data * weights))
            flat[i] = old
            numeric.reshape(-1)[i] = (hi - lo) / (2 * step)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_head_rejects_features_and_pixels_that_do_not_fit():
    h = head()
    with pytest.raises(ValueError, match=r"expected features \(N, 2, H, W\)"):
        h(tensor(np.zeros((1, 3, 4, 4))), tensor(np.zeros((1, 1, 4, 4))))
    with pytest.raises(ValueError, match="expected pixels"):
        h(tensor(np.zeros((1, 2, 4, 4))), tensor(np.zeros((1, 2, 4, 4))))
    with pytest.raises(ValueError, match="context of shape"):
        h(tensor(np.zeros((2, 2, 4, 4))), tensor(np.zeros((1, 1, 4, 4))))
    with pytest.raises(ValueError, match="pixel_layers must be an int >= 0"):
        PixelDecoderHead(layers=-1)
    with pytest.raises(ValueError, match="pixel_features must be a positive int"):
        PixelDecoderHead(features=0)
    with pytest.raises(ValueError, match="decoder must be 'factorized'"):
        ConvVAE(decoder="pixel")


# --- the VAEs with it ---------------------------------------------------------------------------
def tiny(cls=ConvVAE, latent=2, seed=0, scale=None, **kw):
    options = dict(channels=(2, 3), hidden=6) if cls is not MLPVAE else dict(hidden=(6,))
    if cls is HierConvVAE:
        options["latent1_dim"] = kw.pop("latent1", 2)
    return initialised(cls(latent_dim=latent, dtype=np.float64, decoder="pixelcnn",
                           pixel_channels=3, pixel_layers=1, pixel_features=2, **options, **kw),
                       seed, scale)


@pytest.mark.parametrize("cls", [ConvVAE, HierConvVAE, MLPVAE])
def test_elbo_gradient_reaches_the_head_and_the_decoder(cls):
    m = tiny(cls, prior="vamp", pseudo_inputs=3)
    x = binary_images(2)
    params = [m.pixel_head.first.weight, m.pixel_head.out.bias,
              m.pixel_head.to_context.weight, m.decoder[-1].weight]
    check_parameters(params, lambda: -m.elbo(x, np.random.default_rng(5)),
                     np.random.default_rng(9))
    assert np.abs(m.pixel_head.first.weight.grad.data).max() > 0


@pytest.mark.parametrize("cls", [ConvVAE, HierConvVAE])
def test_the_bound_shares_one_context_among_its_samples(cls):
    """The bound computes the pixels' context once per image and repeats it for the k
    samples: the same numbers as IWAE training's log-weights, which take it through the
    differentiable path, and as a log-likelihood that recomputes the context for each
    sample; whatever the passes."""
    m = tiny(cls, scale=1.5)
    x = binary_images(2)
    k = 6
    bound = m.iwae_bound(x, k, np.random.default_rng(3), chunk=4096)
    log_px, log_ratio = m.log_weight_terms(x, k, np.random.default_rng(3))
    np.testing.assert_allclose(bound, log_mean_exp(log_px.numpy() + log_ratio.numpy()),
                               rtol=1e-12)
    # one image in passes of 5 samples and then 1 (the noise stream of one image does not
    # depend on the passes; several images' streams do, by design)
    np.testing.assert_allclose(m.iwae_bound(x[:1], k, np.random.default_rng(3), chunk=5),
                               m.iwae_bound(x[:1], k, np.random.default_rng(3)), rtol=1e-12)
    with no_grad():
        code = tensor(np.random.default_rng(4).standard_normal(
            (k * 2, m.latent_dim + getattr(m, "latent1_dim", 0))))
        xs = tensor(np.repeat(x[None, :, None], k, axis=0).reshape(k * 2, 1, 28, 28))
        once = m.log_likelihood(m.decode(code), xs,
                                m.pixel_head.context(tensor(x[:, None])).data[None].repeat(
                                    k, axis=0).reshape(k * 2, 2, 28, 28))
        each = m.log_likelihood(m.decode(code), xs)
    np.testing.assert_allclose(once.data, each.data, rtol=1e-12)


def test_elbo_below_iwae_and_iwae_rises_with_k():
    m = tiny(HierConvVAE, scale=2.0)
    x = binary_images(2)
    g = np.random.default_rng(2)
    reps = np.repeat(x, 200, axis=0)                               # 200 draws per image
    elbo = m.elbo(reps, g).numpy().mean()
    means = [m.iwae_bound(reps, 2, g, chunk=4096).mean(),
             m.iwae_bound(reps[::4], 20, g, chunk=4096).mean(),
             m.iwae_bound(x, 1000, g, chunk=512).mean()]
    assert elbo < means[0] < means[1] < means[2], (elbo, means)


def exact_log_marginal(m, x, grid=np.linspace(-8, 8, 801)):
    """log p(x) = log int p(x|z) p(z) dz for a 1-D z, trapezoid rule."""
    z = grid.reshape(-1, 1)
    with m._evaluating():
        log_px = m.log_likelihood(m.decode(tensor(z)),
                                  np.broadcast_to(x, (len(z), 1, 28, 28))).data
    f = log_px + m.log_prior(z)
    top = f.max()
    return top + math.log(np.trapezoid(np.exp(f - top), grid))


@pytest.mark.parametrize("prior", ["standard", "vamp"])
def test_iwae_bound_converges_to_the_exact_marginal(prior):
    """With the autoregressive decoder p(x|z) is a product of conditionals, still exact
    in one pass: IS-2000 lands within 0.05 nats (and a fifth of IS-1's gap) of log p(x)
    by quadrature over a 1-D z."""
    m = tiny(ConvVAE, latent=1, scale=2.0, prior=prior, pseudo_inputs=3)
    x = binary_images(1, seed=3)[0]
    exact = exact_log_marginal(m, x)
    rng = np.random.default_rng(0)
    k1 = m.iwae_bound(np.broadcast_to(x, (100, 28, 28)), 1, rng, chunk=512)
    estimates = m.iwae_bound(np.broadcast_to(x, (4, 28, 28)), 2000, rng, chunk=512)
    gap = exact - k1.mean()
    assert gap > 0.2, (k1.mean(), exact)                  # a real gap to close
    assert abs(estimates.mean() - exact) < min(0.05, gap / 5), (estimates, exact)


@pytest.mark.parametrize("likelihood", ["bernoulli", "discretized-logistic"])
def test_sampling_pixel_by_pixel_matches_one_pass_on_the_result(likelihood):
    """Each pixel is drawn from the head's output given the pixels drawn before it (on a
    band of rows): the parameters the sampler used equal one pass over the finished
    images, and mean=True shows those parameters' means."""
    m = tiny(ConvVAE, scale=2.0, likelihood=likelihood)
    m.pixel_head.first.weight.data *= 3.0
    images = m.sample(3, np.random.default_rng(1), mean=False)
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    if likelihood == "bernoulli":
        assert set(np.unique(images)) <= {0, 255}
    with m._evaluating():
        z = tensor(m._prior_code(np.random.default_rng(1), 3))
        features = m.decode(z)
        drawn, params = m.pixel_head.sample(
            features, m.likelihood, np.random.default_rng(7),
            lambda u: m.likelihood.prepare(u, np.random.default_rng(0), dtype=np.float64))
        x = m.likelihood.prepare(drawn, np.random.default_rng(0), dtype=np.float64)
        one_pass = m.pixel_head(features, tensor(x)).data
    np.testing.assert_allclose(params, one_pass, rtol=1e-10, atol=1e-12)
    means = m.sample(3, np.random.default_rng(1), mean=True)
    assert means.shape == (3, 28, 28)
    assert len(np.unique(means)) > 2                 # grey levels, not the binary draws
    with pytest.raises(ValueError, match="pass a generator"):
        m.reconstruct(binary_images(1))


# --- the runner ----------------------------------------------------------------------------------
def test_command_line_trains_evaluates_and_samples_with_it(tmp_path, capsys):
    from tinygen.cli import main

    out = tmp_path / "run"
    args = ["--limit", "64", "--batch-size", "32", "--test-limit", "4", "--n-samples", "4",
            "-o", "channels=[2,4]", "-o", "hidden=8", "-o", "latent_dim=2",
            "-o", "latent1_dim=2", "-o", "iwae_k=3", "-o", "decoder=pixelcnn",
            "-o", "pixel_channels=4", "-o", "pixel_features=3", "--no-progress"]
    assert main(["train", "vae-hier", "--epochs", "1", "--out", str(out), *args]) == 0
    assert (out / "samples.png").exists()
    capsys.readouterr()
    assert main(["eval", "--run", str(out), "--iwae-k", "5", "--test-limit", "2"]) == 0
    assert '"iwae_k": 5' in capsys.readouterr().out
    assert_options_refused(capsys, tmp_path / "bad",
                           ["train", "vae", "--epochs", "1", "--no-progress", *args[:8]],
                           [("decoder=pixel", "decoder must be one of factorized, pixelcnn"),
                            ("pixel_layers=-1", "pixel_layers must be"),
                            ("pixel_features=0", "pixel_features must be")])
