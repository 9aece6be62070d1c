"""The fused softmax cross-entropy (tinygen/ops/softmax_cross_entropy.py), which
``cross_entropy`` takes for class-index targets without weights or smoothing: pinned to
its definition, the unfused graph ``nll_loss(log_softmax(x))``, in float64 (values,
gradients with a random upstream gradient, second derivatives) over hypothesis-drawn
shapes, ignored positions and reductions (the sum and mean made inside the node);
finite differences of both orders; the numba float32 kernels against the float64
oracle; the errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
import tinygen.nn.functional as F
from tinygen.backend.numba_kernels import softmax_cross_entropy as fast
from tinygen.backend.numba_kernels.chunks import PARALLEL_THRESHOLD as ELEMENTWISE_PARALLEL_THRESHOLD
from tinygen.backend.reference import softmax_cross_entropy as ref
from tinygen.testing import check_grads, f64

from .._impls import impl, seeds

IGNORE = 3  # an ignore_index that is also a valid class: ignored, not picked


@st.composite
def problems(draw):
    """(logits (N, K, d...), targets with some positions ignored, reduction)."""
    n = draw(st.integers(1, 3))
    k = draw(st.integers(1, 6))
    trailing = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, k) + trailing) * draw(st.sampled_from([0.5, 3.0, 30.0]))
    target = rng.integers(0, k, (n,) + trailing)
    if draw(st.booleans()):
        target[rng.random(target.shape) < 0.3] = IGNORE
    reduction = draw(st.sampled_from(["none", "sum", "mean"]))
    return x, target, reduction, rng


def _unfused(x, target, reduction):
    return F.nll_loss(tg.log_softmax(x, axis=1), tg.tensor(target), ignore_index=IGNORE,
                      reduction=reduction)


def _fused(x, target, reduction):
    return F.cross_entropy(x, tg.tensor(target), ignore_index=IGNORE, reduction=reduction)


def _uses_the_fused_op(loss):
    seen, stack = set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen or not hasattr(node, "next_edges"):
            continue
        seen.add(id(node))
        if node.name == "SoftmaxCrossEntropy":
            return True
        stack.extend(edge[0] for edge in node.next_edges if edge is not None)
    return False


@settings(max_examples=40, deadline=None)
@given(problems())
def test_fused_equals_unfused_in_float64_values_gradients_and_second_derivatives(problem):
    x_np, target, reduction, rng = problem
    x = f64(x_np)
    fused, unfused = _fused(x, target, reduction), _unfused(x, target, reduction)
    assert _uses_the_fused_op(fused) and not _uses_the_fused_op(unfused)
    if reduction != "none":  # the sum or mean is made in the node itself
        assert fused.grad_fn.name == "SoftmaxCrossEntropy" and fused.shape == ()
    np.testing.assert_allclose(fused.numpy(), unfused.numpy(), rtol=1e-12, atol=1e-12)
    g = f64(rng.standard_normal(fused.shape), requires_grad=True)
    if reduction == "mean" and np.all(target == IGNORE):
        # nothing to average: the loss is NaN; the fused gradient is 0 (as PyTorch's),
        # the unfused one NaN (0 * NaN through the weights)
        assert np.isnan(fused.item())
        assert np.all(tg.grad(fused, [x], g)[0].numpy() == 0)
        return
    # first order without a graph (the fused kernel) and with one (tinygen ops)
    (d_fused,) = tg.grad(fused, [x], g, retain_graph=True)
    (d_graph,) = tg.grad(fused, [x], g, create_graph=True)
    (d_unfused,) = tg.grad(unfused, [x], g, create_graph=True)
    for d in (d_fused, d_graph):
        np.testing.assert_allclose(d.numpy(), d_unfused.numpy(), rtol=1e-10, atol=1e-12)
    # second order: the gradient of <h, dL/dx> with respect to x and to g
    h = f64(rng.standard_normal(x_np.shape), requires_grad=False)
    second = tg.grad((d_graph * h).sum(), [x, g])
    expected = tg.grad((d_unfused * h).sum(), [x, g])
    for a, b in zip(second, expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(problems())
def test_gradcheck_and_gradgradcheck(problem):
    x_np, target, reduction, _ = problem
    x = f64(np.clip(x_np, -20, 20))
    for name in ("reference", "numba"):
        with impl(name):
            check_grads(lambda t: _fused(t, target, reduction), x)


def test_unbatched_input_and_the_default_ignore_index():
    x = f64(np.random.default_rng(0).standard_normal(5))
    for target in (np.array(2), np.array(-100)):
        fused = F.cross_entropy(x, tg.tensor(target), reduction="sum")
        unfused = F.nll_loss(tg.log_softmax(x, axis=0), tg.tensor(target), reduction="sum")
        np.testing.assert_allclose(fused.numpy(), unfused.numpy(), rtol=1e-12)
        np.testing.assert_allclose(tg.grad(fused, [x])[0].numpy(),
                                   tg.grad(unfused, [x])[0].numpy(), rtol=1e-12, atol=1e-15)
    every = F.cross_entropy(f64(np.zeros((2, 3))), tg.tensor(np.full(2, -100)))
    assert np.isnan(every.item())  # nothing to average, as nll_loss and PyTorch


@pytest.mark.parametrize("shape", [(3, 7), (2, 5, 4), (4, 256, 1, 5, 6), (3, 11, 9000)])
@pytest.mark.parametrize("ignored", [False, True])
def test_numba_float32_kernels_match_the_float64_oracle(shape, ignored):
    rng = np.random.default_rng(sum(shape))
    n, k, s = shape[0], shape[1], int(np.prod(shape[2:]))
    x3 = (rng.standard_normal((n, k, s)) * 4).astype(np.float32)
    target = rng.integers(0, k, (n, s))
    if ignored:
        target[rng.random(target.shape) < 0.3] = -1
    g = rng.standard_normal((n, s)).astype(np.float32)
    loss, lse = fast.cross_entropy_forward(x3, target)
    loss64, lse64 = ref.cross_entropy_forward(x3.astype(np.float64), target)
    assert loss.dtype == lse.dtype == np.float32
    np.testing.assert_allclose(lse, lse64, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(loss, loss64, rtol=2e-5, atol=2e-5)
    assert np.all(loss[target < 0] == 0)
    dx = fast.cross_entropy_backward(g, x3, target, lse)
    dx64 = ref.cross_entropy_backward(g.astype(np.float64), x3.astype(np.float64), target,
                                      lse64)
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, dx64, rtol=1e-5, atol=2e-6)
    assert np.all(dx.transpose(0, 2, 1)[target < 0] == 0)


def test_the_large_shapes_take_the_parallel_kernels():
    # the last parametrised shape above is past the threshold, the others below it
    assert 3 * 11 * 9000 >= ELEMENTWISE_PARALLEL_THRESHOLD > 4 * 256 * 30


def test_float32_op_with_both_kernels():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 16, 3, 5)).astype(np.float32) * 3
    target = rng.integers(0, 16, (4, 3, 5))
    results = []
    for name in ("reference", "numba"):
        with impl(name):
            t = tg.tensor(x, requires_grad=True)
            loss = F.cross_entropy(t, tg.tensor(target))
            loss.backward()
            results.append((loss.numpy(), t.grad.numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_matches_pytorch(torch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 7, 4)) * 3
    target = rng.integers(0, 7, (3, 4))
    target[0, 1] = 5
    t = f64(x)
    loss = F.cross_entropy(t, tg.tensor(target), ignore_index=5)
    loss.backward()
    xt = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(xt, torch.tensor(target), ignore_index=5)
    expected.backward()
    np.testing.assert_allclose(loss.numpy(), expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(t.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_errors_name_cross_entropy_and_the_problem():
    x = tg.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"cross_entropy: target shape \(2, 3\) does not match"):
        F.cross_entropy(x, tg.tensor(np.zeros((2, 3), np.int64)))
    with pytest.raises(IndexError, match="cross_entropy: target 3 is out of range for 3 classes"):
        F.cross_entropy(x, tg.tensor(np.full((2, 4), 3)))
    # an ignored position may hold anything; the others are checked beside it
    mixed = np.array([[0, -100, 2, 1], [1, 2, -100, 0]])
    F.cross_entropy(x, tg.tensor(mixed))
    mixed[1, 3] = -5
    with pytest.raises(IndexError, match="cross_entropy: target -5 is out of range for 3 classes"):
        F.cross_entropy(x, tg.tensor(mixed))
    with pytest.raises(TypeError, match="cross_entropy: target must hold integer class indices"):
        F.cross_entropy(x, np.zeros((2, 4), np.float32))
