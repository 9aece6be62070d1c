"""Reduction family: sum mean var std max min logsumexp norm over hypothesis-drawn
axes (None, an int, negative ints, tuples) with and without keepdims; softmax and
log_softmax; argmax/argmin.
"""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import tinygen as tg
from tinygen.testing import assert_close, check_grads, f64, strategies as tst

from ._helpers import np_special, distinct_tensors, f32, small_shapes


def _count(shape, axis):
    if axis is None:
        return int(np.prod(shape, dtype=np.int64))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def _norm(x, p, axis, keepdims):
    a = np.abs(x)
    if p == np.inf:
        return np.max(a, axis=axis, keepdims=keepdims)
    return np.sum(a ** p, axis=axis, keepdims=keepdims) ** (1.0 / p)


# name: (tinygen fn(x, axis, keepdims), numpy reference, input strategy, minimum count)
# Inputs of max/min/std/norm(inf) have distinct values (no ties, no zero variance);
# those of the other norms stay away from 0 (|x| and the p-norm are kinked there).
REDUCTIONS = {
    "sum": (lambda x, a, k: x.sum(a, k), lambda x, a, k: np.sum(x, a, keepdims=k), "any", 1),
    "mean": (lambda x, a, k: x.mean(a, k), lambda x, a, k: np.mean(x, a, keepdims=k), "any", 1),
    "var": (lambda x, a, k: x.var(a, k), lambda x, a, k: np.var(x, a, keepdims=k, ddof=1),
            "any", 2),
    "var(correction=0)": (lambda x, a, k: tg.var(x, a, k, correction=0),
                          lambda x, a, k: np.var(x, a, keepdims=k), "any", 1),
    "std": (lambda x, a, k: x.std(a, k), lambda x, a, k: np.std(x, a, keepdims=k, ddof=1),
            "distinct", 2),
    "std(correction=0)": (lambda x, a, k: tg.std(x, a, k, correction=0),
                          lambda x, a, k: np.std(x, a, keepdims=k), "distinct", 2),
    "max": (lambda x, a, k: x.max(a, k), lambda x, a, k: np.max(x, a, keepdims=k), "distinct", 1),
    "min": (lambda x, a, k: tg.min(x, a, k), lambda x, a, k: np.min(x, a, keepdims=k),
            "distinct", 1),
    "logsumexp": (lambda x, a, k: x.logsumexp(a, k),
                  # (the oracle's keepdims result for a 0-d input is reshaped to numpy's ())
                  lambda x, a, k: np.reshape(np_special.logsumexp(x, axis=a, keepdims=k),
                                             np.sum(x, axis=a, keepdims=k).shape), "any", 1),
    "norm(2)": (lambda x, a, k: x.norm(2, a, k), lambda x, a, k: _norm(x, 2, a, k), "nonzero", 1),
    "norm(1)": (lambda x, a, k: tg.norm(x, 1, a, k), lambda x, a, k: _norm(x, 1, a, k),
                "nonzero", 1),
    "norm(3)": (lambda x, a, k: tg.norm(x, 3, a, k), lambda x, a, k: _norm(x, 3, a, k),
                "nonzero", 1),
    "norm(inf)": (lambda x, a, k: tg.norm(x, float("inf"), a, k),
                  lambda x, a, k: _norm(x, np.inf, a, k), "distinct", 1),
}


def _draw_input(data, kind):
    shape = data.draw(small_shapes())
    if kind == "distinct":
        return data.draw(distinct_tensors(shape))
    if kind == "nonzero":
        return data.draw(tst.tensors(shape, requires_grad=True, avoid=(0.0,), margin=0.2))
    return data.draw(tst.tensors(shape, requires_grad=True))


