"""matmul with numpy.matmul semantics: 1-D operands (promoted then squeezed), 2-D,
and batched operands whose batch dimensions broadcast (size-1 and missing ones).
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygen as tg
from tinygen.testing import assert_close, check_grads, f64, strategies as tst

from ._helpers import f32

RANKS = ["1d@1d", "1d@2d", "2d@1d", "2d@2d", "batched@2d", "2d@batched", "batched@batched",
         "1d@batched", "batched@1d"]


@st.composite
def matmul_shapes(draw, kind):
    n, k, m = (draw(st.integers(1, 3), label=label) for label in "nkm")
    batch_a, batch_b = draw(tst.broadcastable_shapes(min_dims=1, max_dims=2, max_side=3))
    left, right = kind.split("@")
    shape_a = {"1d": (k,), "2d": (n, k), "batched": batch_a + (n, k)}[left]
    shape_b = {"1d": (k,), "2d": (k, m), "batched": batch_b + (k, m)}[right]
    return shape_a, shape_b


@pytest.mark.parametrize("kind", RANKS)
@given(data=st.data())
def test_matmul(kind, data):
    shape_a, shape_b = data.draw(matmul_shapes(kind))
    a = data.draw(tst.tensors(shape_a, requires_grad=True))
    b = data.draw(tst.tensors(shape_b, requires_grad=True))
    expected = np.matmul(a.numpy(), b.numpy())
    assert_close(tg.matmul(a, b), expected)
    assert_close(a @ b, expected)
    check_grads(tg.matmul, [a, b])


def test_matmul_gradients_have_closed_forms():
    rng = np.random.default_rng(0)
    # (2, 1, 3, 4) @ (5, 4, 2): the batch dims broadcast to (2, 5).
    a = f64(rng.standard_normal((2, 1, 3, 4)))
    b = f64(rng.standard_normal((5, 4, 2)))
    upstream = rng.standard_normal((2, 5, 3, 2))
    ga, gb = tg.grad(a @ b, [a, b], grad_outputs=tg.tensor(upstream, dtype=tg.float64))
    an, bn = a.numpy(), b.numpy()
    assert_close(ga, (upstream @ np.swapaxes(bn, -1, -2)).sum(axis=1, keepdims=True))
    assert_close(gb, (np.swapaxes(an, -1, -2) @ upstream).sum(axis=0))


def test_matmul_of_vectors_is_a_0d_dot_product():
    a = f64([1.0, 2.0, 3.0])
    b = f64([4.0, 5.0, 6.0])
    out = a @ b
    assert out.shape == ()
    assert_close(out, 32.0)
    out.backward()
    assert_close(a.grad, b.numpy())
    assert_close(b.grad, a.numpy())


def test_matmul_with_a_constant_operand():
    w = f64(np.arange(6.0).reshape(2, 3), requires_grad=False)
    x = f64(np.ones((3, 2)))
    (g,) = tg.grad((w @ x).sum(), x)
    assert_close(g, np.repeat(w.numpy().sum(axis=0, keepdims=True).T, 2, axis=1))


@pytest.mark.parametrize("shape_a, shape_b", [((3,), (3,)), ((2, 3), (3, 4)), ((2, 1, 2, 3), (3, 3, 2)),
                                              ((3,), (2, 3, 2))])
def test_float32_matmul_stays_float32(shape_a, shape_b):
    rng = np.random.default_rng(1)
    a = f32(rng.standard_normal(shape_a))
    b = f32(rng.standard_normal(shape_b))
    out = a @ b
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), np.matmul(a.numpy(), b.numpy()), rtol=1e-5, atol=1e-6)
    ga, gb = tg.grad(out.sum(), [a, b])
    assert ga.dtype == np.float32 and gb.dtype == np.float32
    assert ga.shape == shape_a and gb.shape == shape_b
