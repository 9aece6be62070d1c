"""init: gains, fans, and the distributions' bounds and statistics (PyTorch's formulas)."""
import math

import numpy as np
import pytest

import tinygen as tg
from tinygen import nn
from tinygen.nn import init


def gen(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("name, param, expected", [
    ("linear", None, 1.0), ("conv2d", None, 1.0), ("conv_transpose2d", None, 1.0),
    ("sigmoid", None, 1.0), ("tanh", None, 5 / 3), ("relu", None, math.sqrt(2)),
    ("leaky_relu", None, math.sqrt(2 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2 / (1 + 0.04))), ("leaky_relu", math.sqrt(5), math.sqrt(1 / 3)),
    ("selu", None, 0.75),
])
def test_calculate_gain(name, param, expected):
    assert init.calculate_gain(name, param) == pytest.approx(expected)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "0.2")


def test_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for name in ("linear", "conv1d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"):
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    assert init.calculate_gain("leaky_relu", 0.3) == pytest.approx(
        torch.nn.init.calculate_gain("leaky_relu", 0.3))


@pytest.mark.parametrize("shape, fans", [
    ((5, 3), (3, 5)),                 # Linear (out, in)
    ((16, 8, 3, 3), (72, 144)),       # conv2d (out, in/groups, kh, kw)
    ((16, 2, 3, 3), (18, 144)),       # conv2d with groups=4 on 8 input channels
    ((8, 4, 5), (20, 40)),            # conv1d
    ((6, 4, 2, 3, 3), (72, 108)),     # conv3d
])
def test_fan_in_and_fan_out(shape, fans):
    assert init._calculate_fan_in_and_fan_out(tg.zeros(*shape)) == fans


def test_fans_match_torch():
    torch = pytest.importorskip("torch")
    from torch.nn.init import _calculate_fan_in_and_fan_out as torch_fans

    for shape in [(5, 3), (16, 8, 3, 3), (8, 4, 5), (6, 4, 2, 3, 3)]:
        assert init._calculate_fan_in_and_fan_out(tg.zeros(*shape)) == torch_fans(torch.zeros(shape))


def test_fans_need_two_dims():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(tg.zeros(3))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(tg.zeros(2, 2), mode="fan_avg")


def test_kaiming_uniform_bound_and_std():
    w = tg.empty(512, 256)
    out = init.kaiming_uniform_(w, a=0, mode="fan_in", nonlinearity="relu", generator=gen())
    assert out is w and w.dtype == np.float32
    bound = math.sqrt(2) * math.sqrt(3 / 256)
    values = w.numpy()
    assert values.max() <= bound and values.min() >= -bound
    assert values.max() > 0.99 * bound and values.min() < -0.99 * bound
    assert values.std() == pytest.approx(math.sqrt(2 / 256), rel=0.01)
    assert abs(values.mean()) < 3 * values.std() / math.sqrt(values.size)


def test_kaiming_normal_std_fan_out():
    w = tg.empty(64, 32, 3, 3, dtype=tg.float64)
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=gen(1))
    assert w.dtype == np.float64
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)


def test_xavier_uniform_and_normal():
    w = tg.empty(300, 200)
    init.xavier_uniform_(w, gain=2.0, generator=gen(2))
    bound = 2.0 * math.sqrt(6 / 500)
    assert np.abs(w.numpy()).max() <= bound and np.abs(w.numpy()).max() > 0.99 * bound
    init.xavier_normal_(w, generator=gen(3))
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / 500), rel=0.02)


def test_uniform_normal_constant():
    w = tg.empty(100000)
    init.uniform_(w, -2.0, 3.0, generator=gen(4))
    assert w.numpy().min() >= -2 and w.numpy().max() <= 3
    assert w.numpy().mean() == pytest.approx(0.5, abs=0.02)
    init.normal_(w, 1.0, 0.02, generator=gen(5))
    assert w.numpy().mean() == pytest.approx(1.0, abs=1e-3)
    assert w.numpy().std() == pytest.approx(0.02, rel=0.02)
    init.constant_(w, 0.3)
    assert np.all(w.numpy() == np.float32(0.3))
    init.zeros_(w)
    assert not w.numpy().any()
    init.ones_(w)
    assert np.all(w.numpy() == 1)


def test_trunc_normal_bounds_and_moments():
    w = tg.empty(200000, dtype=tg.float64)
    init.trunc_normal_(w, mean=0.0, std=1.0, a=-1.0, b=2.0, generator=gen(6))
    values = w.numpy()
    assert values.min() >= -1.0 and values.max() <= 2.0
    # Moments of N(0,1) truncated to [-1, 2].
    phi = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    z = cdf(2) - cdf(-1)
    mean = (phi(-1) - phi(2)) / z
    var = 1 + (-1 * phi(-1) - 2 * phi(2)) / z - mean ** 2
    assert values.mean() == pytest.approx(mean, abs=0.01)
    assert values.var() == pytest.approx(var, rel=0.02)


def test_trunc_normal_far_tail():
    w = tg.empty(1000, dtype=tg.float64)
    init.trunc_normal_(w, mean=0.0, std=1.0, a=4.0, b=5.0, generator=gen(7))
    assert w.numpy().min() >= 4.0 and w.numpy().max() <= 5.0
    assert w.numpy().mean() < 4.4  # mass piles up near the lower bound


def test_init_is_reproducible_and_uses_default_generator():
    a, b = tg.empty(4, 4), tg.empty(4, 4)
    init.kaiming_uniform_(a, generator=gen(9))
    init.kaiming_uniform_(b, generator=gen(9))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    tg.manual_seed(3)
    init.normal_(a)
    tg.manual_seed(3)
    init.normal_(b)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_init_does_not_record_a_graph():
    p = nn.Parameter(tg.zeros(3, 3))
    init.xavier_uniform_(p)
    assert p.is_leaf and p.requires_grad and p.grad is None


def test_init_rejects_non_tensors_and_integers():
    with pytest.raises(TypeError, match="Tensor"):
        init.uniform_(np.zeros(3))
    with pytest.raises(TypeError, match="floating"):
        init.normal_(tg.zeros(3, dtype=tg.int64))
