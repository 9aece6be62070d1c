"""tinygen.models.likelihoods: the discretised logistic against a direct numpy
computation, its normalisation over the 256 levels, its stability where the direct
formula fails, its gradients; the Bernoulli and Gaussian helpers."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.models import likelihoods as L
from tinygen.testing import gradcheck

LEVELS = np.arange(256)
X = LEVELS / 127.5 - 1.0                       # level k on the [-1, 1] scale: 2k/255 - 1


def _sigmoid(t):
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def direct_log_prob(k, mean, log_scale):
    """Straight from the definition: CDF differences of the logistic, float64."""
    x = k / 127.5 - 1.0
    s = np.exp(log_scale)
    upper = np.where(k == 255, 1.0, _sigmoid((x + 1 / 255 - mean) / s))
    lower = np.where(k == 0, 0.0, _sigmoid((x - 1 / 255 - mean) / s))
    return np.log(upper - lower)


def log_prob(k, mean, log_scale, dtype=np.float64):
    x = tg.tensor(np.asarray(k) / 127.5 - 1.0, dtype=dtype)
    m = tg.tensor(np.broadcast_to(mean, x.shape).copy(), dtype=dtype)
    ls = tg.tensor(np.broadcast_to(log_scale, x.shape).copy(), dtype=dtype)
    return L.discretized_logistic_log_prob(x, m, ls).numpy()


@pytest.mark.parametrize("mean,log_scale", [(0.0, -2.0), (0.3, -4.0), (-0.9, -1.0),
                                            (1.2, 0.5), (-0.05, -5.5), (0.0, 2.0)])
def test_discretized_logistic_matches_direct_computation(mean, log_scale):
    with np.errstate(divide="ignore"):
        expected = direct_log_prob(LEVELS, mean, log_scale)
    ok = expected > -25  # where the direct formula still has digits to spare
    np.testing.assert_allclose(log_prob(LEVELS, mean, log_scale)[ok], expected[ok],
                               rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("mean,log_scale", [(0.0, -7.0), (0.5, -7.0), (-3.0, -3.0),
                                            (0.99, -6.0), (0.2, 0.0), (0.0, 4.0), (-1.0, -2.0),
                                            (1.0, -5.0), (0.0011, -6.9)])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_discretized_logistic_sums_to_one_over_256_levels(mean, log_scale, dtype, tol):
    p = np.exp(log_prob(LEVELS, mean, log_scale, dtype).astype(np.float64))
    assert np.all(np.isfinite(p))
    assert abs(p.sum() - 1.0) < tol


def test_edge_levels_own_the_tails():
    # A mean far below -1 puts (almost) all mass on level 0; far above, on level 255.
    assert log_prob([0], -5.0, -3.0)[0] > -1e-12
    assert log_prob([255], 5.0, -3.0)[0] > -1e-12
    # Level 0 is P(X <= -1 + 1/255), level 255 is P(X > 1 - 1/255).
    np.testing.assert_allclose(np.exp(log_prob([0], 0.0, -1.0))[0],
                               _sigmoid((-1 + 1 / 255) / np.exp(-1.0)), rtol=1e-12)
    np.testing.assert_allclose(np.exp(log_prob([255], 0.0, -1.0))[0],
                               1 - _sigmoid((1 - 1 / 255) / np.exp(-1.0)), rtol=1e-12)


def test_stable_where_the_direct_formula_underflows():
    # Tiny scale, level far from the mean: sigmoid(a) - sigmoid(b) is 0 in float64.
    k, mean, log_scale = np.array([40, 128, 200]), -0.9, -7.0
    with np.errstate(divide="ignore"):
        assert np.all(np.isneginf(direct_log_prob(k, mean, log_scale)))
    got = log_prob(k, mean, log_scale)
    assert np.all(np.isfinite(got))
    # Far in the tail the mass of [b, a] is ~ exp(-b) (1 - exp(-(a - b))), b >> 1.
    s = np.exp(log_scale)
    b = (k / 127.5 - 1.0 - 1 / 255 - mean) / s
    expected = -b + np.log(-np.expm1(-(2 / 255) / s))
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    # float32 too, gradients included.
    x = tg.tensor(k / 127.5 - 1.0, dtype=np.float32)
    m = tg.full((3,), mean, requires_grad=True)
    ls = tg.full((3,), log_scale, requires_grad=True)
    out = L.discretized_logistic_log_prob(x, m, ls)
    out.sum().backward()
    assert np.all(np.isfinite(out.numpy()))
    assert np.all(np.isfinite(m.grad.numpy())) and np.all(np.isfinite(ls.grad.numpy()))


def test_log1mexp_is_accurate_for_small_and_large_arguments():
    d = np.geomspace(1e-9, 30, 200)
    got = L._log1mexp(tg.tensor(d, dtype=np.float64)).numpy()
    np.testing.assert_allclose(got, np.log(-np.expm1(-d)), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("log_scale", [-3.0, 0.5])  # both branches of _log1mexp
def test_discretized_logistic_gradcheck(log_scale):
    rng = np.random.default_rng(0)
    k = np.array([0, 1, 60, 127, 128, 200, 254, 255])
    x = tg.tensor(k / 127.5 - 1.0, dtype=np.float64)
    mean = tg.tensor(rng.uniform(-1.1, 1.1, 8), dtype=np.float64, requires_grad=True)
    ls = tg.tensor(log_scale + rng.uniform(-0.5, 0.5, 8), dtype=np.float64,
                   requires_grad=True)
    gradcheck(lambda m, s: L.discretized_logistic_log_prob(x, m, s), (mean, ls))


def test_discretized_logistic_sample_follows_the_probabilities():
    mean, log_scale = 0.1, -2.5
    draws = L.discretized_logistic_sample(np.full(40000, mean), np.full(40000, log_scale),
                                          np.random.default_rng(0))
    assert draws.dtype == np.int64 and draws.min() >= 0 and draws.max() <= 255
    p = np.exp(direct_log_prob(LEVELS, mean, log_scale))
    counts = np.bincount(draws, minlength=256)
    # Coarse bins of 16 levels: observed frequencies within 5 standard errors.
    pb, cb = p.reshape(16, 16).sum(1), counts.reshape(16, 16).sum(1) / 40000
    assert np.all(np.abs(cb - pb) <= 5 * np.sqrt(pb * (1 - pb) / 40000) + 1e-4)


def test_bernoulli_log_prob_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 5, (4, 7))
    x = (rng.random((4, 7)) < 0.5).astype(np.float64)
    got = L.bernoulli_log_prob(tg.tensor(logits, dtype=np.float64), x).numpy()
    p = _sigmoid(logits)
    np.testing.assert_allclose(got, x * np.log(p) + (1 - x) * np.log1p(-p), rtol=1e-10)


def test_gaussian_log_probs_and_kl():
    rng = np.random.default_rng(0)
    z, mu, logvar = rng.normal(size=(3, 5, 4))
    t = lambda a: tg.tensor(a, dtype=np.float64)  # noqa: E731
    expected = -0.5 * (np.log(2 * np.pi) + logvar + (z - mu) ** 2 / np.exp(logvar))
    np.testing.assert_allclose(L.gaussian_log_prob(t(z), t(mu), t(logvar)).numpy(), expected)
    np.testing.assert_allclose(L.standard_normal_log_prob(t(z)).numpy(),
                               -0.5 * (np.log(2 * np.pi) + z ** 2))
    np.testing.assert_allclose(L.gaussian_kl_standard(t(mu), t(logvar)).numpy(),
                               0.5 * (mu ** 2 + np.exp(logvar) - logvar - 1))


def test_likelihood_objects_convert_between_uint8_and_model_inputs():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 28, 28)).astype(np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    b = L.get_likelihood("bernoulli")
    x = b.prepare(images, rng)
    assert x.shape == (3, 1, 28, 28) and x.dtype == np.float32
    assert set(np.unique(x)) <= {0.0, 1.0} and x[0, 0, 0, 0] == 0 and x[0, 0, 0, 1] == 1
    logits = np.where(x > 0, 50.0, -50.0)
    np.testing.assert_array_equal(b.mean_images(logits), (x[:, 0] * 255).astype(np.uint8))
    assert set(np.unique(b.sample_images(logits, rng))) <= {0, 255}

    d = L.get_likelihood("discretized-logistic")
    x = d.prepare(images)
    assert x.shape == (3, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    params = np.concatenate([x, np.full_like(x, -7.0)], axis=1)
    np.testing.assert_array_equal(d.mean_images(params), images)
    # Scale e^-7 against bins of half-width 1/255: ~97% of draws stay in their bin.
    drawn = d.sample_images(params, rng).astype(int)
    assert np.abs(drawn - images).max() <= 1 and np.mean(drawn == images) > 0.95
    with pytest.raises(ValueError, match="unknown likelihood"):
        L.get_likelihood("gaussian")
