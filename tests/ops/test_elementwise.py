"""Elementwise family: arithmetic (with broadcasting), unary math, activations,
where/maximum/minimum, comparisons, dropout.

Every differentiable op is checked three ways on hypothesis-drawn float64 inputs:
forward values against numpy, gradcheck (first derivatives) and gradgradcheck
(the backward's own backward).  Kinks and domain edges are kept out of the draws.
"""
import operator

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg
from tinygen.testing import assert_close, check_grads, f64, strategies as tst

from ._helpers import f32, quantized, small_shapes


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x, beta=1.0, threshold=20.0):
    return np.where(x * beta > threshold, x, np.log1p(np.exp(beta * x)) / beta)


def _elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(x))


# --- binary arithmetic with broadcasting ----------------------------------------------------
# name: (op, numpy reference, draw kwargs for a, draw kwargs for b)
BINARY = {
    "add": (tg.add, np.add, {}, {}),
    "sub": (tg.sub, np.subtract, {}, {}),
    "mul": (tg.mul, np.multiply, {}, {}),
    "div": (tg.div, np.divide, {}, dict(avoid=(0.0,), margin=0.3)),
    # a tensor exponent needs a positive base (its gradient uses log a)
    "pow": (tg.pow, np.power, dict(min_value=0.2, max_value=3.0),
            dict(min_value=-2.0, max_value=2.0)),
}
OPERATORS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
             "div": operator.truediv, "pow": operator.pow}


@pytest.mark.parametrize("name", list(BINARY))
@given(data=st.data())
def test_binary_op_with_broadcasting(name, data):
    fn, ref, kwargs_a, kwargs_b = BINARY[name]
    shape_a, shape_b = data.draw(tst.broadcastable_shapes(max_side=3))
    a = data.draw(tst.tensors(shape_a, requires_grad=True, **kwargs_a))
    b = data.draw(tst.tensors(shape_b, requires_grad=True, **kwargs_b))
    expected = ref(a.numpy(), b.numpy())
    assert_close(fn(a, b), expected)
    assert_close(OPERATORS[name](a, b), expected)  # the Tensor operator is the same op
    check_grads(fn, [a, b])


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_op_gradient_is_summed_over_broadcast_dims(name):
    # (3, 1) against (1, 4): each input's gradient is a sum over the other's axis.
    fn, _, _, _ = BINARY[name]
    rng = np.random.default_rng(0)
    a = f64(rng.uniform(0.5, 2.0, (3, 1)))
    b = f64(rng.uniform(0.5, 2.0, (1, 4)))
    fn(a, b).sum().backward()
    an, bn = a.numpy(), b.numpy()
    d_a, d_b = {
        "add": (np.ones((3, 4)), np.ones((3, 4))),
        "sub": (np.ones((3, 4)), -np.ones((3, 4))),
        "mul": (np.broadcast_to(bn, (3, 4)), np.broadcast_to(an, (3, 4))),
        "div": (np.broadcast_to(1 / bn, (3, 4)), -an / bn ** 2),
        "pow": (bn * an ** (bn - 1), an ** bn * np.log(an)),
    }[name]
    assert_close(a.grad, d_a.sum(axis=1, keepdims=True))
    assert_close(b.grad, d_b.sum(axis=0, keepdims=True))


