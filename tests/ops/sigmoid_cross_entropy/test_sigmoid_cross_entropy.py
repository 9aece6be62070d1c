"""The fused sigmoid cross-entropy (tinygen/ops/sigmoid_cross_entropy.py), which
``binary_cross_entropy_with_logits`` takes for a target that needs no gradient and no
``pos_weight``: pinned to its definition, the composition ``(1 - t) x + softplus(-x)``,
in float64 (values, gradients with a random upstream gradient, second derivatives) over
hypothesis-drawn shapes, logit scales, binary and soft targets, weights and reductions;
finite differences of both orders on both kernels; the numba float32 kernels against
the float64 oracle, extreme logits and NaN; which inputs take the composed path."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
import tinygen.nn.functional as F
from tinygen.autograd.memory import graph_nodes
from tinygen.backend.numba_kernels import sigmoid_cross_entropy as fast
from tinygen.backend.numba_kernels.chunks import SHARE_THRESHOLD
from tinygen.backend.reference import sigmoid_cross_entropy as ref
from tinygen.testing import check_grads, f64

from .._impls import at_one_and_two_threads, impl, seeds


ATOL = 5e-9     # see test_fused_equals_composed_...


@st.composite
def problems(draw):
    """(logits, target, weight or None, reduction, rng)."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    rng = np.random.default_rng(draw(seeds))
    x = rng.standard_normal(shape) * draw(st.sampled_from([0.5, 3.0, 30.0]))
    if draw(st.booleans()):
        target = (rng.random(shape) < 0.5).astype(np.float64)     # binary pixels
    else:
        target = rng.random(shape)                                # soft targets
    weight = rng.random(shape[-1:]) + 0.5 if draw(st.booleans()) else None
    return x, target, weight, draw(st.sampled_from(["none", "sum", "mean"])), rng


def _composed(x, target, weight, reduction):
    """The definition the fused node replaces (binary_cross_entropy_with_logits before)."""
    loss = (1.0 - target) * x + tg.softplus(-x)
    if weight is not None:
        loss = loss * f64(weight, requires_grad=False)
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


def _fused(x, target, weight, reduction):
    w = None if weight is None else f64(weight, requires_grad=False)
    return F.binary_cross_entropy_with_logits(x, target, weight=w, reduction=reduction)


def _ops(loss):
    return {node.name for node in graph_nodes(loss)}


@settings(max_examples=40, deadline=None)
@given(problems())
def test_fused_equals_composed_in_float64_values_gradients_and_second_derivatives(problem):
    x_np, target_np, weight, reduction, rng = problem
    x, target = f64(x_np), f64(target_np, requires_grad=False)
    fused, composed = _fused(x, target, weight, reduction), _composed(x, target, weight, reduction)
    assert "SigmoidCrossEntropy" in _ops(fused) and "Softplus" not in _ops(fused)
    # (the composition's softplus is linear past 20, as PyTorch's: it is off by up to
    # log1p(exp(-20)) ~ 2e-9 there, and its derivatives by as much; the fused node is not)
    np.testing.assert_allclose(fused.numpy(), composed.numpy(), rtol=1e-12, atol=ATOL)
    g = f64(rng.standard_normal(fused.shape))
    # first order without a graph (the fused kernel) and with one (tinygen ops)
    (d_fused,) = tg.grad(fused, [x], g, retain_graph=True)
    (d_graph,) = tg.grad(fused, [x], g, create_graph=True)
    (d_composed,) = tg.grad(composed, [x], g, create_graph=True)
    for d in (d_fused, d_graph):
        np.testing.assert_allclose(d.numpy(), d_composed.numpy(), rtol=1e-10, atol=ATOL)
    # second order: the gradient of <h, dL/dx> with respect to x and to g
    h = f64(rng.standard_normal(x_np.shape), requires_grad=False)
    second = tg.grad((d_graph * h).sum(), [x, g])
    expected = tg.grad((d_composed * h).sum(), [x, g])
    for a, b in zip(second, expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=10 * ATOL)


@settings(max_examples=15, deadline=None)
@given(problems())
def test_gradcheck_and_gradgradcheck(problem):
    x_np, target_np, weight, reduction, _ = problem
    x = f64(np.clip(x_np, -15, 15))
    for name in ("reference", "numba"):
        with impl(name):
            check_grads(lambda t: _fused(t, f64(target_np, requires_grad=False), weight,
                                         reduction), [x])


