"""Shape family: reshape/view, transpose/permute, expand/broadcast_to, squeeze/unsqueeze,
flatten, concatenate/stack, split/chunk, pad (constant, reflect, replicate, circular).

These ops move data without arithmetic, so numpy is an exact reference for the
values, and gradcheck/gradgradcheck check that each backward is the inverse
movement (and that the inverse's own backward is right).
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygen as tg
from tinygen.testing import assert_close, check_grads, f64, strategies as tst

from ._helpers import f32, small_shapes


def _shapes_with_size(n, max_dims=3):
    """Every shape of up to ``max_dims`` dims with ``n`` elements."""
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    out = [()] if n == 1 else []
    for dims in range(1, max_dims + 1):
        for combo in itertools.product(divisors, repeat=dims):
            if int(np.prod(combo)) == n:
                out.append(combo)
    return out


@st.composite
def reshape_cases(draw):
    x = draw(tst.tensors(small_shapes(), requires_grad=True))
    target = draw(st.sampled_from(_shapes_with_size(x.numel())))
    if target and draw(st.booleans()):  # let reshape infer one size
        i = draw(st.integers(0, len(target) - 1))
        return x, target, target[:i] + (-1,) + target[i + 1:]
    return x, target, target


@pytest.mark.parametrize("method", ["reshape", "view"])
@given(case=reshape_cases())
def test_reshape_and_view(method, case):
    x, target, request = case
    out = getattr(x, method)(request)
    assert_close(out, x.numpy().reshape(target))
    assert_close(getattr(x, method)(*request) if request else out, x.numpy().reshape(target))
    check_grads(lambda t: getattr(tg, method)(t, request), [x])


@st.composite
def transpose_cases(draw):
    x = draw(tst.tensors(small_shapes(min_dims=1), requires_grad=True))
    dim0 = draw(st.integers(-x.ndim, x.ndim - 1))
    dim1 = draw(st.integers(-x.ndim, x.ndim - 1))
    return x, dim0, dim1


@given(case=transpose_cases())
def test_transpose(case):
    x, dim0, dim1 = case
    out = x.transpose(dim0, dim1)
    assert_close(out, np.swapaxes(x.numpy(), dim0, dim1))
    check_grads(lambda t: tg.transpose(t, dim0, dim1), [x])


@st.composite
def permute_cases(draw):
    shapes = st.one_of(small_shapes(), tst.shapes(min_dims=4, max_dims=4, max_side=2))
    x = draw(tst.tensors(shapes, requires_grad=True))
    dims = tuple(draw(st.permutations(range(x.ndim))))
    if draw(st.booleans()):  # negative axes name the same dims
        dims = tuple(d - x.ndim for d in dims)
    return x, dims


@given(case=permute_cases())
def test_permute_and_T(case):
    x, dims = case
    assert_close(x.permute(dims), np.transpose(x.numpy(), dims))
    assert_close(x.permute(*dims) if dims else x.permute(dims), np.transpose(x.numpy(), dims))
    assert_close(x.T, x.numpy().T)
    check_grads(lambda t: tg.permute(t, dims), [x])


@pytest.mark.parametrize("dims", list(itertools.permutations(range(3))) + [(1, 2, 3, 0), (2, 3, 0, 1),
                                                                         (3, 1, 0, 2)])
def test_permute_gradient_is_the_inverse_permutation(dims):
    # Cyclic permutations are not their own inverse (swaps are): backward must undo them.
    rng = np.random.default_rng(0)
    shape = (2, 3, 4, 5)[:len(dims)]
    x = f64(rng.standard_normal(shape))
    out = x.permute(dims)
    assert_close(out, np.transpose(x.numpy(), dims))
    upstream = rng.standard_normal(out.shape)
    (g,) = tg.grad(out, x, grad_outputs=tg.tensor(upstream, dtype=tg.float64))
    assert_close(g, np.transpose(upstream, np.argsort(dims)))
    check_grads(lambda t: t.permute(dims), [f64(rng.standard_normal((2,) * len(dims)))])


@st.composite
def expand_cases(draw):
    x = draw(tst.tensors(small_shapes(max_side=2), requires_grad=True))
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=1)))
    sizes, shape = list(lead), list(lead)
    for s in x.shape:
        if s == 1:
            n = draw(st.integers(1, 3))
            sizes.append(draw(st.sampled_from([n, -1])) if n == 1 else n)
            shape.append(n)
        else:
            sizes.append(draw(st.sampled_from([s, -1])))
            shape.append(s)
    return x, tuple(sizes), tuple(shape)


@given(case=expand_cases())
def test_expand(case):
    x, sizes, shape = case
    assert_close(x.expand(sizes), np.broadcast_to(x.numpy(), shape))
    check_grads(lambda t: tg.expand(t, sizes), [x])


@given(data=st.data())
def test_broadcast_to(data):
    shape_x, other = data.draw(tst.broadcastable_shapes(max_side=3))
    target = np.broadcast_shapes(shape_x, other)
    x = data.draw(tst.tensors(shape_x, requires_grad=True))
    assert_close(x.broadcast_to(target), np.broadcast_to(x.numpy(), target))
    check_grads(lambda t: tg.broadcast_to(t, target), [x])
    # its adjoint, sum_to, is checked on the way back
    check_grads(lambda t: tg.sum_to(tg.broadcast_to(t, target) * 2.0, shape_x), [x])


@st.composite
def squeeze_cases(draw):
    shape = draw(small_shapes(max_side=2))
    x = draw(tst.tensors(shape, requires_grad=True))
    axis = draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1))) if x.ndim else None
    return x, axis


@given(case=squeeze_cases())
def test_squeeze(case):
    x, axis = case
    if axis is None:
        expected = np.squeeze(x.numpy())
    elif x.shape[axis] == 1:
        expected = np.squeeze(x.numpy(), axis)
    else:  # like PyTorch: squeezing a dimension that is not 1 leaves it alone
        expected = x.numpy()
    assert_close(x.squeeze(axis), expected)
    check_grads(lambda t: tg.squeeze(t, axis), [x])


@st.composite
def unsqueeze_cases(draw):
    x = draw(tst.tensors(small_shapes(), requires_grad=True))
    return x, draw(st.integers(-x.ndim - 1, x.ndim))


@given(case=unsqueeze_cases())
def test_unsqueeze(case):
    x, axis = case
    assert_close(x.unsqueeze(axis), np.expand_dims(x.numpy(), axis))
    check_grads(lambda t: tg.unsqueeze(t, axis), [x])


@st.composite
def flatten_cases(draw):
    x = draw(tst.tensors(small_shapes(min_dims=1), requires_grad=True))
    start = draw(st.integers(0, x.ndim - 1))
    end = draw(st.integers(start, x.ndim - 1))
    # negative spellings of the same dims
    start_arg = start - x.ndim if draw(st.booleans()) else start
    end_arg = end - x.ndim if draw(st.booleans()) else end
    return x, start, end, start_arg, end_arg


@given(case=flatten_cases())
def test_flatten(case):
    x, start, end, start_arg, end_arg = case
    shape = x.shape[:start] + (int(np.prod(x.shape[start:end + 1])),) + x.shape[end + 1:]
    assert_close(x.flatten(start_arg, end_arg), x.numpy().reshape(shape))
    check_grads(lambda t: tg.flatten(t, start_arg, end_arg), [x])


def test_flatten_defaults_and_zero_dim():
    x = f64(np.arange(24.0).reshape(2, 3, 4))
    assert_close(x.flatten(), np.arange(24.0))
    assert_close(tg.flatten(x, 1), np.arange(24.0).reshape(2, 12))
    assert_close(f64(5.0).flatten(), [5.0])


# --- joining and splitting -------------------------------------------------------------------------
@st.composite
def concatenate_cases(draw):
    base = draw(small_shapes(min_dims=1))
    axis = draw(st.integers(-len(base), len(base) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    tensors = []
    for n in sizes:
        shape = list(base)
        shape[axis] = n
        tensors.append(draw(tst.tensors(tuple(shape), requires_grad=True)))
    return tensors, axis


@given(case=concatenate_cases())
def test_concatenate(case):
    tensors, axis = case
    expected = np.concatenate([t.numpy() for t in tensors], axis=axis)
    assert_close(tg.concatenate(tensors, axis), expected)
    assert_close(tg.cat(tensors, axis=axis), expected)
    check_grads(lambda *ts: tg.concatenate(list(ts), axis), tensors)


@st.composite
def stack_cases(draw):
    shape = draw(small_shapes(max_dims=2))
    k = draw(st.integers(1, 3))
    tensors = [draw(tst.tensors(shape, requires_grad=True)) for _ in range(k)]
    return tensors, draw(st.integers(-len(shape) - 1, len(shape)))


@given(case=stack_cases())
def test_stack(case):
    tensors, axis = case
    assert_close(tg.stack(tensors, axis), np.stack([t.numpy() for t in tensors], axis=axis))
    check_grads(lambda *ts: tg.stack(list(ts), axis), tensors)


@st.composite
def split_cases(draw):
    x = draw(tst.tensors(small_shapes(min_dims=1, max_side=4), requires_grad=True))
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[axis]
    if draw(st.booleans()):
        return x, draw(st.integers(1, n + 1)), axis
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
    sections = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    return x, sections, axis


@given(case=split_cases())
def test_split(case):
    x, size_or_sections, axis = case
    n = x.shape[axis]
    if isinstance(size_or_sections, int):
        bounds = list(range(size_or_sections, n, size_or_sections))
    else:
        bounds = list(np.cumsum(size_or_sections)[:-1])
    expected = np.split(x.numpy(), bounds, axis=axis)
    parts = tg.split(x, size_or_sections, axis)
    assert len(parts) == len(expected)
    for part, ref in zip(parts, expected):
        assert_close(part, ref)
    check_grads(lambda t: tg.split(t, size_or_sections, axis), [x])


@given(data=st.data())
def test_chunk(data):
    x = data.draw(tst.tensors(small_shapes(min_dims=1, max_side=4), requires_grad=True))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    chunks = data.draw(st.integers(1, 4))
    n = x.shape[axis]
    size = -(-n // chunks)  # PyTorch: chunks of ceil(n / chunks), the last may be smaller
    expected = np.split(x.numpy(), list(range(size, n, size)), axis=axis)
    parts = tg.chunk(x, chunks, axis)
    assert len(parts) == len(expected) <= chunks
    for part, ref in zip(parts, expected):
        assert_close(part, ref)
    check_grads(lambda t: tg.chunk(t, chunks, axis), [x])


# --- padding --------------------------------------------------------------------------------------------
NUMPY_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
              "circular": "wrap"}


@st.composite
def pad_cases(draw, mode):
    x = draw(tst.tensors(small_shapes(min_dims=1, max_side=3), requires_grad=True))
    n_padded = draw(st.integers(1, x.ndim))
    pad, widths = [], [(0, 0)] * x.ndim
    for i in range(n_padded):  # PyTorch order: last dimension first
        size = x.shape[x.ndim - 1 - i]
        limit = {"constant": 2, "replicate": 2, "reflect": size - 1, "circular": size}[mode]
        lo, hi = draw(st.integers(0, limit)), draw(st.integers(0, limit))
        pad += [lo, hi]
        widths[x.ndim - 1 - i] = (lo, hi)
    return x, tuple(pad), tuple(widths)


@pytest.mark.parametrize("mode", list(NUMPY_MODE))
@given(data=st.data())
def test_pad(mode, data):
    x, pad, widths = data.draw(pad_cases(mode))
    kwargs = dict(constant_values=0.5) if mode == "constant" else {}
    expected = np.pad(x.numpy(), widths, mode=NUMPY_MODE[mode], **kwargs)
    value = dict(value=0.5) if mode == "constant" else {}
    assert_close(tg.pad(x, pad, mode=mode, **value), expected)
    check_grads(lambda t: tg.pad(t, pad, mode=mode, **value), [x])


def test_reflect_pad_gradient_accumulates_on_reflected_elements():
    x = f64([1.0, 2.0, 3.0, 4.0])
    out = tg.pad(x, (2, 2), mode="reflect")  # [3, 2, 1, 2, 3, 4, 3, 2]
    assert_close(out, [3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0])
    out.sum().backward()
    assert_close(x.grad, [1.0, 3.0, 3.0, 1.0])


def test_pad_matches_pytorch_where_available():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 3, 4))
    for mode in ["constant", "reflect", "replicate", "circular"]:
        pad = (1, 2, 2, 0)
        ours = tg.pad(f64(x), pad, mode=mode).numpy()
        theirs = torch.nn.functional.pad(torch.tensor(x), pad, mode=mode).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=0, err_msg=mode)


# --- float32 stays float32 -------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda t: t.reshape(3, 2), lambda t: t.transpose(0, 1), lambda t: t.permute(1, 0),
    lambda t: t.expand(2, 2, 3), lambda t: t.broadcast_to((4, 2, 3)), lambda t: t.unsqueeze(1),
    lambda t: t.unsqueeze(0).squeeze(), lambda t: t.flatten(),
    lambda t: tg.concatenate([t, t], 1), lambda t: tg.stack([t, t], 0),
    lambda t: tg.split(t, 2, 1)[0], lambda t: tg.chunk(t, 2, 0)[1],
    lambda t: tg.pad(t, (1, 1)), lambda t: tg.pad(t, (1, 1), mode="reflect"),
    lambda t: tg.pad(t, (1, 1, 1, 0), mode="replicate"),
    lambda t: tg.pad(t, (2, 1), mode="circular"),
])
def test_float32_shape_ops_stay_float32(fn):
    x = f32(np.arange(6.0).reshape(2, 3))
    out = fn(x)
    assert out.dtype == np.float32
    (g,) = tg.grad(out.sum(), x)
    assert g.dtype == np.float32