# --- Python-scalar operands (reflected operators, constant exponents) -------------------------
# name: (fn, numpy reference, draw kwargs)
SCALAR_OPS = {
    "x + c": (lambda x: x + 1.5, lambda x: x + 1.5, {}),
    "c + x": (lambda x: 1.5 + x, lambda x: 1.5 + x, {}),
    "x - c": (lambda x: x - 1.5, lambda x: x - 1.5, {}),
    "c - x": (lambda x: 1.5 - x, lambda x: 1.5 - x, {}),
    "x * c": (lambda x: x * -2.5, lambda x: x * -2.5, {}),
    "c * x": (lambda x: -2.5 * x, lambda x: -2.5 * x, {}),
    "np scalar * x": (lambda x: np.float64(3.0) * x, lambda x: 3.0 * x, {}),
    "x / c": (lambda x: x / 4.0, lambda x: x / 4.0, {}),
    "c / x": (lambda x: 2.0 / x, lambda x: 2.0 / x, dict(avoid=(0.0,), margin=0.3)),
    "c ** x": (lambda x: 2.0 ** x, lambda x: 2.0 ** x, {}),
    "x ** 0": (lambda x: x ** 0, lambda x: x ** 0, {}),
    "x ** 1": (lambda x: x ** 1, lambda x: x ** 1, {}),
    "x ** 2": (lambda x: x ** 2, lambda x: x ** 2, {}),
    "x ** 3 (negative base)": (lambda x: x ** 3, lambda x: x ** 3, {}),
    "x ** -1": (lambda x: x ** -1, lambda x: 1.0 / x, dict(avoid=(0.0,), margin=0.3)),
    "x ** 0.5": (lambda x: x ** 0.5, np.sqrt, dict(min_value=0.2)),
    "x ** -1.5": (lambda x: x ** -1.5, lambda x: x ** -1.5, dict(min_value=0.3)),
    "x.pow(2.5)": (lambda x: x.pow(2.5), lambda x: x ** 2.5, dict(min_value=0.2)),
}


@pytest.mark.parametrize("name", list(SCALAR_OPS))
@given(data=st.data())
def test_op_with_python_scalar(name, data):
    fn, ref, kwargs = SCALAR_OPS[name]
    x = data.draw(tst.tensors(small_shapes(), requires_grad=True, **kwargs))
    out = fn(x)
    assert out.dtype == np.float64  # the scalar takes the tensor's dtype
    assert_close(out, ref(x.numpy()))
    check_grads(fn, [x])


# A tensor and a Python number take the constant ops (the number a parameter, not a
# tensor of the graph): the same bits as the two-tensor ops, forward and backward.
CONSTANT_PATHS = {  # name: (fn with the number, fn with the number as a 0-d tensor, op)
    "x + c": (lambda x, c: x + c, lambda x, c: x + c, "AddConstant"),
    "c + x": (lambda x, c: c + x, lambda x, c: c + x, "AddConstant"),
    "x - c": (lambda x, c: x - c, lambda x, c: x - c, "AddConstant"),
    "c - x": (lambda x, c: c - x, lambda x, c: c - x, "SubFromConstant"),
    "x * c": (lambda x, c: x * c, lambda x, c: x * c, "MulConstant"),
    "c * x": (lambda x, c: c * x, lambda x, c: c * x, "MulConstant"),
    "x / c": (lambda x, c: x / c, lambda x, c: x / c, "DivConstant"),
}


