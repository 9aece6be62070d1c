"""Tensor basics and factories."""
import numpy as np
import pytest

import tinygen as tg


def test_default_dtypes_follow_pytorch():
    assert tg.tensor([1.0, 2.0]).dtype == np.float32
    assert tg.tensor([1, 2]).dtype == np.int64
    assert tg.tensor(np.zeros(3)).dtype == np.float64  # numpy arrays keep theirs
    assert tg.zeros(2, 3).dtype == np.float32
    assert tg.randn(2, dtype=tg.float64).dtype == np.float64
    assert tg.arange(3).dtype == np.int64
    assert tg.arange(0.0, 1.0, 0.25).dtype == np.float32


def test_tensor_copies_its_data_and_as_tensor_shares():
    a = np.zeros(3, dtype=np.float32)
    t, s = tg.tensor(a), tg.as_tensor(a)
    a[0] = 5
    assert t.numpy()[0] == 0 and s.numpy()[0] == 5


def test_attributes():
    t = tg.ones(2, 3, requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.numel() == 6 and len(t) == 2
    assert t.device == "cpu" and t.is_leaf and t.grad is None
    assert t.size(1) == 3 and t.size(-1) == 3 and t.size() == (2, 3)
    assert tg.tensor(3.5).item() == 3.5
    with pytest.raises(ValueError, match=r"one element.*\(2, 3\)"):
        t.item()


def test_factories_shapes_and_like():
    assert tg.zeros((2, 3)).shape == (2, 3)
    assert tg.full((2,), 7.0).numpy().tolist() == [7.0, 7.0]
    x = tg.randn(4, 5, dtype=tg.float64)
    for f in (tg.zeros_like, tg.ones_like, tg.randn_like, tg.rand_like):
        y = f(x)
        assert y.shape == x.shape and y.dtype == x.dtype
    assert tg.eye(3).numpy().trace() == 3
    with pytest.raises(ValueError, match="non-negative"):
        tg.zeros(-1)


def test_manual_seed_makes_draws_reproducible():
    tg.manual_seed(7)
    a = tg.randn(5).numpy()
    tg.manual_seed(7)
    b = tg.randn(5).numpy()
    np.testing.assert_array_equal(a, b)
    state = tg.get_rng_state()
    c = tg.rand(3).numpy()
    tg.set_rng_state(state)
    np.testing.assert_array_equal(tg.rand(3).numpy(), c)


@pytest.mark.parametrize("data", [
    np.array(["a", "b"]), np.array([object()], dtype=object), np.array([1 + 2j]),
    np.array(["2020-01-01"], dtype="datetime64[D]"), ["a", "b"]])
@pytest.mark.parametrize("make", ["tensor", "as_tensor", "Tensor"])
def test_data_no_op_is_written_for_is_refused_where_the_tensor_is_made(data, make):
    with pytest.raises(TypeError, match="booleans, integers or floating-point numbers"):
        getattr(tg, make)(data)


def test_a_factory_refuses_a_non_numeric_dtype():
    with pytest.raises(TypeError, match="dtype <U3"):
        tg.zeros(3, dtype="U3")
    with pytest.raises(TypeError, match="complex64"):
        tg.tensor([1.0], dtype=np.complex64)
    assert tg.tensor([True]).dtype == np.bool_ and tg.tensor(np.float16([1])).dtype == np.float16


def test_dtype_conversion_is_differentiable():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x.double() * 3
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), 3.0)


def test_numpy_scalars_defer_to_tensor_operators():
    x = tg.tensor([1.0, 2.0])
    y = np.float32(2.0) * x
    assert isinstance(y, tg.Tensor)


def test_bool_of_multi_element_tensor_is_ambiguous():
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tg.ones(2) > 0)


def test_setitem_is_refused_with_guidance():
    with pytest.raises(TypeError, match="where\\(\\)"):
        tg.ones(2)[0] = 1.0


def test_requires_grad_off_only_on_leaves():
    x = tg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        (x * 2).requires_grad = False


def test_repr_mentions_grad_fn_and_dtype():
    x = tg.ones(2, dtype=tg.float64, requires_grad=True)
    assert "requires_grad=True" in repr(x) and "float64" in repr(x)
    assert "grad_fn=<MulConstant>" in repr(x * 2)
    assert "grad_fn=<Mul>" in repr(x * x)


def test_cuda_device_unavailable_is_a_clear_error():
    if tg.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="'cuda' device is not available"):
        tg.ones(2, device="cuda")
    with pytest.raises(ValueError, match="unknown device"):
        tg.ones(2, device="tpu")


def test_a_full_reduction_holds_a_0d_array_that_changes_in_place():
    # numpy's full reductions return a scalar (np.float32), which is no array: it could
    # not be filled in place and took Function.apply's slow device check
    s = tg.tensor(np.arange(3, dtype=np.float32)).sum()
    assert type(s.data) is np.ndarray and s.shape == ()
    s.fill_(5.0)
    assert s.item() == 5.0
