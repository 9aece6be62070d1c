"""Errors: every bad call raises the right exception type with a message that names
what is wrong (the shapes, dtypes, axis, index, bound...), not just any exception.
"""
import operator

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygen as tg
from tinygen.ops._operands import check_broadcast
from tinygen.testing import f64

from ._helpers import f32


@pytest.fixture
def x():
    return f64(np.arange(6.0).reshape(2, 3))


# --- shapes ------------------------------------------------------------------------------------------
BINARY_OPS = {
    "add": tg.add, "sub": tg.sub, "mul": tg.mul, "div": tg.div, "pow": tg.pow,
    "maximum": tg.maximum, "minimum": tg.minimum,
    "eq": tg.eq, "ne": tg.ne, "lt": tg.lt, "le": tg.le, "gt": tg.gt, "ge": tg.ge,
}


@pytest.mark.parametrize("name", list(BINARY_OPS))
def test_binary_ops_reject_shapes_that_do_not_broadcast(name):
    a, b = f64(np.ones((2, 3))), f64(np.ones(4))
    with pytest.raises(ValueError, match=rf"{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        BINARY_OPS[name](a, b)


@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv,
                                operator.pow, operator.lt, operator.eq],
                         ids=["+", "-", "*", "/", "**", "<", "=="])
def test_operators_reject_mismatched_shapes(op):
    a, b = f64(np.ones((3, 2, 2))), f64(np.ones((2, 3, 2)))
    with pytest.raises(ValueError, match=r"\(3, 2, 2\) and \(2, 3, 2\) cannot be broadcast"):
        op(a, b)


@given(st.lists(st.integers(1, 3), max_size=4), st.lists(st.integers(1, 3), max_size=4))
def test_the_binary_ops_broadcast_check_agrees_with_numpy(a_shape, b_shape):
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    try:
        np.broadcast_shapes(a_shape, b_shape)
        ok = True
    except ValueError:
        ok = False
    if ok:
        check_broadcast("add", a_shape, b_shape)
    else:
        with pytest.raises(ValueError, match="add: shapes .* cannot be broadcast together"):
            check_broadcast("add", a_shape, b_shape)


def test_where_rejects_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"where: shapes \(2,\) and \(3,\) and \(3,\)"):
        tg.where(np.array([True, False]), f64(np.ones(3)), f64(np.ones(3)))
    with pytest.raises(TypeError, match="condition must be boolean, got float64"):
        tg.where(np.array([1.0, 0.0]), f64(np.ones(2)), 0.0)


def test_matmul_shape_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 2\) are not aligned: 3 .* != 4"):
        f64(np.ones((2, 3))) @ f64(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"\(3,\) and \(2,\) are not aligned"):
        tg.matmul(f64(np.ones(3)), f64(np.ones(2)))
    with pytest.raises(ValueError, match=r"batch dimensions of \(2, 2, 3\) and \(3, 3, 2\)"):
        tg.matmul(f64(np.ones((2, 2, 3))), f64(np.ones((3, 3, 2))))
    with pytest.raises(ValueError, match="at least one dimension"):
        tg.matmul(f64(2.0), f64(np.ones(2)))


def test_reshape_and_view_reject_a_different_number_of_elements(x):
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\) \(6 elements\) "
                                         r"into \(4, 2\) \(8 elements\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\) into \(4, -1\)"):
        x.view(4, -1)
    with pytest.raises(ValueError, match="at most one -1"):
        x.reshape(-1, -1)


