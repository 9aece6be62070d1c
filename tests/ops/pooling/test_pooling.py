"""max_pool2d, avg_pool2d and nearest interpolate: finite
differences (first and second order) over hypothesis-drawn configs, reference vs
numba kernels, PyTorch CPU as an outside oracle, the modules, the errors."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import tinygen as tg
from tinygen.backend.numba_kernels import pooling as fast
from tinygen.backend.reference import pooling as ref
from tinygen.nn.pooling import MaxPool2d, AvgPool2d, Upsample
from tinygen.ops.pooling import max_pool2d, avg_pool2d, interpolate
from tinygen.testing import check_grads, f64

from .._impls import at_one_and_two_threads, dtypes, impl, seeds, tensor, tie_free, tolerance


@st.composite
def pool_configs(draw, dilation=True, max_side=5):
    """(input shape, kwargs) for a valid 2-D pool."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    pad = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    ceil_mode = draw(st.booleans())
    min_side = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    h = draw(st.integers(max(1, min_side[0] - 2 * pad[0]), max_side))
    w = draw(st.integers(max(1, min_side[1] - 2 * pad[1]), max_side))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w)
    kwargs = dict(kernel_size=kernel, stride=stride, padding=pad, ceil_mode=ceil_mode)
    if dilation:
        kwargs["dilation"] = dil
    return shape, kwargs


@st.composite
def upsample_configs(draw):
    ndim = draw(st.sampled_from([3, 4]))
    spatial = tuple(draw(st.integers(1, 4)) for _ in range(ndim - 2))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + spatial
    kind = draw(st.sampled_from(["int", "float", "size"]))
    if kind == "int":
        kwargs = dict(scale_factor=draw(st.integers(1, 3)))
    elif kind == "float":
        kwargs = dict(scale_factor=tuple(draw(st.sampled_from([0.5, 1.5, 2.0, 2.5]))
                                         for _ in spatial))
    else:
        kwargs = dict(size=tuple(draw(st.integers(1, 6)) for _ in spatial))
    out = [int(np.floor(s * f)) for s, f in zip(spatial, np.broadcast_to(
        kwargs.get("scale_factor", 1), len(spatial)))]
    assume("size" in kwargs or min(out) >= 1)
    return shape, kwargs


# --- finite differences ------------------------------------------------------------------------
@given(pool_configs(), seeds)
def test_max_pool2d_gradcheck_and_gradgradcheck(config, seed):
    shape, kwargs = config
    x = f64(tie_free(np.random.default_rng(seed), shape))
    with impl("reference"):
        check_grads(lambda t: max_pool2d(t, **kwargs), x)


@given(pool_configs(dilation=False), st.booleans(), st.sampled_from([None, 3]),
       st.sampled_from(["reference", "numba"]), seeds)
def test_avg_pool2d_gradcheck_and_gradgradcheck(config, count_include_pad, divisor, kernels,
                                                 seed):
    """Both kernels: the numba ones sum overlapping or padded windows as a depthwise conv
    of ones (``conv_depthwise``), the tiled ones in loops of their own."""
    shape, kwargs = config
    x = f64(np.random.default_rng(seed).standard_normal(shape))
    with impl(kernels):
        check_grads(lambda t: avg_pool2d(t, count_include_pad=count_include_pad,
                                         divisor_override=divisor, **kwargs), x)


@given(upsample_configs(), seeds)
def test_interpolate_nearest_gradcheck_and_gradgradcheck(config, seed):
    shape, kwargs = config
    x = f64(np.random.default_rng(seed).standard_normal(shape))
    with impl("reference"):
        check_grads(lambda t: interpolate(t, **kwargs), x)


def test_unbatched_inputs_are_accepted():
    x = f64(tie_free(np.random.default_rng(0), (2, 4, 4)))
    check_grads(lambda t: max_pool2d(t, 2), x)
    check_grads(lambda t: avg_pool2d(t, 3, 1, 1), x)
    assert max_pool2d(x, 2).shape == avg_pool2d(x, 2).shape == (2, 2, 2)


# --- reference vs numba --------------------------------------------------------------------------
def _pool_args(shape, kwargs):
    from tinygen.ops.pooling import _pool_geometry, _inv_divisor

    x4 = tg.zeros(*shape)
    kernel, stride, padding, dilation, out_size = _pool_geometry(
        "test", x4, kwargs["kernel_size"], kwargs["stride"], kwargs["padding"],
        kwargs.get("dilation", 1), kwargs["ceil_mode"])
    return kernel, stride, padding, dilation, out_size, _inv_divisor(
        shape[2:], kernel, padding, stride, out_size, True, None)