@pytest.mark.parametrize("name", list(REDUCTIONS))
@given(data=st.data())
def test_reduction_over_axes(name, data):
    fn, ref, kind, min_count = REDUCTIONS[name]
    x = _draw_input(data, kind)
    axis = data.draw(tst.axes(x.ndim), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    assume(_count(x.shape, axis) >= min_count)
    out = fn(x, axis, keepdims)
    assert_close(out, ref(x.numpy(), axis, keepdims))
    check_grads(lambda t: fn(t, axis, keepdims), [x])


@pytest.mark.parametrize("name, reduce", [("max", np.max), ("min", np.min)])
def test_max_min_split_ties_evenly(name, reduce):
    # Like torch.amax/amin: tied extremes share the gradient equally.
    sign = 1.0 if name == "max" else -1.0
    x = f64(sign * np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]]))
    getattr(x, name)(axis=1).sum().backward()
    assert_close(x.grad, [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])
    y = f64(np.full((2, 2), 7.0))
    (g,) = tg.grad(getattr(y, name)(), y)
    assert_close(g, np.full((2, 2), 0.25))
    assert_close(getattr(tg, name)(x, (0, 1)), reduce(x.numpy()))


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log")  # log(0) = -inf is meant
def test_logsumexp_is_stable_for_large_and_infinite_inputs():
    x = f64([[1000.0, 1000.0], [-np.inf, -np.inf], [-1000.0, 0.0]])
    out = x.logsumexp(axis=1).numpy()
    np.testing.assert_allclose(out, [1000.0 + np.log(2.0), -np.inf, 0.0], rtol=1e-12)
    assert not np.isnan(out).any()


def test_sum_and_mean_of_zero_dim_tensors_accept_axis_0_and_minus_1():
    x = f64(2.5)
    for axis in (None, 0, -1):
        assert_close(x.sum(axis), 2.5)
        assert_close(x.mean(axis, keepdims=True), 2.5)


def test_norm_at_the_origin_has_zero_gradient():
    x = f64(np.zeros((2, 3)))
    (g,) = tg.grad(x.norm(), x)
    assert_close(g, np.zeros((2, 3)))


# --- softmax / log_softmax ------------------------------------------------------------------------
@st.composite
def _tensor_and_axis(draw):
    x = draw(tst.tensors(small_shapes(min_dims=1), requires_grad=True))
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    return x, axis


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(case=_tensor_and_axis())
def test_softmax_and_log_softmax(name, case):
    x, axis = case
    expected = getattr(np_special, name)(x.numpy(), axis=axis)
    out = getattr(x, name)(axis)
    assert_close(out, expected)
    assert_close(getattr(tg, name)(x, axis=axis), expected)
    if name == "softmax":
        assert_close(out.numpy().sum(axis=axis), np.ones(np.delete(x.shape, axis % x.ndim)))
    check_grads(lambda t: getattr(tg, name)(t, axis), [x])


def test_softmax_is_stable_and_defaults_to_the_last_axis():
    x = f64([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    assert_close(tg.softmax(x), np_special.softmax(x.numpy(), axis=-1))
    assert_close(tg.log_softmax(x), np_special.log_softmax(x.numpy(), axis=-1))
    assert_close(tg.softmax(f64(0.3)), 1.0)  # a 0-d tensor: one class


# --- argmax / argmin (not differentiable) ------------------------------------------------------------
@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(data=st.data())
def test_argmax_argmin(name, data):
    x = data.draw(distinct_tensors(small_shapes(min_dims=1)))
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    out = getattr(x, name)(axis)
    np.testing.assert_array_equal(out.numpy(), getattr(np, name)(x.numpy(), axis=axis))
    assert out.dtype.kind == "i" and not out.requires_grad


# --- float32 stays float32 -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(REDUCTIONS) + ["softmax", "log_softmax"])
def test_float32_reductions_stay_float32(name):
    x64 = np.array([[0.3, -1.7, 2.2], [0.6, 1.1, -0.4]])
    x = f32(x64)
    if name in REDUCTIONS:
        fn, ref, _, _ = REDUCTIONS[name]
        out, expected = fn(x, 1, False), ref(x64, 1, False)
    else:
        out = getattr(tg, name)(x, 1)
        expected = getattr(np_special, name)(x64, axis=1)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    (g,) = tg.grad(out.sum(), x)
    assert g.dtype == np.float32