@pytest.mark.parametrize("name", list(CONSTANT_PATHS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_number_operand_is_exactly_the_tensor_operand(name, dtype, data):
    fn, reference, op = CONSTANT_PATHS[name]
    values = data.draw(hnp.arrays(dtype, small_shapes(), elements=st.floats(
        -4, 4, width=32).filter(lambda v: v != 0) | st.sampled_from([0.0, -0.0])))
    number = data.draw(st.floats(-3, 3, allow_subnormal=False).filter(lambda v: abs(v) > 1e-3)
                       | st.integers(-3, 3).filter(lambda v: v != 0 or "/" not in name))
    upstream = data.draw(hnp.arrays(dtype, values.shape, elements=st.floats(-2, 2, width=32)))
    x, x_ref = (tg.tensor(values.copy(), requires_grad=True) for _ in range(2))
    out = fn(x, number)
    expected = reference(x_ref, tg.tensor(np.asarray(number, dtype=dtype)))
    assert type(out.grad_fn).__name__ == op and out.dtype == dtype
    # the same bits, signs of zeros too (x - 0 of -0.0 is -0.0)
    np.testing.assert_array_equal(np.signbit(out.numpy()), np.signbit(expected.numpy()))
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    out.backward(tg.tensor(upstream))
    expected.backward(tg.tensor(upstream))
    np.testing.assert_array_equal(x.grad.numpy(), x_ref.grad.numpy())


ELEMENTWISE_KERNELS = ["add_constant", "mul_constant", "div_constant", "sub_from_constant"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("function", ELEMENTWISE_KERNELS)
@given(data=st.data())
def test_the_elementwise_kernels_give_the_references_bits(threads, dtype, function, data):
    """The numba module shares a large array out among threads (here: from 64
    elements); either way its bits are the reference's, NaNs, infinities, signed zeros
    and subnormals included, for float and int numbers (a zero divisor too)."""
    import numba

    from tinygen.backend.numba_kernels import chunks, elementwise as numba_module
    from tinygen.backend.reference import elementwise as reference

    shape = data.draw(st.sampled_from([(3,), (7, 9), (200,), (4, 33, 5)]))
    # ordinary numbers of many magnitudes, with drawn values (specials among them) spliced
    # in (hypothesis' arrays alone repeat one fill value in most elements)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    values = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-30, 30, shape)).astype(dtype)
    drawn = data.draw(hnp.arrays(dtype, shape, elements=st.floats(width=32) | st.sampled_from(
        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-45])))
    spliced = data.draw(hnp.arrays(np.bool_, shape))
    values[spliced] = drawn[spliced]
    number = data.draw(st.floats(width=32) | st.integers(-5, 5) | st.sampled_from([0.0, -0.0]))
    shared, share_rows = [], chunks.share_rows
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chunks, "SHARE_THRESHOLD", 64)
        patch.setattr(numba, "get_num_threads", lambda: threads)
        patch.setattr(chunks, "share_rows", lambda *a: shared.append(a[0]) or share_rows(*a))
        with np.errstate(all="ignore"):
            got = getattr(numba_module, function)(values, number)
            expected = getattr(reference, function)(values, number)
    assert got.dtype == expected.dtype == dtype and got.shape == expected.shape
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), nan)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(got[~nan].view(bits), expected[~nan].view(bits))
    assert bool(shared) == (threads == 2 and values.size >= 64), "shared out when large"


def test_the_elementwise_kernels_leave_other_layouts_to_the_reference(monkeypatch):
    """A strided, transposed or F-ordered array, large enough to be shared out, gets the
    reference's values and the reference's layout (numpy keeps an F-ordered input's
    order in its output; a flat pass would not)."""
    import numba

    from tinygen.backend.numba_kernels import chunks, elementwise as numba_module

    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 64)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    x = np.arange(6 * 70, dtype=np.float32).reshape(6, 70) - 100
    for a in (x[:, ::2], x.T, np.asfortranarray(x)):
        for got, expected in [(numba_module.sub_from_constant(a, 1.5), 1.5 - a),
                              (numba_module.div_constant(a, 3), a / np.float32(3))]:
            np.testing.assert_array_equal(got, expected)
            assert got.strides == expected.strides


def test_numbers_meeting_integer_tensors_or_bools_take_the_two_tensor_ops():
    ints = tg.tensor(np.arange(3))
    assert (ints * 0.5).dtype == np.float32 and (ints + 2).dtype == ints.dtype
    x = tg.tensor(np.ones(3, np.float32), requires_grad=True)
    assert type((x * True).grad_fn).__name__ == "Mul"          # bool: as a tensor would be
    assert type((x * np.float32(2)).grad_fn).__name__ == "Mul"  # numpy scalars too
    with pytest.raises(TypeError, match="at least one operand must be a Tensor"):
        tg.mul(2.0, 3.0)


