"""tinygen.models.logistic_mixture: the discretized logistic mixture (PixelCNN++) against
an independent float64 numpy computation, its normalisation (1 channel exactly; 3
channels by exhaustive marginalisation), its first and second derivatives, its sampler
(the empirical distribution against the probabilities), and its argument checks."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
from tinygen.models.logistic_mixture import DiscretizedLogisticMixture
from tinygen.testing import gradcheck, gradgradcheck

LEVELS = np.arange(256)


# --- an independent reference: probabilities straight from the logistic CDF ----------------
def _sigmoid(t):
    """Accurate in both tails: exp of a non-positive number only, no 1 - (1 - tiny)."""
    e = np.exp(-np.abs(t))
    return np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _level_mass(k, mean, scale):
    """P(level k) of a logistic(mean, scale) discretised into 256 bins of [-1, 1] (level
    0 from -inf, level 255 to +inf).  Above the mean the difference is taken between
    survival functions, so neither tail cancels in float64."""
    x = k / 127.5 - 1.0
    hi = np.where(k == 255, np.inf, (x + 1 / 255 - mean) / scale)
    lo = np.where(k == 0, -np.inf, (x - 1 / 255 - mean) / scale)
    left = _sigmoid(hi) - _sigmoid(lo)
    right = _sigmoid(-lo) - _sigmoid(-hi)
    return np.where(lo > 0, right, left)


def _unpack(params, channels, K):
    """Parameter blocks of one pixel (P,) in the documented layout."""
    logits = params[:K]
    means = params[K:K + channels * K].reshape(channels, K)
    log_scales = np.maximum(params[K + channels * K:K + 2 * channels * K].reshape(channels, K),
                            -7.0)
    coefficients = np.tanh(params[K + 2 * channels * K:].reshape(3, K)) if channels == 3 else None
    weights = np.exp(logits - logits.max())
    return weights / weights.sum(), means, np.exp(log_scales), coefficients


def reference_prob(params, levels, channels, K):
    """p(pixel) for one pixel's params (P,) and levels (C,), float64."""
    pi, means, scales, coefficients = _unpack(params, channels, K)
    x = levels / 127.5 - 1.0
    total = 0.0
    for k in range(K):
        m = means[:, k].copy()
        if channels == 3:
            m[1] += coefficients[0, k] * x[0]
            m[2] += coefficients[1, k] * x[0] + coefficients[2, k] * x[1]
        total += pi[k] * np.prod([_level_mass(levels[c], m[c], scales[c, k])
                                  for c in range(channels)])
    return total


def random_params(rng, n, channels, K, log_scale=(-4.0, 0.5), spatial=()):
    """(n, P, *spatial) float64: logits, means beyond [-1, 1], log-scales, coefficients."""
    blocks = [rng.uniform(-2, 2, (n, K) + spatial),
              rng.uniform(-1.3, 1.3, (n, channels * K) + spatial),
              rng.uniform(*log_scale, (n, channels * K) + spatial)]
    if channels == 3:
        blocks.append(rng.uniform(-2, 2, (n, 3 * K) + spatial))
    return np.concatenate(blocks, axis=1)


def log_prob(mixture, params, levels):
    return mixture.log_prob(tg.tensor(params, dtype=np.float64), levels).numpy()


# --- values ------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
def test_matches_independent_numpy_computation(channels):
    rng = np.random.default_rng(0)
    K, n = 4, 64
    mixture = DiscretizedLogisticMixture(channels, K)
    params = random_params(rng, n, channels, K)
    levels = rng.integers(0, 256, (n, channels))
    levels[:8] = np.array([0, 255, 1, 254, 0, 255, 128, 0])[:, None]   # edge levels
    got = log_prob(mixture, params, levels)
    expected = np.log([reference_prob(params[i], levels[i], channels, K) for i in range(n)])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-11)


def test_log_scale_is_clamped_below_at_minus_7():
    """Scales below e^-7 act as e^-7 (levels at and beside a component's mean)."""
    rng = np.random.default_rng(11)
    mixture = DiscretizedLogisticMixture(1, 2)
    params = random_params(rng, 30, 1, 2, log_scale=(-11.0, -7.5))
    levels = np.clip(np.rint((params[:, 2:3] + 1) * 127.5) + rng.integers(-1, 2, (30, 1)),
                     0, 255).astype(np.int64)
    got = log_prob(mixture, params, levels)
    expected = np.log([reference_prob(params[i], levels[i], 1, 2) for i in range(30)])
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_parameter_layout_and_spatial_shapes():
    """(N, P, *spatial) in, (N, *spatial) out, each position its own pixel."""
    rng = np.random.default_rng(1)
    mixture = DiscretizedLogisticMixture(3, 2)
    assert mixture.parameters_per_pixel == 2 * (1 + 6 + 3)
    assert DiscretizedLogisticMixture(1, 5).parameters_per_pixel == 15
    params = random_params(rng, 2, 3, 2, spatial=(3, 4))
    levels = rng.integers(0, 256, (2, 3, 3, 4))
    got = log_prob(mixture, params, levels)
    assert got.shape == (2, 3, 4)
    for i, r, c in [(0, 0, 0), (1, 2, 3), (0, 1, 2)]:
        assert got[i, r, c] == pytest.approx(
            math.log(reference_prob(params[i, :, r, c], levels[i, :, r, c], 3, 2)), rel=1e-10)


