"""The linear layer's one-node op (ops/linalg.py ``Linear``):
pinned to the composition they replace, ``x @ w.T + b`` of MatMul, transpose and a
broadcast add, in float64 (values, gradients with a random upstream gradient,
second derivatives) over hypothesis-drawn shapes; finite differences of both orders;
the weight's gradient in the weight's own layout."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
import tinygen.nn.functional as F
from tinygen.ops.linalg import linear
from tinygen.testing import check_grads, f64

from ._impls import seeds


def _composed(x, w, b):
    out = tg.matmul(x, tg.transpose(w, 0, 1))
    return out if b is None else out + b


def _nodes(t):
    seen, stack, names = set(), [t.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen or not hasattr(node, "next_edges"):
            continue
        seen.add(id(node))
        names.append(node.name)
        stack.extend(e[0] for e in node.next_edges if e is not None)
    return names


@st.composite
def problems(draw):
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    n_in, n_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(seeds))
    with_bias = draw(st.booleans())
    which = draw(st.sampled_from(["all", "x", "w", "b"]))
    x = f64(rng.standard_normal(batch + (n_in,)), which in ("all", "x"))
    w = f64(rng.standard_normal((n_out, n_in)), which in ("all", "w"))
    b = f64(rng.standard_normal(n_out), which in ("all", "b")) if with_bias else None
    if not any(t is not None and t.requires_grad for t in (x, w, b)):
        x.requires_grad = True
    return x, w, b, rng


@settings(max_examples=40, deadline=None)
@given(problems())
def test_linear_equals_its_composition_in_float64(problem):
    x, w, b, rng = problem
    fused, composed = linear(x, w, b), _composed(x, w, b)
    assert _nodes(fused) == ["Linear"]
    np.testing.assert_allclose(fused.numpy(), composed.numpy(), rtol=1e-12, atol=1e-12)
    wrt = [t for t in (x, w, b) if t is not None and t.requires_grad]
    g = f64(rng.standard_normal(fused.shape))
    raw = tg.grad(fused, wrt, g, retain_graph=True)              # arrays, no graph
    graph = tg.grad(fused, wrt, g, create_graph=True)            # tinygen ops
    expected = tg.grad(composed, wrt, g, create_graph=True)
    for a, c, e, t in zip(raw, graph, expected, wrt):
        assert a.shape == t.shape
        np.testing.assert_allclose(a.numpy(), e.numpy(), rtol=1e-12, atol=1e-12)
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


@settings(max_examples=10, deadline=None)
@given(problems())
def test_linear_gradcheck_and_gradgradcheck(problem):
    x, w, b, _ = problem
    inputs = [t for t in (x, w, b) if t is not None]
    if b is None:
        check_grads(lambda x, w: linear(x, w), inputs)
    else:
        check_grads(lambda x, w, b: linear(x, w, b), inputs)


def test_the_weight_gradient_is_c_contiguous_in_the_weights_layout():
    layer = tg.nn.Linear(7, 5)
    layer(tg.randn(3, 7)).sum().backward()
    assert layer.weight.grad.shape == (5, 7)
    assert layer.weight.grad.data.flags.c_contiguous


def test_linear_errors_name_the_problem():
    with pytest.raises(TypeError, match="linear: dtype mismatch"):
        F.linear(tg.randn(2, 3).double(), tg.randn(4, 3))
    with pytest.raises(ValueError, match="linear: input shape"):
        F.linear(tg.randn(2, 4), tg.randn(4, 3))