# --- unary math and activations ------------------------------------------------------------------
# name: (fn, numpy reference, draw kwargs).  Kinks are avoided by ``avoid``.
UNARY = {
    "neg": (tg.neg, np.negative, {}),
    "-x": (lambda x: -x, np.negative, {}),
    "abs": (tg.abs, np.abs, dict(avoid=(0.0,))),
    "exp": (tg.exp, np.exp, {}),
    "log": (tg.log, np.log, dict(min_value=0.2)),
    "log1p": (tg.log1p, np.log1p, dict(min_value=-0.8)),
    "sqrt": (tg.sqrt, np.sqrt, dict(min_value=0.2)),
    "tanh": (tg.tanh, np.tanh, {}),
    "sigmoid": (tg.sigmoid, _sigmoid, {}),
    "relu": (tg.relu, lambda x: np.maximum(x, 0.0), dict(avoid=(0.0,))),
    "leaky_relu": (tg.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), dict(avoid=(0.0,))),
    "leaky_relu(0.2)": (lambda x: tg.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                        dict(avoid=(0.0,))),
    # elu is C1 at 0 but its second derivative jumps there
    "elu": (tg.elu, _elu, dict(avoid=(0.0,))),
    "elu(0.5)": (lambda x: tg.elu(x, 0.5), lambda x: _elu(x, 0.5), dict(avoid=(0.0,))),
    "softplus": (tg.softplus, _softplus, {}),
    "softplus(beta=2)": (lambda x: tg.softplus(x, beta=2.0),
                         lambda x: _softplus(x, 2.0), {}),
    # a low threshold puts the linear branch inside the drawn range (it jumps at 2)
    "softplus(threshold=2)": (lambda x: tg.softplus(x, beta=1.0, threshold=2.0),
                              lambda x: _softplus(x, 1.0, 2.0), dict(avoid=(2.0,))),
    "clamp(-1, 1)": (lambda x: tg.clamp(x, -1.0, 1.0), lambda x: np.clip(x, -1.0, 1.0),
                     dict(avoid=(-1.0, 1.0))),
    "clamp(min=-0.5)": (lambda x: x.clamp(min=-0.5), lambda x: np.maximum(x, -0.5),
                        dict(avoid=(-0.5,))),
    "clamp(max=0.5)": (lambda x: x.clamp(max=0.5), lambda x: np.minimum(x, 0.5),
                       dict(avoid=(0.5,))),
}


@pytest.mark.parametrize("name", list(UNARY))
@given(data=st.data())
def test_unary_op(name, data):
    fn, ref, kwargs = UNARY[name]
    x = data.draw(tst.tensors(small_shapes(), requires_grad=True, **kwargs))
    out = fn(x)
    assert out.shape == x.shape
    assert_close(out, ref(x.numpy()))
    check_grads(fn, [x])


@pytest.mark.parametrize("method", ["neg", "abs", "exp", "tanh", "sigmoid", "relu"])
def test_tensor_methods_match_functions(method):
    x = f64([[-1.3, 0.4], [2.2, -0.7]])
    assert_close(getattr(x, method)(), getattr(tg, method)(x).numpy())


def test_subgradients_at_kinks_follow_pytorch():
    # At exactly the kink PyTorch picks: abs'(0)=0, relu'(0)=0, leaky'(0)=slope,
    # elu'(0)=alpha, clamp passes the gradient at its bounds.
    x = f64([0.0, 0.0, 0.0, 0.0, -1.0, 1.0])
    cases = [
        (lambda t: tg.abs(t[0]), [0.0, 0, 0, 0, 0, 0]),
        (lambda t: tg.relu(t[1]), [0, 0.0, 0, 0, 0, 0]),
        (lambda t: tg.leaky_relu(t[2], 0.2), [0, 0, 0.2, 0, 0, 0]),
        (lambda t: tg.elu(t[3], 0.7), [0, 0, 0, 0.7, 0, 0]),
        (lambda t: tg.clamp(t[4:6], -1.0, 1.0).sum(), [0, 0, 0, 0, 1.0, 1.0]),
    ]
    for fn, expected in cases:
        (g,) = tg.grad(fn(x), x)
        assert_close(g, np.array(expected, dtype=np.float64))