def test_broadcast_to_expand_permute_concatenate_stack_split_errors(x):
    with pytest.raises(ValueError, match=r"cannot broadcast a tensor of shape \(2, 3\) to \(2, 4\)"):
        x.broadcast_to((2, 4))
    with pytest.raises(ValueError, match=r"cannot broadcast a tensor of shape \(2, 3\) to \(3,\)"):
        x.broadcast_to((3,))
    with pytest.raises(ValueError, match=r"fewer dimensions than the tensor's \(2, 3\)"):
        x.expand(3)
    with pytest.raises(ValueError, match=r"-1 is not allowed for new leading dimensions"):
        x.expand(-1, 2, 3)
    with pytest.raises(ValueError, match=r"\(0, 0\) is not a permutation of the 2 axes"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match=r"shapes must match except along axis 0, got \[\(2, 3\), \(2, 2\)\]"):
        tg.concatenate([x, f64(np.ones((2, 2)))], axis=0)
    with pytest.raises(TypeError, match="concatenate: dtype mismatch.*float64.*float32"):
        tg.concatenate([x, f32(np.ones((2, 3)))])
    with pytest.raises(ValueError, match=r"same shape, got \[\(2, 3\), \(3, 2\)\]"):
        tg.stack([x, f64(np.ones((3, 2)))])
    with pytest.raises(ValueError, match=r"sections \[1, 1\] do not add up to size 3 of axis 1"):
        tg.split(x, [1, 1], axis=1)
    with pytest.raises(ValueError, match="split: size must be positive, got 0"):
        tg.split(x, 0)
    with pytest.raises(ValueError, match="chunks must be a positive int, got 0"):
        tg.chunk(x, 0)


# --- dtypes --------------------------------------------------------------------------------------------
DTYPE_OPS = dict(BINARY_OPS, matmul=tg.matmul,
                 where=lambda a, b: tg.where(np.ones((3, 3), dtype=bool), a, b))


@pytest.mark.parametrize("name", list(DTYPE_OPS))
def test_float32_with_float64_is_a_type_error_naming_both(name):
    a, b = f32(np.ones((3, 3))), f64(np.ones((3, 3)))
    with pytest.raises(TypeError, match=r"dtype mismatch, float32 \(shape \(3, 3\)\) and float64"):
        DTYPE_OPS[name](a, b)
    with pytest.raises(TypeError, match=r"dtype mismatch, float64 .* and float32"):
        DTYPE_OPS[name](b, a)


@pytest.mark.parametrize("float_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("other", [np.array([1, 2, 3]), np.array([True, False, True]),
                                   np.array([1, 2, 3], dtype=np.int32)], ids=["int64", "bool", "int32"])
def test_integer_and_bool_operands_promote_to_the_float_dtype(float_dtype, other):
    a = tg.tensor(np.array([0.5, 1.5, 2.5], dtype=float_dtype), requires_grad=True)
    b = tg.tensor(other)
    for out, expected in [(a + b, a.numpy() + other), (b * a, other * a.numpy()),
                          (a - b, a.numpy() - other), (b / a, other / a.numpy()),
                          (tg.maximum(a, b), np.maximum(a.numpy(), other))]:
        assert out.dtype == float_dtype
        np.testing.assert_allclose(out.numpy(), expected.astype(float_dtype), rtol=1e-6)
    (g,) = tg.grad((a * b).sum(), a)
    assert g.dtype == float_dtype
    np.testing.assert_array_equal(g.numpy(), other.astype(float_dtype))


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients, got dtype int64"):
        tg.tensor([1, 2, 3], requires_grad=True)


# --- axes ------------------------------------------------------------------------------------------------
AXIS_OPS = {
    "sum": lambda t, a: t.sum(a), "mean": lambda t, a: t.mean(a), "var": lambda t, a: t.var(a),
    "std": lambda t, a: t.std(a), "max": lambda t, a: t.max(a), "min": lambda t, a: t.min(a),
    "logsumexp": lambda t, a: t.logsumexp(a), "norm": lambda t, a: t.norm(2, a),
    "argmax": lambda t, a: t.argmax(a), "softmax": lambda t, a: t.softmax(a),
    "log_softmax": lambda t, a: t.log_softmax(a), "squeeze": lambda t, a: t.squeeze(a),
    "transpose": lambda t, a: t.transpose(0, a), "flatten": lambda t, a: t.flatten(a),
    "concatenate": lambda t, a: tg.concatenate([t, t], a), "split": lambda t, a: tg.split(t, 1, a),
    "chunk": lambda t, a: tg.chunk(t, 2, a), "gather": lambda t, a: tg.gather(t, a, np.zeros((1, 1), np.int64)),
    "size": lambda t, a: t.size(a),
}


@pytest.mark.parametrize("name", list(AXIS_OPS))
@pytest.mark.parametrize("axis", [2, -3])
def test_bad_axis_is_a_value_error_naming_axis_and_ndim(name, axis, x):
    with pytest.raises(ValueError, match=rf"axis {axis} is out of range for a tensor with 2 dimensions"):
        AXIS_OPS[name](x, axis)


