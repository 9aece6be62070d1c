"""Spectral normalisation: spectral_normalize under finite differences, the power
iteration's convergence, the nn.utils re-parameterisation (state_dict, train/eval,
remove), PyTorch CPU as an outside oracle, and the error messages."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygen as tg
from tinygen.nn import Module, Parameter
from tinygen.nn.linear import Linear
from tinygen.nn.utils.spectral_norm import spectral_norm, remove_spectral_norm
from tinygen.ops.spectral_norm import (power_iteration, spectral_normalize, spectral_sigma,
                                       weight_to_matrix)
from tinygen.testing import check_grads, f64

from .._impls import seeds


class WeightOnly(Module):
    """A module whose forward returns its (normalised) weight: any weight shape."""

    def __init__(self, shape, dtype=np.float64, transposed=False):
        super().__init__()
        self.weight = Parameter(np.random.default_rng(0).standard_normal(shape).astype(dtype))
        self.transposed = transposed

    def forward(self, x=None):
        return self.weight


def _unit(rng, n):
    u = rng.standard_normal(n)
    return u / np.linalg.norm(u)


# --- finite differences --------------------------------------------------------------------------
@given(st.lists(st.integers(1, 3), min_size=1, max_size=4), st.data(), seeds)
def test_spectral_normalize_gradcheck_and_gradgradcheck(shape, data, seed):
    dim = data.draw(st.integers(0, len(shape) - 1))
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    matrix = weight_to_matrix(w, dim)
    u, v = _unit(rng, matrix.shape[0]), _unit(rng, matrix.shape[1])
    u, v = power_iteration(matrix, u, v, 3, 1e-12)  # sigma well away from 0
    u_t, v_t = f64(u, False), f64(v, False)
    check_grads(lambda t: spectral_normalize(t, u_t, v_t, dim), f64(w))


def test_gradient_flows_through_the_weight_only():
    rng = np.random.default_rng(1)
    w, u, v = f64(rng.standard_normal((3, 4))), f64(_unit(rng, 3)), f64(_unit(rng, 4))
    out = spectral_normalize(w, u, v).sum()
    gw, gu, gv = tg.grad(out, [w, u, v], allow_unused=True)
    assert gw is not None and gu is None and gv is None


# --- power iteration -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_power_iteration_converges_to_the_top_singular_value(dtype, tol):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((20, 30)).astype(dtype)
    top = np.linalg.svd(a.astype(np.float64), compute_uv=False)[0]
    u, v = _unit(rng, 20).astype(dtype), _unit(rng, 30).astype(dtype)
    u, v = power_iteration(a, u, v, 500)
    assert u.dtype == v.dtype == dtype
    sigma = spectral_sigma(tg.tensor(a), u, v).item()
    assert abs(sigma - top) / top < tol


def test_module_estimate_converges_and_normalised_weight_has_unit_spectral_norm():
    tg.manual_seed(0)
    layer = spectral_norm(Linear(12, 7).double(), n_power_iterations=5)
    for _ in range(60):
        layer(tg.zeros(1, 12, dtype=tg.float64))
    assert abs(np.linalg.svd(layer.weight.numpy(), compute_uv=False)[0] - 1.0) < 1e-8


# --- the re-parameterisation ---------------------------------------------------------------------
def test_state_dict_has_orig_u_v_and_round_trips():
    tg.manual_seed(3)
    layer = spectral_norm(Linear(5, 4))
    assert list(layer.state_dict()) == ["bias", "weight_orig", "weight_u", "weight_v"]
    assert [name for name, _ in layer.named_parameters()] == ["bias", "weight_orig"]
    assert layer.weight_u.shape == (4,) and layer.weight_v.shape == (5,)
    np.testing.assert_allclose(np.linalg.norm(layer.weight_u.numpy()), 1.0, rtol=1e-6)
    x = tg.randn(2, 5)
    for _ in range(3):
        layer(x)
    layer.eval()
    expected = layer(x).numpy()

    tg.manual_seed(99)  # different u, v, weights
    other = spectral_norm(Linear(5, 4))
    other.load_state_dict(layer.state_dict())
    other.eval()
    np.testing.assert_array_equal(other(x).numpy(), expected)
    np.testing.assert_array_equal(other.weight.numpy(), layer.weight.numpy())


def test_training_mode_updates_u_and_eval_mode_does_not():
    layer = spectral_norm(WeightOnly((4, 3)))
    u0 = layer.weight_u.numpy().copy()
    layer()
    u1 = layer.weight_u.numpy().copy()
    assert not np.allclose(u0, u1)
    layer.eval()
    w_eval = layer().numpy()
    np.testing.assert_array_equal(layer.weight_u.numpy(), u1)
    np.testing.assert_array_equal(layer().numpy(), w_eval)
    sigma = u1 @ layer.weight_orig.numpy() @ layer.weight_v.numpy()
    np.testing.assert_allclose(w_eval, layer.weight_orig.numpy() / sigma, rtol=1e-12)


def test_the_weight_is_recomputed_with_a_graph_to_weight_orig():
    layer = spectral_norm(WeightOnly((3, 3)))
    out = (layer() ** 2).sum()
    out.backward()
    assert layer.weight_orig.grad is not None and layer.weight_orig.grad.shape == (3, 3)
    assert layer.weight_u.grad is None


def test_a_graph_survives_a_second_forward_before_backward():
    """u, v used by a graph are copies: a later power iteration does not change them."""
    layer = spectral_norm(WeightOnly((4, 3)))
    first = (layer() * f64(np.arange(12.0).reshape(4, 3), False)).sum()
    (expected,) = tg.grad(first, [layer.weight_orig], retain_graph=True)
    layer()  # updates weight_u / weight_v in place
    (again,) = tg.grad(first, [layer.weight_orig])
    np.testing.assert_array_equal(again.numpy(), expected.numpy())


def test_dim_defaults_to_1_for_transposed_modules_and_can_be_given():
    layer = spectral_norm(WeightOnly((2, 5, 3, 3), transposed=True))
    assert layer.weight_u.shape == (5,) and layer.weight_v.shape == (18,)
    layer = spectral_norm(WeightOnly((2, 5, 3, 3)))
    assert layer.weight_u.shape == (2,) and layer.weight_v.shape == (45,)
    layer = spectral_norm(WeightOnly((2, 5, 3)), dim=2)
    assert layer.weight_u.shape == (3,) and layer.weight_v.shape == (10,)


def test_conv_modules_when_present():
    conv = pytest.importorskip("tinygen.nn.conv")
    assert spectral_norm(conv.Conv2d(3, 8, 3)).weight_u.shape == (8,)
    assert spectral_norm(conv.ConvTranspose2d(3, 8, 4)).weight_u.shape == (8,)
    assert spectral_norm(conv.ConvTranspose2d(3, 8, 4)).weight_v.shape == (3 * 16,)


def test_remove_spectral_norm():
    layer = spectral_norm(WeightOnly((4, 3)))
    layer()
    layer.eval()
    normalised = layer().numpy()
    remove_spectral_norm(layer)
    assert isinstance(layer.weight, Parameter)
    assert list(layer.state_dict()) == ["weight"]
    np.testing.assert_array_equal(layer().numpy(), normalised)
    with pytest.raises(ValueError, match="spectral_norm of 'weight' not found in WeightOnly"):
        remove_spectral_norm(layer)


# --- PyTorch CPU ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, transposed", [((6, 4), False), ((4, 3, 3, 3), False),
                                               ((3, 4, 2, 2), True)])
def test_matches_pytorch_after_training_and_eval_forwards(torch, shape, transposed):
    tg.manual_seed(5)
    ours = spectral_norm(WeightOnly(shape, transposed=transposed), n_power_iterations=2)
    weight = ours.weight_orig.numpy()
    if len(shape) == 2:
        theirs = torch.nn.Linear(shape[1], shape[0], dtype=torch.float64)
        x = torch.zeros(1, shape[1], dtype=torch.float64)
    elif transposed:
        theirs = torch.nn.ConvTranspose2d(shape[0], shape[1], shape[2:], dtype=torch.float64)
        x = torch.zeros(1, shape[0], 3, 3, dtype=torch.float64)
    else:
        theirs = torch.nn.Conv2d(shape[1], shape[0], shape[2:], dtype=torch.float64)
        x = torch.zeros(1, shape[1], 3, 3, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(weight))
    theirs = torch.nn.utils.spectral_norm(theirs, n_power_iterations=2)
    with torch.no_grad():  # the same starting vectors
        theirs.weight_u.copy_(torch.tensor(ours.weight_u.numpy()))
        theirs.weight_v.copy_(torch.tensor(ours.weight_v.numpy()))
    for _ in range(3):
        w = ours()
        theirs(x)
        np.testing.assert_allclose(w.numpy(), theirs.weight.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(ours.weight_u.numpy(), theirs.weight_u.numpy(), rtol=1e-10,
                                   atol=1e-12)
    g = np.random.default_rng(0).standard_normal(shape)
    (w * f64(g, False)).sum().backward()
    (theirs.weight * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(ours.weight_orig.grad.numpy(), theirs.weight_orig.grad.numpy(),
                               rtol=1e-9, atol=1e-12)
    ours.eval(), theirs.eval()
    theirs(x)
    np.testing.assert_allclose(ours().numpy(), theirs.weight.detach().numpy(), rtol=1e-10)


# --- errors --------------------------------------------------------------------------------------
def test_errors():
    with pytest.raises(ValueError, match="n_power_iterations=0"):
        spectral_norm(Linear(2, 2), n_power_iterations=0)
    with pytest.raises(ValueError, match=r"Linear has no parameter 'kernel' \(its parameters: "
                                         r"\['weight', 'bias'\]\)"):
        spectral_norm(Linear(2, 2), name="kernel")
    layer = spectral_norm(Linear(2, 2))
    with pytest.raises(RuntimeError, match="two spectral_norm hooks on the same parameter 'weight'"):
        spectral_norm(layer)
    with pytest.raises(ValueError, match=r"dim=4 is out of range for parameter 'weight' of shape "
                                         r"\(2, 2\)"):
        spectral_norm(Linear(2, 2), dim=4)
    w = tg.randn(3, 4)
    with pytest.raises(ValueError, match=r"spectral_normalize: v must have shape \(4,\) for a "
                                         r"weight of shape \(3, 4\) with dim=0, got shape \(3,\)"):
        spectral_normalize(w, tg.randn(3), tg.randn(3))
    with pytest.raises(ValueError, match=r"power_iteration: u must have shape \(3,\) for a weight "
                                         r"matrix of shape \(3, 4\), got shape \(4,\)"):
        power_iteration(w.data, np.ones(4, np.float32), np.ones(4, np.float32))
    with pytest.raises(TypeError, match=r"u \(float64\) and v \(float32\) must have the weight's "
                                        r"dtype float32"):
        spectral_normalize(w, np.ones(3), np.ones(4, np.float32))
