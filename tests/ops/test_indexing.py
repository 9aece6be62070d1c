"""Indexing: getitem with basic indices (slices with steps, negative ints, None,
Ellipsis), integer arrays with repeated entries (the backward's scatter-add must
accumulate), boolean masks, mixes of those; and gather.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg
from tinygen.testing import assert_close, check_grads, f64, strategies as tst

from ._helpers import f32, small_shapes


@st.composite
def basic_index_cases(draw):
    x = draw(tst.tensors(small_shapes(max_side=4), requires_grad=True))
    index = draw(hnp.basic_indices(x.shape, allow_newaxis=True, allow_ellipsis=True))
    return x, index


@given(case=basic_index_cases())
def test_getitem_basic_indices(case):
    x, index = case
    expected = x.numpy()[index]
    assert_close(x[index], expected)
    check_grads(lambda t: t[index], [x])


@pytest.mark.parametrize("index", [
    (slice(None, None, -1),), (slice(None, None, 2), -1), (Ellipsis, slice(-2, None)),
    (None, 1, Ellipsis, None), (-2, slice(3, 0, -2)), (slice(1, 1),),
], ids=["reverse", "step2-neg-int", "ellipsis-neg-start", "none-int-ellipsis", "neg-step",
        "empty"])
def test_getitem_basic_index_gradient_is_the_selection_mask(index):
    x = f64(np.arange(12.0).reshape(3, 4))
    out = x[index]
    assert_close(out, x.numpy()[index])
    if out.numel():
        out.sum().backward()
        mask = np.zeros((3, 4))
        mask[index] = 1.0
        assert_close(x.grad, mask)


@st.composite
def integer_array_cases(draw):
    x = draw(tst.tensors(small_shapes(min_dims=1, max_side=4), requires_grad=True))
    axis = draw(st.integers(0, x.ndim - 1))
    n = x.shape[axis]
    picks = draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=5))
    picks.append(picks[0])  # always at least one repeat: scatter-add must accumulate
    index_shape = draw(st.sampled_from([(len(picks),), (1, len(picks))]))
    wrap = draw(st.sampled_from(["numpy", "tensor", "list"]))
    raw = np.array(picks, dtype=np.int64).reshape(index_shape)
    index_obj = {"numpy": raw, "tensor": tg.tensor(raw),
                 "list": raw.tolist()}[wrap]
    return x, axis, raw, index_obj


@given(case=integer_array_cases())
def test_getitem_integer_array_with_repeated_indices(case):
    x, axis, raw, index_obj = case
    index = (slice(None),) * axis + (index_obj,)
    np_index = (slice(None),) * axis + (raw,)
    assert_close(x[index], x.numpy()[np_index])
    # d/dx of sum(x[index]) counts how often each element was picked
    (g,) = tg.grad(x[index].sum(), x)
    counts = np.zeros(x.shape)
    np.add.at(counts, np_index, 1.0)
    assert_close(g, counts)
    check_grads(lambda t: t[index], [x])


def test_getitem_repeated_index_accumulates():
    x = f64([10.0, 20.0, 30.0])
    out = x[[0, 2, 0, 0, -1]]
    assert_close(out, [10.0, 30.0, 10.0, 10.0, 30.0])
    out.backward(tg.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=tg.float64))
    assert_close(x.grad, [8.0, 0.0, 7.0])


@pytest.mark.parametrize("make_index", [
    lambda: (np.array([[0, 2], [2, 2]]), np.array([1, 1])),            # broadcast index arrays
    lambda: (slice(None), np.array([3, 0, 3])),                         # slice then array
    lambda: (np.array([1, 1, 0]), slice(1, None, 2)),                   # array then slice
    lambda: (np.array([0, 0]), Ellipsis, np.array([1, -1])),            # split by Ellipsis
    lambda: (None, np.array([2, 2]), np.array([0, 0])),                 # with a new axis
    lambda: (1, np.array([0, 0, 3])),                                   # int with an array
], ids=["broadcast-arrays", "slice-array", "array-slice", "array-ellipsis-array",
        "none-arrays", "int-array"])
def test_getitem_mixed_advanced_and_basic(make_index):
    rng = np.random.default_rng(0)
    x = f64(rng.standard_normal((3, 4)))
    index = make_index()
    assert_close(x[index], x.numpy()[index])
    check_grads(lambda t: t[index], [x])


@st.composite
def mask_cases(draw):
    x = draw(tst.tensors(small_shapes(min_dims=1, max_side=4), requires_grad=True))
    k = draw(st.integers(1, x.ndim))  # the mask covers the first k dimensions
    mask = draw(hnp.arrays(np.bool_, x.shape[:k]))
    return x, mask, draw(st.booleans())


@given(case=mask_cases())
def test_getitem_boolean_mask(case):
    x, mask, as_tensor = case
    index = tg.tensor(mask) if as_tensor else mask
    expected = x.numpy()[mask]
    assert_close(x[index], expected)
    if expected.size:
        (g,) = tg.grad(x[index].sum(), x)
        full_mask = np.broadcast_to(mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim)),
                                    x.shape)
        assert_close(g, full_mask.astype(np.float64))
    check_grads(lambda t: t[index], [x])


def test_getitem_with_a_comparison_mask():
    x = f64([[-1.0, 2.0], [3.0, -4.0]])
    out = x[x > 0]
    assert_close(out, [2.0, 3.0])
    out.sum().backward()
    assert_close(x.grad, [[0.0, 1.0], [1.0, 0.0]])


# --- gather -------------------------------------------------------------------------------------------
@st.composite
def gather_cases(draw):
    x = draw(tst.tensors(small_shapes(min_dims=1, max_side=3), requires_grad=True))
    dim = draw(st.integers(-x.ndim, x.ndim - 1))
    d = dim % x.ndim
    # PyTorch: index may be smaller than the input in every dimension but ``dim``,
    # and any size along ``dim``; its values (repeats welcome) index into ``dim``.
    index_shape = tuple(draw(st.integers(1, 4)) if i == d else draw(st.integers(1, s))
                        for i, s in enumerate(x.shape))
    index = draw(hnp.arrays(np.int64, index_shape, elements=st.integers(0, x.shape[d] - 1)))
    return x, dim, index


def _gather_reference(x, dim, index):
    d = dim % x.ndim
    region = tuple(slice(None) if i == d else slice(0, s) for i, s in enumerate(index.shape))
    return np.take_along_axis(x[region], index, axis=d)


@given(case=gather_cases())
def test_gather(case):
    x, dim, index = case
    expected = _gather_reference(x.numpy(), dim, index)
    assert_close(tg.gather(x, dim, tg.tensor(index)), expected)
    assert_close(x.gather(dim, index), expected)
    (g,) = tg.grad(tg.gather(x, dim, index).sum(), x)
    counts = np.zeros(x.shape)
    d = dim % x.ndim
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[d] = index[pos]
        counts[tuple(target)] += 1.0
    assert_close(g, counts)  # repeated picks accumulate
    check_grads(lambda t: tg.gather(t, dim, index), [x])


def test_gather_matches_pytorch_where_available():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 2))
    index = rng.integers(0, 4, (2, 5, 2))
    ours = f64(x)
    theirs = torch.tensor(x, requires_grad=True)
    upstream = rng.standard_normal((2, 5, 2))
    out = tg.gather(ours, 1, index)
    out_t = torch.gather(theirs, 1, torch.tensor(index))
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy())
    out.backward(tg.tensor(upstream, dtype=tg.float64))
    out_t.backward(torch.tensor(upstream))
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12)


# --- float32 stays float32 --------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda t: t[1:, ::-1], lambda t: t[[0, 0, 1]], lambda t: t[t > 2.0],
    lambda t: t[None, ..., -1], lambda t: tg.gather(t, 1, np.array([[0, 0], [2, 1]])),
], ids=["slices", "int-array", "mask", "none-ellipsis-int", "gather"])
def test_float32_indexing_stays_float32(fn):
    x = f32(np.arange(6.0).reshape(2, 3))
    out = fn(x)
    assert out.dtype == np.float32
    (g,) = tg.grad(out.sum(), x)
    assert g.dtype == np.float32