def test_other_axis_errors(x):
    with pytest.raises(ValueError, match=r"axis 3 is out of range for a tensor with 3 dimensions"):
        x.unsqueeze(3)
    with pytest.raises(ValueError, match=r"axis 3 is out of range for a tensor with 3 dimensions"):
        tg.stack([x, x], axis=3)
    with pytest.raises(ValueError, match=r"repeated axis in \(1, -1\)"):
        x.sum((1, -1))
    with pytest.raises(TypeError, match="axis must be an int, got 1.0"):
        x.sum(1.0)
    with pytest.raises(ValueError, match="axis 1 is out of range for a tensor with 0 dimensions"):
        f64(1.0).sum(1)
    with pytest.raises(ValueError, match="flatten: start_dim 1 comes after end_dim 0"):
        x.flatten(1, 0)
    with pytest.raises(ValueError, match="leaves no degrees of freedom"):
        f64(np.ones((2, 1))).var(1)


# --- indices --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("index", [5, (0, 3), (-3,), (0, 0, 0), [0, 2], (slice(None), [1, 3]),
                                   np.array([[True, False]]), (Ellipsis, np.array([0, -4]))],
                         ids=["int", "second-int", "negative", "too-many", "array", "slice-array",
                              "mask-shape", "ellipsis-array"])
def test_bad_index_is_an_index_error_mentioning_the_shape(index, x):
    with pytest.raises(IndexError, match=r"indexing a tensor of shape \(2, 3\)"):
        x[index]


def test_float_index_arrays_are_rejected(x):
    with pytest.raises(IndexError, match="must be integer or boolean, got float64"):
        x[np.array([0.0, 1.0])]
    with pytest.raises(IndexError, match="must be integer or boolean, got float32"):
        x[tg.tensor([0.0])]


def test_item_assignment_is_refused(x):
    with pytest.raises(TypeError, match="do not support item assignment"):
        x[0] = 1.0


def test_gather_errors(x):
    with pytest.raises(IndexError, match=r"index values must lie in \[0, 3\) for dimension 1, got \[0, 3\]"):
        tg.gather(x, 1, np.array([[0, 3]]))
    with pytest.raises(IndexError, match=r"must lie in \[0, 2\) for dimension 0, got \[-1, 0\]"):
        tg.gather(x, 0, np.array([[-1, 0, 0]]))
    with pytest.raises(TypeError, match="gather: index must be an integer tensor, got float64"):
        tg.gather(x, 1, np.array([[0.0]]))
    with pytest.raises(ValueError, match=r"index has 1 dimensions but the input has 2"):
        tg.gather(x, 1, np.array([0]))
    with pytest.raises(ValueError, match=r"index shape \(3, 1\) exceeds input shape \(2, 3\) in dimension 0"):
        tg.gather(x, 1, np.zeros((3, 1), np.int64))


# --- losses ----------------------------------------------------------------------------------------------
def test_nll_loss_and_cross_entropy_target_errors():
    logp = f64(np.zeros((2, 3)))
    for fn in (tg.nll_loss, tg.cross_entropy):
        with pytest.raises(IndexError, match="target 3 is out of range for 3 classes"):
            fn(logp, tg.tensor([0, 3]))
        with pytest.raises(IndexError, match="target -1 is out of range for 3 classes"):
            fn(logp, tg.tensor([-1, 0]))
        with pytest.raises(ValueError, match=r"target shape \(3,\) does not match input shape \(2, 3\) "
                                             r"\(expected \(2,\)\)"):
            fn(logp, tg.tensor([0, 1, 2]))
        with pytest.raises(ValueError, match=r"weight must have shape \(3,\), got \(2,\)"):
            fn(logp, tg.tensor([0, 1]), weight=f64([1.0, 2.0], False))
    with pytest.raises(TypeError, match="target must hold integer class indices, got float64"):
        tg.nll_loss(logp, f64([0.0, 1.0], False))
    with pytest.raises(TypeError, match="target must hold integer class indices, got float32"):
        tg.nll_loss(logp, np.array([0.0, 1.0], dtype=np.float32))
    with pytest.raises(ValueError, match=r"input shape \(2, 3\) and target shape \(2, 2\) differ"):
        tg.cross_entropy(logp, f64(np.ones((2, 2)) / 2, False))


