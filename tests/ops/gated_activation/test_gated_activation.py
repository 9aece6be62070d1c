"""gated_activation: finite differences (first and second order) over hypothesis-drawn
shapes and axes, reference vs numba kernels, PyTorch CPU as an outside oracle, the
module, the errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygen as tg
from tinygen.backend.numba_kernels import gated_activation as fast
from tinygen.backend.reference import gated_activation as ref
from tinygen.nn.pooling import GatedActivation
from tinygen.ops.gated_activation import gated_activation
from tinygen.testing import check_grads, f64

from .._impls import dtypes, impl, seeds, tensor, tolerance


@given(st.lists(st.integers(1, 3), min_size=1, max_size=4), st.data(), seeds)
def test_gated_activation_gradcheck_and_gradgradcheck(sides, data, seed):
    axis = data.draw(st.integers(-len(sides), len(sides) - 1))
    shape = list(sides)
    shape[axis] *= 2
    x = f64(np.random.default_rng(seed).standard_normal(shape) * 2)
    with impl("reference"):
        check_grads(lambda t: gated_activation(t, axis=axis), x)


def test_the_fused_gate_backward_matches_the_differentiable_one():
    x = f64(np.random.default_rng(0).standard_normal((2, 6, 3)))
    y = gated_activation(x)
    g = f64(np.random.default_rng(1).standard_normal(y.shape), False)
    (fused,) = tg.grad(y, [x], g, retain_graph=True)
    (graph,) = tg.grad(y, [x], g, create_graph=True)
    np.testing.assert_allclose(fused.numpy(), graph.numpy(), rtol=1e-12, atol=1e-14)


def test_gated_activation_matches_its_definition(torch):
    x = np.random.default_rng(0).standard_normal((2, 8, 3))
    a, b = torch.tensor(x).chunk(2, dim=1)
    expected = torch.tanh(a) * torch.sigmoid(b)
    np.testing.assert_allclose(gated_activation(f64(x)).numpy(), expected.numpy(), rtol=1e-12)


@given(st.integers(1, 5), st.integers(1, 9), dtypes, seeds)
def test_numba_gate_kernels_match_reference(p, q, dtype, seed):
    rng = np.random.default_rng(seed)
    x3 = (rng.standard_normal((p, 2, q)) * 4).astype(dtype)
    g = rng.standard_normal((p, q)).astype(dtype)
    np.testing.assert_allclose(fast.gated_forward(x3), ref.gated_forward(x3), **tolerance(dtype))
    np.testing.assert_allclose(fast.gated_backward(g, x3), ref.gated_backward(g, x3),
                               **tolerance(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_op_gives_the_same_results_with_both_kernels(dtype):
    x = np.random.default_rng(5).standard_normal((2, 4, 7, 6)).astype(dtype)
    results = []
    for name in ("reference", "numba"):
        with impl(name):
            t = tensor(x, dtype, True)
            y = gated_activation(t, 1)
            (y * y).sum().backward()
            results.append((y.numpy(), t.grad.numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **tolerance(dtype))


def test_module():
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6))
    assert GatedActivation()(tg.tensor(x)).shape == (2, 2, 6, 6)


def test_errors_name_the_axis_and_the_shape():
    with pytest.raises(ValueError, match=r"gated_activation: the size of axis 1 must be even.*"
                                         r"\(1, 3, 2\)"):
        gated_activation(tg.randn(1, 3, 2))
    with pytest.raises(ValueError, match=r"axis 3 is out of range.*\(1, 2, 2\)"):
        gated_activation(tg.randn(1, 2, 2), axis=3)