# --- normalisation -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_one_channel_sums_to_one_over_256_levels(dtype, tol):
    """All 256 levels of a pixel, for random mixtures including scales at and below the
    clamp (log-scale -9) and far outside [-1, 1] (log-scale 3)."""
    rng = np.random.default_rng(2)
    K = 5
    mixture = DiscretizedLogisticMixture(1, K)
    for log_scale in [(-9.0, -5.0), (-4.0, 0.5), (0.0, 3.0)]:
        params = random_params(rng, 8, 1, K, log_scale)
        every_level = np.repeat(params, 256, axis=0)                    # (8 * 256, P)
        levels = np.tile(LEVELS, 8)[:, None]
        lp = mixture.log_prob(tg.tensor(every_level, dtype=dtype), levels).numpy()
        total = np.exp(lp.astype(np.float64)).reshape(8, 256).sum(axis=1)
        np.testing.assert_allclose(total, 1.0, atol=tol)


def test_three_channels_marginalise_exactly():
    """Exhaustive over G and B: sum_{g, b} p(r, g, b) is the 1-channel mixture with the R
    parameters (the R marginal, since each component's p(G | R) p(B | R, G) sums to 1),
    for edge and inner r.  And sum_b p(r, g, b) for fixed (r, g) is the reference mass
    of (r, g).  (All 256^3 values per pixel would take seconds; together with the
    1-channel test these pin the normalisation of the joint.)"""
    rng = np.random.default_rng(3)
    K = 3
    rgb, grey = DiscretizedLogisticMixture(3, K), DiscretizedLogisticMixture(1, K)
    params = random_params(rng, 1, 3, K, log_scale=(-3.0, -1.0))[0]
    r_params = np.concatenate([params[:K], params[K:2 * K], params[4 * K:5 * K]])
    g, b = np.meshgrid(LEVELS, LEVELS, indexing="ij")
    for r in (0, 97, 255):
        levels = np.stack([np.full(g.size, r), g.ravel(), b.ravel()], axis=1)
        p = np.exp(log_prob(rgb, np.broadcast_to(params, (g.size, len(params))), levels))
        marginal = math.exp(log_prob(grey, r_params[None], np.array([[r]]))[0])
        assert p.sum() == pytest.approx(marginal, rel=1e-10)
        # fixed (r, g): the sum over b against the reference p(r, g)
        pi, means, scales, coefficients = _unpack(params, 3, K)
        for g_level in (0, 40, 128, 255):
            mass_rg = sum(pi[k] * _level_mass(r, means[0, k], scales[0, k])
                          * _level_mass(g_level, means[1, k] + coefficients[0, k] * (r / 127.5 - 1),
                                        scales[1, k]) for k in range(K))
            assert p.reshape(256, 256)[g_level].sum() == pytest.approx(mass_rg, rel=1e-9)


# --- derivatives -------------------------------------------------------------------------
EDGE_LEVELS = st.sampled_from([0, 1, 127, 128, 254, 255]) | st.integers(0, 255)


@st.composite
def mixture_cases(draw):
    channels = draw(st.sampled_from([1, 3]))
    K = draw(st.integers(1, 3))
    n = draw(st.integers(1, 2))
    spatial = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    levels = np.array(draw(st.lists(EDGE_LEVELS, min_size=n * channels * int(np.prod(spatial)),
                                    max_size=n * channels * int(np.prod(spatial)))))
    return channels, K, n, spatial, seed, levels.reshape((n, channels) + spatial)


@settings(max_examples=12)
@given(mixture_cases())
def test_gradcheck_all_parameters(case):
    """The NLL's gradient w.r.t. every parameter (logits, means, log-scales,
    coefficients), float64, random upstream gradient; log-scales kept off the clamp."""
    channels, K, n, spatial, seed, levels = case
    rng = np.random.default_rng(seed)
    mixture = DiscretizedLogisticMixture(channels, K)
    params = tg.tensor(random_params(rng, n, channels, K, spatial=spatial), dtype=np.float64,
                       requires_grad=True)
    gradcheck(lambda p: -mixture.log_prob(p, levels), (params,), seed=seed)