LOSSES = {
    "cross_entropy": lambda r: tg.cross_entropy(f64(np.zeros((2, 3))), tg.tensor([0, 1]), reduction=r),
    "nll_loss": lambda r: tg.nll_loss(f64(np.zeros((2, 3))), tg.tensor([0, 1]), reduction=r),
    "binary_cross_entropy": lambda r: tg.binary_cross_entropy(f64([0.5]), f64([1.0]), reduction=r),
    "binary_cross_entropy_with_logits":
        lambda r: tg.binary_cross_entropy_with_logits(f64([0.5]), f64([1.0]), reduction=r),
    "mse_loss": lambda r: tg.mse_loss(f64([0.5]), f64([1.0]), reduction=r),
    "l1_loss": lambda r: tg.l1_loss(f64([0.5]), f64([1.0]), reduction=r),
}


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("reduction", ["avg", "Mean", None])
def test_invalid_reduction_is_rejected(name, reduction):
    with pytest.raises(ValueError, match=rf"reduction must be one of \('mean', 'sum', 'none'\), got {reduction!r}"):
        LOSSES[name](reduction)


@pytest.mark.parametrize("name, fn", [("mse_loss", tg.mse_loss), ("l1_loss", tg.l1_loss),
                                      ("binary_cross_entropy", tg.binary_cross_entropy),
                                      ("binary_cross_entropy_with_logits",
                                       tg.binary_cross_entropy_with_logits)])
def test_losses_reject_target_of_another_shape(name, fn):
    with pytest.raises(ValueError, match=rf"{name}: input shape \(2, 1\) and target shape \(2,\) differ"):
        fn(f64([[0.5], [0.5]]), f64([1.0, 0.0]))


def test_other_loss_argument_errors():
    with pytest.raises(ValueError, match="input must hold probabilities in \\[0, 1\\]"):
        tg.binary_cross_entropy(f64([1.5, 0.5]), f64([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        tg.cross_entropy(f64(np.zeros((2, 3))), tg.tensor([0, 1]), label_smoothing=1.5)


# --- argument ranges ------------------------------------------------------------------------------------
def test_clamp_errors(x):
    with pytest.raises(ValueError, match="clamp: min 2.0 is greater than max 1.0"):
        x.clamp(2.0, 1.0)
    with pytest.raises(ValueError, match="at least one of min and max must be given"):
        tg.clamp(x)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_dropout_probability_outside_unit_interval(p, x):
    with pytest.raises(ValueError, match=rf"dropout probability must be in \[0, 1\], got {p}"):
        tg.dropout(x, p=p)


def test_pad_errors(x):
    with pytest.raises(ValueError, match=r"expected an even number of values for at most 2 dimensions, got \(1, 2, 3\)"):
        tg.pad(x, (1, 2, 3))
    with pytest.raises(ValueError, match=r"at most 2 dimensions, got \(1, 1, 1, 1, 1, 1\)"):
        tg.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"negative padding \(-1, 0\) is not supported"):
        tg.pad(x, (-1, 0))
    with pytest.raises(ValueError, match=r"reflect padding \(3, 0\) must be smaller than the size 3 of axis 1"):
        tg.pad(x, (3, 0), mode="reflect")
    with pytest.raises(ValueError, match=r"reflect padding \(0, 2\) must be smaller than the size 2 of axis 0"):
        tg.pad(x, (0, 0, 0, 2), mode="reflect")
    with pytest.raises(ValueError, match=r"circular padding \(0, 4\) must not exceed the size 3 of axis 1"):
        tg.pad(x, (0, 4), mode="circular")
    with pytest.raises(ValueError, match="unknown mode 'wrap'"):
        tg.pad(x, (1, 1), mode="wrap")


def test_other_argument_errors(x):
    with pytest.raises(ValueError, match="softplus: beta must be positive, got 0"):
        tg.softplus(x, beta=0)
    with pytest.raises(ValueError, match="norm: unsupported order p=-1"):
        x.norm(-1)
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with one element, got shape \(2, 3\)"):
        x.item()
