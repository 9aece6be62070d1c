"""MatMul with transposed operands (ops/linalg.py ``MatMul(transpose_a, transpose_b)``),
the node the backwards of MatMul and Linear make for ``g @ b^T`` and ``a^T @ g``:
pinned to the composition it replaces, ``matmul(transpose(a), transpose(b))`` of
Permute and MatMul nodes, in float64 (values, first derivatives with a random upstream
gradient, raw and with a graph, and second derivatives) over hypothesis-drawn shapes
with broadcast batch dimensions, for each of the four flag pairs; finite differences of
both orders."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
from tinygen.ops.linalg import MatMul
from tinygen.testing import check_grads, f64, strategies as tst

from ._impls import seeds

FLAGS = [(False, False), (True, False), (False, True), (True, True)]


def _fused(a, b, ta, tb):
    return MatMul.apply(a, b, transpose_a=ta, transpose_b=tb)


def _composed(a, b, ta, tb):
    return tg.matmul(tg.transpose(a, -1, -2) if ta else a, tg.transpose(b, -1, -2) if tb else b)


@st.composite
def problems(draw):
    n, k, m = (draw(st.integers(1, 4), label=label) for label in "nkm")
    batch_a, batch_b = draw(tst.broadcastable_shapes(min_dims=0, max_dims=2, max_side=3))
    ta, tb = draw(st.sampled_from(FLAGS))
    rng = np.random.default_rng(draw(seeds))
    which = draw(st.sampled_from(["both", "a", "b"]))
    a = f64(rng.standard_normal(batch_a + ((k, n) if ta else (n, k))), which != "b")
    b = f64(rng.standard_normal(batch_b + ((m, k) if tb else (k, m))), which != "a")
    return a, b, ta, tb, rng


@settings(max_examples=60, deadline=None)
@given(problems())
def test_transposed_matmul_equals_its_composition_in_float64(problem):
    a, b, ta, tb, rng = problem
    fused, composed = _fused(a, b, ta, tb), _composed(a, b, ta, tb)
    np.testing.assert_allclose(fused.numpy(), composed.numpy(), rtol=1e-12, atol=1e-12)
    wrt = [t for t in (a, b) if t.requires_grad]
    g = f64(rng.standard_normal(fused.shape))
    raw = tg.grad(fused, wrt, g, retain_graph=True)              # arrays, no graph
    graph = tg.grad(fused, wrt, g, create_graph=True)            # tinygen ops
    expected = tg.grad(composed, wrt, g, create_graph=True)
    for r, c, e, t in zip(raw, graph, expected, wrt):
        assert r.shape == t.shape
        np.testing.assert_allclose(r.numpy(), e.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c.numpy(), e.numpy(), rtol=1e-12, atol=1e-12)
    # second order: d<h, dL/d(inputs)>/d(inputs, g)
    hs = [f64(rng.standard_normal(t.shape), False) for t in wrt]

    def contract(grads):
        return sum(((d * h).sum() for d, h in zip(grads, hs)), tg.tensor(0.0, dtype=np.float64))

    targets = wrt + [g]
    second = tg.grad(contract(graph), targets, allow_unused=True)
    reference = tg.grad(contract(expected), targets, allow_unused=True)
    for s, r, t in zip(second, reference, targets):
        s = np.zeros(t.shape) if s is None else s.numpy()
        r = np.zeros(t.shape) if r is None else r.numpy()
        np.testing.assert_allclose(s, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ta, tb", FLAGS)
def test_transposed_matmul_gradcheck_and_gradgradcheck(ta, tb):
    rng = np.random.default_rng(0)
    a = f64(rng.standard_normal((2, 1) + ((4, 3) if ta else (3, 4))))
    b = f64(rng.standard_normal((5,) + ((2, 4) if tb else (4, 2))))
    check_grads(lambda a, b: _fused(a, b, ta, tb), [a, b])


def test_matmul_backward_makes_no_permute_nodes():
    a, b = f64(np.ones((3, 4))), f64(np.ones((4, 2)))
    ga, gb = tg.grad(a @ b, [a, b], f64(np.ones((3, 2)), False), create_graph=True)
    for grad in (ga, gb):
        assert grad.grad_fn.name == "MatMul"
        assert all(e is None or getattr(e[0], "name", "leaf") != "Permute"
                   for e in grad.grad_fn.next_edges)