@pytest.mark.parametrize("channels", [1, 3])
def test_gradgradcheck_tiny(channels):
    rng = np.random.default_rng(4)
    mixture = DiscretizedLogisticMixture(channels, 2)
    params = tg.tensor(random_params(rng, 1, channels, 2, spatial=(3,)), dtype=np.float64,
                       requires_grad=True)
    levels = np.array([[0, 255, 130]] * channels)[None]                 # (1, C, 3)
    gradgradcheck(lambda p: mixture.log_prob(p, levels), (params,))


# --- sampling ----------------------------------------------------------------------------
def _tv_bound(p, m, delta=1e-6):
    """A bound on the total-variation distance between ``m`` draws' frequencies and ``p``
    that holds with probability 1 - delta: E[TV] <= sum sqrt(p (1 - p) / m) / 2 (Jensen),
    and TV moves by at most 1/m per draw, so McDiarmid adds sqrt(log(1/delta) / 2m)."""
    return 0.5 * np.sum(np.sqrt(p * (1 - p) / m)) + math.sqrt(math.log(1 / delta) / (2 * m))


def test_one_channel_samples_follow_the_probabilities():
    m, K = 40000, 3
    mixture = DiscretizedLogisticMixture(1, K)
    # three separated components with unequal weights; one scale at the clamp
    params = np.array([1.0, -0.5, 0.2, -0.6, 0.1, 0.85, -3.0, -9.0, -2.5])
    p = np.exp(log_prob(mixture, params[None].repeat(256, 0), LEVELS[:, None]))
    draws = mixture.sample(np.broadcast_to(params, (m, 9)), np.random.default_rng(5))
    assert draws.shape == (m, 1) and draws.dtype == np.uint8
    freq = np.bincount(draws[:, 0], minlength=256) / m
    bound = _tv_bound(p, m)
    assert 0.5 * np.abs(freq - p).sum() < bound
    # the bound is tight enough to catch a sampler that ignored the mixture weights
    equal = params.copy()
    equal[:K] = 0.0
    q = np.exp(log_prob(mixture, equal[None].repeat(256, 0), LEVELS[:, None]))
    assert 0.5 * np.abs(freq - q).sum() > 3 * bound