@given(pool_configs(max_side=9), dtypes, seeds)
def test_numba_max_pool_kernels_match_reference(config, dtype, seed):
    shape, kwargs = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x[..., 0, :2] = 0.25  # ties: the first position wins in both
    kernel, stride, padding, dilation, out_size, _ = _pool_args(shape, kwargs)
    values, idx = fast.max_pool2d_forward(x, kernel, stride, padding, dilation, out_size)
    ref_values, ref_idx = ref.max_pool2d_forward(x, kernel, stride, padding, dilation, out_size)
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(idx, ref_idx)
    g = rng.standard_normal(values.shape).astype(dtype)
    np.testing.assert_allclose(fast.scatter_plane(g, idx, x.shape),
                               ref.scatter_plane(g, idx, x.shape), **tolerance(dtype))
    np.testing.assert_array_equal(fast.gather_plane(x, idx), ref.gather_plane(x, idx))


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 10), st.integers(1, 10), dtypes,
       st.booleans(), seeds)
def test_avg_pool_tiles_match_the_stencil_path(kh, kw, h, w, dtype, ragged, seed):
    """The two paths of avg_pool2d on windows that tile the input (stride == kernel, no
    padding): the tiled loops and the depthwise stencils agree, and leftover
    rows/columns get a zero gradient on both."""
    assume(h >= kh and w >= kw)
    if not ragged:
        h, w = h - h % kh, w - w % kw
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, h, w)).astype(dtype)
    oh, ow = h // kh, w // kw
    inv = rng.uniform(0.1, 1, (oh, ow))
    args = (kh, kw), (kh, kw), (0, 0)
    y = fast.avg_pool2d_forward(x, *args, (oh, ow), inv)
    np.testing.assert_allclose(y, fast._avg_pool2d_stencil(x, *args, (oh, ow), inv),
                               **tolerance(dtype))
    g = rng.standard_normal(y.shape).astype(dtype)
    gx = fast.avg_pool2d_adjoint(g, *args, (h, w), inv)
    np.testing.assert_array_equal(gx, fast._avg_pool2d_adjoint_stencil(g, *args, (h, w), inv))
    assert not gx[:, :, oh * kh:].any() and not gx[:, :, :, ow * kw:].any()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 10), st.integers(2, 10), dtypes,
       st.booleans(), seeds)