def test_sigmoid_softplus_exp_are_stable_at_extremes():
    x = f32([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow
        s = tg.sigmoid(x).numpy()
        sp = tg.softplus(x).numpy()
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(sp))
    np.testing.assert_allclose(s, [0.0, _sigmoid(-50.0), 0.5, 1.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(sp, [0.0, np.log1p(np.exp(-50.0)), np.log(2.0), 50.0, 1000.0],
                               rtol=1e-6, atol=1e-7)


# --- where, maximum, minimum --------------------------------------------------------------------------
@given(data=st.data())
def test_where_with_broadcasting(data):
    shape_c, shape_a, shape_b = data.draw(tst.broadcastable_shapes(num_shapes=3, max_side=3))
    cond = data.draw(hnp.arrays(np.bool_, shape_c))
    a = data.draw(tst.tensors(shape_a, requires_grad=True))
    b = data.draw(tst.tensors(shape_b, requires_grad=True))
    expected = np.where(cond, a.numpy(), b.numpy())
    assert_close(tg.where(cond, a, b), expected)
    assert_close(tg.where(tg.tensor(cond), a, b), expected)  # a boolean Tensor condition
    check_grads(lambda a, b: tg.where(cond, a, b), [a, b])


def test_where_routes_gradient_by_condition_and_accepts_scalars():
    cond = np.array([True, False, True])
    a = f64([1.0, 2.0, 3.0])
    b = f64([10.0, 20.0, 30.0])
    tg.where(cond, a, b).sum().backward()
    assert_close(a.grad, [1.0, 0.0, 1.0])
    assert_close(b.grad, [0.0, 1.0, 0.0])
    x = f64([-1.0, 2.0, -3.0])
    out = tg.where(x > 0, x, 0.0)  # a comparison as condition, a scalar branch
    assert_close(out, [0.0, 2.0, 0.0])
    check_grads(lambda x: tg.where(cond, 0.5, x * x), [x])


@pytest.mark.parametrize("name, ref", [("maximum", np.maximum), ("minimum", np.minimum)])
@given(data=st.data())
def test_maximum_minimum_with_broadcasting(name, ref, data):
    shape_a, shape_b = data.draw(tst.broadcastable_shapes(max_side=3))
    # Quantized on interleaved grids, the operands never come within 0.25 of a tie.
    a = f64(quantized(data.draw(tst.arrays(shape_a)), 0.0))
    b = f64(quantized(data.draw(tst.arrays(shape_b)), 0.25))
    fn = getattr(tg, name)
    assert_close(fn(a, b), ref(a.numpy(), b.numpy()))
    assert_close(getattr(a, name)(b), ref(a.numpy(), b.numpy()))
    check_grads(fn, [a, b])


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_split_ties_evenly(name):
    a = f64([1.0, 2.0, 0.0])
    b = f64([1.0, 0.0, 2.0])
    getattr(tg, name)(a, b).sum().backward()
    win = [0.5, 1.0, 0.0] if name == "maximum" else [0.5, 0.0, 1.0]
    assert_close(a.grad, win)
    assert_close(b.grad, 1.0 - np.array(win))


# --- comparisons (not differentiable) ---------------------------------------------------------------
COMPARISONS = {
    "eq": (operator.eq, np.equal), "ne": (operator.ne, np.not_equal),
    "lt": (operator.lt, np.less), "le": (operator.le, np.less_equal),
    "gt": (operator.gt, np.greater), "ge": (operator.ge, np.greater_equal),
}


def _assert_constant_bool(out, expected):
    assert out.dtype == np.bool_
    assert not out.requires_grad and out.grad_fn is None
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("name", list(COMPARISONS))
@given(data=st.data())
def test_comparison_values_and_no_grad(name, data):
    op, ref = COMPARISONS[name]
    shape_a, shape_b = data.draw(tst.broadcastable_shapes(max_side=3))
    # Quantized to a coarse grid so that equal elements actually occur.
    a = f64(quantized(data.draw(tst.arrays(shape_a, min_value=-1.5, max_value=1.5)), 0.0))
    b = f64(quantized(data.draw(tst.arrays(shape_b, min_value=-1.5, max_value=1.5)), 0.0))
    expected = ref(a.numpy(), b.numpy())
    _assert_constant_bool(getattr(tg, name)(a, b), expected)
    _assert_constant_bool(op(a, b), expected)
    _assert_constant_bool(op(a, 0.5), ref(a.numpy(), 0.5))
    _assert_constant_bool(op(0.5, a), ref(0.5, a.numpy()))  # reflected


def test_comparisons_of_integer_and_float_tensors():
    i = tg.tensor([1, 2, 3])
    x = tg.tensor([1.0, 2.5, 2.0])
    _assert_constant_bool(i == x, [True, False, False])
    _assert_constant_bool(i > x, [False, False, True])
    _assert_constant_bool(~(i > x), [True, True, False])


# --- dropout ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p):
    n = 40_000
    x = f64(np.full(n, 2.0))
    y = tg.dropout(x, p=p, generator=np.random.default_rng(3)).numpy()
    zeroed = np.mean(y == 0.0)
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(zeroed - p) < 5 * sigma, (zeroed, p)
    kept = y[y != 0.0]
    np.testing.assert_allclose(kept, 2.0 / (1.0 - p), rtol=1e-12)  # scaled by 1/(1-p)
    assert abs(y.mean() - 2.0) < 5 * 2.0 * np.sqrt(p / (1 - p) / n)  # unbiased


@pytest.mark.parametrize("p", [0.3, 0.7])
def test_dropout_gradient_is_mask_over_keep_probability(p):
    rng = np.random.default_rng(0)
    x = f64(rng.uniform(0.5, 1.5, (50, 40)))  # nonzero, so a zero output means dropped
    y = tg.dropout(x, p=p, generator=np.random.default_rng(11))
    mask = (y.numpy() != 0.0).astype(np.float64)
    assert_close(y, x.numpy() * mask / (1 - p))
    upstream = rng.standard_normal(y.shape)
    y.backward(tg.tensor(upstream, dtype=tg.float64))
    assert_close(x.grad, upstream * mask / (1 - p))


@given(x=tst.tensors(small_shapes(), requires_grad=True))
def test_dropout_gradcheck_with_a_fixed_mask(x):
    # A generator re-seeded on every call gives one mask for all evaluations.
    check_grads(lambda t: tg.dropout(t, p=0.4, generator=np.random.default_rng(5)), [x])


def test_dropout_eval_mode_and_edge_probabilities():
    x = f64(np.arange(1.0, 7.0).reshape(2, 3))
    assert_close(tg.dropout(x, p=0.5, training=False), x.numpy())
    assert_close(tg.dropout(x, p=0.0), x.numpy())
    y = tg.dropout(x, p=1.0)
    assert_close(y, np.zeros((2, 3)))
    y.sum().backward()
    assert_close(x.grad, np.zeros((2, 3)))


def test_dropout_default_generator_follows_manual_seed():
    x = f64(np.ones(100))
    saved = tg.get_rng_state()
    try:
        tg.manual_seed(42)
        first = tg.dropout(x, p=0.5).numpy()
        tg.manual_seed(42)
        np.testing.assert_array_equal(tg.dropout(x, p=0.5).numpy(), first)
        assert not np.array_equal(tg.dropout(x, p=0.5).numpy(), first)
    finally:
        tg.set_rng_state(saved)


# --- float32 stays float32 --------------------------------------------------------------------------
F32_UNARY = ["neg", "abs", "exp", "log", "log1p", "sqrt", "tanh", "sigmoid", "relu",
             "leaky_relu", "elu", "softplus", "clamp(-1, 1)", "x ** 2", "x ** 0.5", "c ** x",
             "c / x"]


@pytest.mark.parametrize("name", F32_UNARY)
def test_float32_unary_outputs_and_grads_stay_float32(name):
    fn, ref, _ = UNARY[name] if name in UNARY else SCALAR_OPS[name]
    x64 = np.array([[0.3, 1.7], [2.2, 0.6]])
    x = f32(x64)
    out = fn(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), ref(x64), rtol=1e-5, atol=1e-6)
    (g,) = tg.grad(out.sum(), x, create_graph=True)
    assert g.dtype == np.float32
    if g.requires_grad:  # a constant derivative (neg, relu...) has no graph of its own
        (gg,) = tg.grad(g.sum(), x, allow_unused=True)
        assert gg is None or gg.dtype == np.float32


@pytest.mark.parametrize("fn", [tg.add, tg.sub, tg.mul, tg.div, tg.pow, tg.maximum, tg.minimum,
                                lambda a, b: tg.where(np.array([True, False]), a, b)],
                         ids=["add", "sub", "mul", "div", "pow", "maximum", "minimum", "where"])
def test_float32_binary_outputs_and_grads_stay_float32(fn):
    a = f32([[0.5, 1.5], [2.0, 0.7]])
    b = f32([1.2, 0.4])
    out = fn(a, b)
    assert out.dtype == np.float32
    ga, gb = tg.grad(out.sum(), [a, b])
    assert ga.dtype == np.float32 and gb.dtype == np.float32


def test_float32_dropout_stays_float32():
    x = f32(np.ones((4, 5)))
    y = tg.dropout(x, p=0.5, generator=np.random.default_rng(0))
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