def _cell_probabilities(params, K, coupled=True, width=32):
    """Reference P(R, G, B in cells of ``width`` levels) of one 3-channel pixel: exact
    over r and g, the B cell's mass from the CDF at its edges."""
    pi, means, scales, coefficients = _unpack(params, 3, K)
    if not coupled:
        coefficients = np.zeros_like(coefficients)
    x = LEVELS / 127.5 - 1.0
    edges = np.arange(0, 257, width)
    cells = np.zeros((256 // width,) * 3)
    for k in range(K):
        p_r = _level_mass(LEVELS, means[0, k], scales[0, k])                         # (r,)
        p_g = _level_mass(LEVELS[None], means[1, k] + coefficients[0, k] * x[:, None],
                          scales[1, k])                                              # (r, g)
        mean_b = means[2, k] + coefficients[1, k] * x[:, None] + coefficients[2, k] * x[None]
        upper = (edges[1:] / 127.5 - 1.0 - 1 / 255)                                 # cell tops
        cdf = _sigmoid((upper[None, None] - mean_b[..., None]) / scales[2, k])
        cdf[..., -1] = 1.0
        p_b = np.diff(cdf, prepend=0.0, axis=-1)                                    # (r, g, cell)
        joint = pi[k] * p_r[:, None, None] * p_g[..., None] * p_b
        cells += joint.reshape(256 // width, width, 256 // width, width, -1).sum(axis=(1, 3))
    return cells


def test_three_channel_samples_follow_the_coupled_joint():
    """Joint frequencies on 8 x 8 x 8 cells of 32 levels against the reference; the same
    draws are far from the joint without the coupling."""
    m, K = 40000, 2
    mixture = DiscretizedLogisticMixture(3, K)
    params = np.concatenate([[0.3, -0.3],                          # logits
                             [-0.4, 0.3, 0.1, -0.2, 0.0, 0.2],     # means R, G, B
                             [-2.0, -1.5, -2.5, -1.8, -1.6, -2.2],  # log-scales
                             [1.5, -1.2, 0.9, 0.4, -1.4, 1.1]])    # coefficients
    draws = mixture.sample(np.broadcast_to(params, (m, len(params))), np.random.default_rng(6))
    assert draws.shape == (m, 3) and draws.dtype == np.uint8
    cell = draws.astype(np.int64) // 32
    freq = np.bincount((cell[:, 0] * 8 + cell[:, 1]) * 8 + cell[:, 2], minlength=512) / m
    p = _cell_probabilities(params, K).ravel()
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    bound = _tv_bound(p, m)
    assert 0.5 * np.abs(freq - p).sum() < bound
    uncoupled = _cell_probabilities(params, K, coupled=False).ravel()
    assert 0.5 * np.abs(freq - uncoupled).sum() > 3 * bound


def _within_binomial(count, p, m, z=5.0):
    return abs(count / m - p) <= z * math.sqrt(p * (1 - p) / m)


def test_sampler_clamps_the_log_scale_like_log_prob():
    """A log-scale of -12 acts as -7: ~97% of draws on the mean's level, not ~100%."""
    m = 40000
    mixture = DiscretizedLogisticMixture(1, 1)
    params = np.array([0.0, 100 / 127.5 - 1.0, -12.0])
    p100 = math.exp(log_prob(mixture, params[None], np.array([[100]]))[0])
    assert 0.95 < p100 < 0.98
    draws = mixture.sample(np.broadcast_to(params, (m, 3)), np.random.default_rng(9))
    assert _within_binomial(np.sum(draws == 100), p100, m)


def test_coupling_conditions_on_the_drawn_levels():
    """G = R + 3 levels almost surely (coefficient tanh(20) = 1, G's scale at the clamp):
    the coupling must use R's drawn level, as log_prob does; coupling on R's continuous
    draw (PixelCNN++'s sampler) would spread G over two levels."""
    m = 20000
    mixture = DiscretizedLogisticMixture(3, 1)
    #                 logit  means R, G, B      log-scales  coefficients
    params = np.array([0.0, 0.0, 6 / 255, 0.0, -2.0, -7.0, 0.0, 20.0, 0.0, 0.0])
    r = np.arange(253)
    x_r = r / 127.5 - 1.0
    p_event = np.sum(_level_mass(r, 0.0, math.exp(-2.0))
                     * _level_mass(r + 3, 6 / 255 + x_r, math.exp(-7.0)))
    draws = mixture.sample(np.broadcast_to(params, (m, 10)), np.random.default_rng(10))
    event = draws[:, 1].astype(int) - draws[:, 0] == 3
    assert _within_binomial(event.sum(), p_event, m)


def test_sampler_draws_from_the_generator_in_a_fixed_order():
    """Same generator state, same pixels; the component first, then the channels."""
    mixture = DiscretizedLogisticMixture(3, 4)
    params = random_params(np.random.default_rng(7), 5, 3, 4, spatial=(2, 3))
    a = mixture.sample(params, np.random.default_rng(8))
    b = mixture.sample(tg.tensor(params, dtype=np.float64), np.random.default_rng(8))
    assert a.shape == (5, 3, 2, 3)
    np.testing.assert_array_equal(a, b)
    gen = np.random.default_rng(8)
    gen.random((5, 2, 3))
    gen.random((5, 3, 2, 3))
    after = gen.random()
    gen = np.random.default_rng(8)
    mixture.sample(params, gen)
    assert gen.random() == after


# --- bad input ---------------------------------------------------------------------------
def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="channels must be 1 .* or 3"):
        DiscretizedLogisticMixture(2)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="mixtures must be a positive int"):
            DiscretizedLogisticMixture(1, bad)
    mixture = DiscretizedLogisticMixture(1, 2)
    params = tg.zeros(2, 6, 3, dtype=np.float64)
    with pytest.raises(ValueError, match=r"params must have shape \(N, 6, \.\.\.\)"):
        mixture.log_prob(tg.zeros(2, 5, 3, dtype=np.float64), np.zeros((2, 1, 3), np.uint8))
    with pytest.raises(ValueError, match=r"images must have shape \(2, 1, 3\)"):
        mixture.log_prob(params, np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"levels 0\.\.255, got values in \[0, 256\]"):
        mixture.log_prob(params, np.array([[[0, 256, 3]], [[1, 2, 3]]]))
    with pytest.raises(ValueError, match=r"got values in \[-1, 3\]"):
        mixture.log_prob(params, np.array([[[0, -1, 3]], [[1, 2, 3]]]))
    with pytest.raises(TypeError, match="integer levels"):
        mixture.log_prob(params, np.zeros((2, 1, 3)))
    with pytest.raises(TypeError, match="params must be a Tensor"):
        mixture.log_prob(np.zeros((2, 6, 3)), np.zeros((2, 1, 3), np.uint8))
    with pytest.raises(TypeError, match="floating point"):
        mixture.log_prob(tg.zeros(2, 6, 3, dtype=np.int64), np.zeros((2, 1, 3), np.uint8))