def test_max_pool_tiles_equal_the_general_kernel_bit_for_bit(kh, kw, h, w, dtype, nans, seed):
    """The stride == kernel, no padding fast paths (the 2x2 one, checked in every example,
    and any size) make the general kernel's comparisons in its order: ties to the first
    position, NaN wins (the last NaN of a window), rows/columns past the last whole
    window unread."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (2, 3, h, w)).astype(dtype)  # many ties
    if nans:
        x[rng.random(x.shape) < 0.2] = np.nan
    for kh, kw in {(2, 2), (min(kh, h), min(kw, w))}:
        oh, ow = h // kh, w // kw
        values, idx = fast.max_pool2d_forward(x, (kh, kw), (kh, kw), (0, 0), (1, 1), (oh, ow))
        general = np.empty_like(values), np.empty_like(idx)
        fast._max_pool2d(x, kh, kw, kh, kw, 0, 0, 1, 1, *general, 0, 6)  # all 2 * 3 planes
        np.testing.assert_array_equal(values, general[0])
        np.testing.assert_array_equal(idx, general[1])


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 3), st.integers(1, 10), st.integers(1, 10), dtypes, seeds)
def test_numba_pools_in_ceil_mode_with_stride_equal_to_kernel_match_reference(k, h, w, dtype,
                                                                               seed):
    """Windows of stride == kernel whose last one runs past a ragged input (ceil mode) do
    not tile the input: the kernels must not read past its end (they once did)."""
    assume(h >= k and w >= k)
    shape = (2, 3, h, w)
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    kwargs = dict(kernel_size=k, stride=k, padding=0, ceil_mode=True)
    kernel, stride, padding, dilation, out_size, inv = _pool_args(shape, kwargs)
    np.testing.assert_array_equal(
        fast.max_pool2d_forward(x, kernel, stride, padding, dilation, out_size)[1],
        ref.max_pool2d_forward(x, kernel, stride, padding, dilation, out_size)[1])
    y = fast.avg_pool2d_forward(x, kernel, stride, padding, out_size, inv)
    np.testing.assert_allclose(y, ref.avg_pool2d_forward(x, kernel, stride, padding, out_size, inv),
                               **tolerance(dtype))
    g = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(
        fast.avg_pool2d_adjoint(g, kernel, stride, padding, shape[2:], inv),
        ref.avg_pool2d_adjoint(g, kernel, stride, padding, shape[2:], inv), **tolerance(dtype))


@given(pool_configs(dilation=False, max_side=9), dtypes, seeds)
def test_numba_avg_pool_kernels_match_reference(config, dtype, seed):
    shape, kwargs = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    kernel, stride, padding, _, out_size, inv = _pool_args(shape, kwargs)
    y = fast.avg_pool2d_forward(x, kernel, stride, padding, out_size, inv)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ref.avg_pool2d_forward(x, kernel, stride, padding, out_size, inv),
                               **tolerance(dtype))
    g = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(
        fast.avg_pool2d_adjoint(g, kernel, stride, padding, shape[2:], inv),
        ref.avg_pool2d_adjoint(g, kernel, stride, padding, shape[2:], inv), **tolerance(dtype))


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 9), st.integers(1, 9), dtypes, seeds)
def test_numba_upsample_kernels_match_reference(h, w, oh, ow, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, h, w)).astype(dtype)
    rows, cols = np.sort(rng.integers(0, h, oh)), np.sort(rng.integers(0, w, ow))
    np.testing.assert_array_equal(fast.upsample_nearest_forward(x, rows, cols),
                                  ref.upsample_nearest_forward(x, rows, cols))
    g = rng.standard_normal((2, 3, oh, ow)).astype(dtype)
    np.testing.assert_allclose(fast.upsample_nearest_adjoint(g, rows, cols, (h, w)),
                               ref.upsample_nearest_adjoint(g, rows, cols, (h, w)),
                               **tolerance(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ops_give_the_same_results_with_both_kernels(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 7, 6)).astype(dtype)
    ops = [lambda t: max_pool2d(t, 3, 2, 1, ceil_mode=True),
           lambda t: avg_pool2d(t, (3, 2), 2, (1, 0), ceil_mode=True, count_include_pad=False),
           lambda t: interpolate(t, scale_factor=(2, 1.5))]
    for op in ops:
        results = []
        for name in ("reference", "numba"):
            with impl(name):
                t = tensor(x, dtype, True)
                y = op(t)
                (y * y).sum().backward()
                results.append((y.numpy(), t.grad.numpy()))
        for a, b in zip(*results):
            np.testing.assert_allclose(a, b, **tolerance(dtype))


# --- PyTorch CPU ---------------------------------------------------------------------------------
@given(pool_configs(max_side=8), seeds)
@settings(max_examples=10)
def test_max_pool2d_matches_pytorch(config, seed):
    torch = pytest.importorskip("torch")
    shape, kwargs = config
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    x[0, 0, 0, :2] = 0.5  # a tie: the first position wins in both
    t = tensor(x, np.float32, True)
    y, idx = max_pool2d(t, return_indices=True, **kwargs)
    tt = torch.tensor(x, requires_grad=True)
    ty, tidx = torch.nn.functional.max_pool2d(tt, return_indices=True, **kwargs)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    g = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(np.float32)
    y.backward(tensor(g, np.float32))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-6, atol=1e-6)


@given(pool_configs(dilation=False, max_side=8), st.booleans(), st.sampled_from([None, 2]), seeds)
@settings(max_examples=10)
def test_avg_pool2d_matches_pytorch(config, count_include_pad, divisor, seed):
    torch = pytest.importorskip("torch")
    shape, kwargs = config
    x = np.random.default_rng(seed).standard_normal(shape)
    t = f64(x)
    y = avg_pool2d(t, count_include_pad=count_include_pad, divisor_override=divisor, **kwargs)
    tt = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tt, count_include_pad=count_include_pad,
                                        divisor_override=divisor, **kwargs)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(seed + 1).standard_normal(y.shape)
    y.backward(f64(g, False))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12, atol=1e-12)


@given(upsample_configs(), seeds)
@settings(max_examples=10)
def test_interpolate_matches_pytorch(config, seed):
    torch = pytest.importorskip("torch")
    shape, kwargs = config
    x = np.random.default_rng(seed).standard_normal(shape)
    t = f64(x)
    y = interpolate(t, **kwargs)
    tt = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.interpolate(tt, mode="nearest", **kwargs)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    g = np.random.default_rng(seed + 1).standard_normal(y.shape)
    y.backward(f64(g, False))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12, atol=1e-12)


# --- modules -------------------------------------------------------------------------------------
def test_modules(torch):
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6)).astype(np.float32)
    pairs = [(MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
             (AvgPool2d(2, ceil_mode=True), torch.nn.AvgPool2d(2, ceil_mode=True)),
             (Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2)),
             (Upsample(size=(9, 4)), torch.nn.Upsample(size=(9, 4)))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours(tg.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(),
                                   rtol=1e-6, atol=1e-7)
    assert list(MaxPool2d(2).state_dict()) == []
    assert repr(MaxPool2d(2)) == ("MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, "
                                  "ceil_mode=False)")
    assert repr(Upsample(scale_factor=2)) == "Upsample(scale_factor=2.0, mode='nearest')"
    out, idx = MaxPool2d(2, return_indices=True)(tg.tensor(x))
    assert idx.dtype == np.int64 and idx.shape == out.shape


# --- errors --------------------------------------------------------------------------------------
def test_errors_name_the_argument_and_the_shapes():
    x = tg.randn(1, 2, 5, 5)
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 3-D \(C, H, W\) or 4-D.*got shape \(5, 5\)"):
        max_pool2d(tg.randn(5, 5), 2)
    with pytest.raises(ValueError, match=r"max_pool2d: padding should be at most half of kernel "
                                         r"size, but got padding=\(2, 2\) and kernel_size=\(3, 3\)"):
        max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"avg_pool2d: output size is too small: input of shape "
                                         r"\(1, 2, 5, 5\).*kernel_size=\(7, 7\)"):
        avg_pool2d(x, 7)
    with pytest.raises(TypeError, match=r"max_pool2d: kernel_size must be an int or a pair of ints, "
                                        r"got \(2, 2, 2\)"):
        max_pool2d(x, (2, 2, 2))
    with pytest.raises(ValueError, match="avg_pool2d: stride must be positive, got 0"):
        avg_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match="max_pool2d: dilation must be positive"):
        max_pool2d(x, 2, dilation=0)
    with pytest.raises(ValueError, match="divisor_override must be a non-zero int"):
        avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError, match="max_pool2d: input must be float32 or float64, got int64"):
        max_pool2d(tg.zeros(1, 1, 2, 2, dtype=tg.int64), 2)
    with pytest.raises(ValueError, match=r"exactly one of size and scale_factor"):
        interpolate(x)
    with pytest.raises(ValueError, match=r"interpolate: size must have 2 element\(s\).*\(3, 4, 5\)"):
        interpolate(x, size=(3, 4, 5))
    with pytest.raises(ValueError, match="unsupported mode='bilinear'"):
        interpolate(x, scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match=r"interpolate: expected a 3-D \(N, C, L\).*got shape \(5, 5\)"):
        interpolate(tg.randn(5, 5), scale_factor=2)
    with pytest.raises(ValueError, match=r"interpolate: output size \(0, 0\) for an input of shape"):
        interpolate(x, scale_factor=0.1)


@pytest.mark.parametrize("stride, padding, ceil_mode", [(1, 1, False), (2, 1, True)])
def test_avg_pool_stencils_give_the_same_bits_at_one_and_two_threads(monkeypatch, stride,
                                                                       padding, ceil_mode):
    """The depthwise stencils (which also scale by 1 / divisor) share out planes, each
    one thread's: the thread count changes no bit.  Their buffers come NaN-filled, so an
    element left unwritten shows."""
    from tinygen.backend.numba_kernels import chunks, conv_depthwise

    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 1)
    monkeypatch.setattr(conv_depthwise, "_empty", lambda *a, **k: np.full(*a, np.nan, **k))
    rng = np.random.default_rng(0)
    x = tensor(rng.standard_normal((3, 5, 12, 11)), np.float32, requires_grad=True)

    def pool(t):
        return avg_pool2d(t, 3, stride, padding, ceil_mode=ceil_mode, count_include_pad=False)

    with impl("reference"):
        expected = pool(x)
    g = tensor(rng.standard_normal(expected.shape), np.float32)
    expected_gx, = tg.grad(expected, [x], grad_outputs=g)

    def compute():
        y = pool(x)
        return y.numpy(), tg.grad(y, [x], grad_outputs=g)[0].numpy()

    (y1, gx1), (y2, gx2) = at_one_and_two_threads(compute)
    assert np.array_equal(y1, y2) and np.array_equal(gx1, gx2)
    np.testing.assert_allclose(y1, expected.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gx1, expected_gx.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kernels", ["reference", "numba"])
@pytest.mark.parametrize("shape", [(0, 3, 5, 5), (2, 0, 5, 5)])
def test_pools_of_an_empty_batch_are_empty(kernels, shape):
    """An empty batch (or no channels) gives empty outputs and gradients, as in PyTorch,
    on every path (max pooling's gathers and scatters, the tiled and stencil average
    pools): the kernels once reshaped to (N, C, -1), which numpy cannot infer for size
    0."""
    x = tensor(np.zeros(shape), np.float32, requires_grad=True)
    with impl(kernels):
        for pool in (lambda t: max_pool2d(t, 3, 1, 1), lambda t: max_pool2d(t, 2),
                     lambda t: avg_pool2d(t, 3, 1, 1), lambda t: avg_pool2d(t, 2),
                     lambda t: avg_pool2d(t, 3, 2, 1, ceil_mode=True)):
            y = pool(x)
            assert y.shape[:2] == shape[:2] and y.numpy().size == 0
            gx, = tg.grad(y.sum(), [x])
            assert gx.shape == shape