@pytest.mark.parametrize("size", [1, 37, 4096, 100_352])
@pytest.mark.parametrize("soft", [False, True])
def test_numba_float32_kernels_match_the_float64_oracle(size, soft):
    rng = np.random.default_rng(size)
    x = (rng.standard_normal(size) * 6).astype(np.float32)
    x[:min(size, 4)] = np.array([0.0, -0.0, 90.0, -90.0], np.float32)[:min(size, 4)]
    t = (rng.random(size) if soft else rng.random(size) < 0.5).astype(np.float32)
    g = rng.standard_normal(size).astype(np.float32)
    x64, t64, g64 = x.astype(np.float64), t.astype(np.float64), g.astype(np.float64)

    def run():
        return fast.forward(x, t), fast.backward(g, x, t)

    (loss, dx), (loss2, dx2) = at_one_and_two_threads(run)
    assert loss.dtype == dx.dtype == np.float32
    np.testing.assert_array_equal(loss, loss2)          # the thread count changes no bit
    np.testing.assert_array_equal(dx, dx2)
    np.testing.assert_allclose(loss, ref.forward(x64, t64), rtol=4e-7, atol=1e-7)
    # (s - t cancels where sigmoid(x) is near t: a few float32 ulp of 1, times |g| <~ 4)
    np.testing.assert_allclose(dx, ref.backward(g64, x64, t64), rtol=1e-6, atol=1e-6)


def test_the_largest_size_above_is_shared_out():
    assert 2 * 100_352 >= SHARE_THRESHOLD > 2 * 4096


@pytest.mark.parametrize("name", ["reference", "numba"])
def test_extreme_logits_and_nan(name):
    x = np.array([-1e4, -100.0, -30.0, 30.0, 100.0, 1e4, np.nan], np.float32)
    t = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0], np.float32)
    exact = np.array([1e4, 100.0, 9.357623e-14, 9.357623e-14, 100.0, 1e4])
    with impl(name):
        xt = tg.tensor(x, requires_grad=True)
        loss = F.binary_cross_entropy_with_logits(xt, tg.tensor(t), reduction="none")
        loss.sum().backward()
    np.testing.assert_allclose(loss.numpy()[:6], exact, rtol=1e-6)
    assert np.isnan(loss.numpy()[6]) and np.isnan(xt.grad.numpy()[6])
    # sigmoid(x) - t: exp(-30) at x = -30 (t = 0), -exp(-30) at 30 (t = 1; 0 in float32)
    np.testing.assert_allclose(xt.grad.numpy()[:6], [-1.0, -1.0, 9.357623e-14, -9.357623e-14,
                                                     1.0, 1.0], rtol=1e-6, atol=1e-13)


def test_which_inputs_take_the_composed_path():
    x = f64(np.linspace(-2, 2, 6).reshape(2, 3))
    target = f64(np.full((2, 3), 0.25))                 # requires_grad: its gradient is -x
    loss = F.binary_cross_entropy_with_logits(x, target)
    assert "SigmoidCrossEntropy" not in _ops(loss)
    check_grads(lambda a, b: F.binary_cross_entropy_with_logits(a, b), [x, target])
    plain = F.binary_cross_entropy_with_logits(x, target.detach(),
                                               pos_weight=f64([1.0, 2.0, 3.0], False))
    assert "SigmoidCrossEntropy" not in _ops(plain)
    # integer targets are cast to the logits' dtype, as the composition's ops do
    ints = F.binary_cross_entropy_with_logits(x, tg.tensor(np.array([[0, 1, 1], [1, 0, 0]])))
    assert "SigmoidCrossEntropy" in _ops(ints) and ints.dtype == np.float64


def test_errors_name_the_op_and_the_problem():
    x = tg.randn(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: input shape "
                                         r"\(2, 3\) and target shape \(3,\) differ"):
        F.binary_cross_entropy_with_logits(x, tg.zeros(3))
    with pytest.raises(TypeError, match=r"binary_cross_entropy_with_logits: dtype mismatch, "
                                        r"float32 .* and float64"):
        F.binary_cross_entropy_with_logits(x, tg.zeros(2, 3, dtype=tg.float64))


def test_matches_pytorch(torch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 1, 5, 5)) * 4
    t = (rng.random((4, 1, 5, 5)) < 0.4).astype(np.float64)
    xs = f64(x)
    loss = F.binary_cross_entropy_with_logits(xs, f64(t, requires_grad=False), reduction="sum")
    loss.backward()
    xt = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.tensor(t), reduction="sum")
    expected.backward()
    np.testing.assert_allclose(loss.numpy(), expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-15)
