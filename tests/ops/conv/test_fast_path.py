"""The numba kernels against the numpy reference, and the masked-tap skipping.

Larger random configs than the gradchecks (no finite differences here), in
float32 and float64, for all three Functions (forward, input grad, weight grad)
with and without PixelCNN masks; relative error max|fast - ref| / max|ref|.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
from tinygen.backend.numba_kernels import conv as numba_conv
from tinygen.backend.reference import conv as reference_conv
from tinygen.ops import conv as C
from tinygen.ops import conv_geometry as G
from tinygen.ops import conv_pixelcnn as P
from tinygen.testing import f64, rel_error

from ._helpers import IMPLS, conv_configs, conv_transpose_configs, impl, make_inputs, op_kwargs

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}


def _run_all(fn, inputs, grad_out_seed=0):
    """Forward value and the gradients of every input, for a random upstream."""
    y = fn(*inputs)
    v = tg.tensor(np.random.default_rng(grad_out_seed).standard_normal(y.shape).astype(y.dtype),
                  dtype=y.dtype)
    grads = tg.grad(y, inputs, grad_outputs=v)
    return [y.numpy()] + [g.numpy() for g in grads]


def _compare(fn, inputs, dtype):
    with impl("reference"):
        expected = _run_all(fn, inputs)
    with impl("numba"):
        actual = _run_all(fn, inputs)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype == dtype
        assert rel_error(a, e) <= TOLERANCE[dtype]


def _inputs(config, seed, dtype):
    x, w, b = make_inputs(config, np.random.default_rng(seed), dtype)
    return (x, w) if b is None else (x, w, b)


@settings(max_examples=25)
@given(conv_configs(ndim=2, max_side=12, max_channels=8, max_kernel=5, max_batch=4),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_conv2d_numba_matches_reference(config, dtype, seed):
    kwargs = op_kwargs(config)
    _compare(lambda x, w, b=None: C.conv2d(x, w, b, **kwargs), _inputs(config, seed, dtype), dtype)


@settings(max_examples=15)
@given(conv_transpose_configs(ndim=2, max_side=10, max_channels=8, max_kernel=5, max_batch=4),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_conv_transpose2d_numba_matches_reference(config, dtype, seed):
    kwargs = op_kwargs(config)
    _compare(lambda x, w, b=None: C.conv_transpose2d(x, w, b, **kwargs),
             _inputs(config, seed, dtype), dtype)


@settings(max_examples=10)
@given(conv_configs(ndim=1, max_side=40, max_channels=8, max_kernel=4, max_batch=4),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_conv1d_numba_matches_reference(config, dtype, seed):
    kwargs = op_kwargs(config)
    _compare(lambda x, w, b=None: C.conv1d(x, w, b, **kwargs), _inputs(config, seed, dtype), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("groups_rgb,cin,cout", [(1, 1, 8), (1, 5, 4), (3, 3, 6), (3, 6, 9)])
def test_masked_conv2d_numba_matches_reference(dtype, mask_type, groups_rgb, cin, cout):
    rng = np.random.default_rng(7)
    config = dict(x_shape=(3, cin, 9, 8), w_shape=(cout, cin, 7, 5), bias=True)
    fn = lambda x, w, b: P.masked_conv2d(x, w, b, mask_type=mask_type,  # noqa: E731
                                         groups_rgb=groups_rgb)
    _compare(fn, _inputs(config, int(rng.integers(1000)), dtype), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_pointwise_fast_path_matches_reference(dtype, groups):
    """1x1, stride 1, no padding: a plain matmul (no im2col)."""
    config = dict(x_shape=(3, 8, 5, 7), w_shape=(12, 8 // groups, 1, 1), bias=False)
    calls = []
    original = numba_conv._im2col
    try:
        numba_conv._im2col = lambda *a: calls.append(a) or original(*a)
        _compare(lambda x, w: C.conv2d(x, w, groups=groups), _inputs(config, 1, dtype), dtype)
    finally:
        numba_conv._im2col = original
    assert calls == []  # the 1x1 path never gathers columns


def test_large_parallel_problem_matches():
    """A problem above the parallel threshold (the parallel kernels run)."""
    rng = np.random.default_rng(11)
    config = dict(x_shape=(4, 16, 20, 20), w_shape=(8, 16, 3, 3), bias=True)
    from tinygen.backend.numba_kernels.chunks import PARALLEL_THRESHOLD

    assert 4 * 16 * 9 * 18 * 18 >= PARALLEL_THRESHOLD
    _compare(lambda x, w, b: C.conv2d(x, w, b), _inputs(config, int(rng.integers(99)), np.float64),
             np.float64)


# --- masked taps are skipped ------------------------------------------------------------------
def _spy_taps(monkeypatch, module):
    """Record the number of taps each backend call iterates."""
    seen = []
    for name in ("conv2d_forward", "conv2d_input_grad", "conv2d_weight_grad"):
        original = getattr(module, name)

        def spy(a, b, geom, taps, _original=original, _name=name, **bias):
            seen.append((_name, len(taps)))
            return _original(a, b, geom, taps, **bias)

        monkeypatch.setattr(module, name, spy)
    return seen


@pytest.mark.parametrize("implementation,module", [("reference", reference_conv),
                                                   ("numba", numba_conv)])
@pytest.mark.parametrize("mask_type,taps", [("A", 24), ("B", 25)])
def test_7x7_mask_iterates_only_kept_taps(monkeypatch, implementation, module, mask_type, taps):
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((2, 1, 9, 9)), dtype=tg.float32, requires_grad=True)
    w = tg.tensor(rng.standard_normal((64, 1, 7, 7)), dtype=tg.float32, requires_grad=True)
    seen = _spy_taps(monkeypatch, module)
    windows = []
    if module is reference_conv:
        original_window = reference_conv._window
        monkeypatch.setattr(reference_conv, "_window",
                            lambda *a: windows.append(a[1:3]) or original_window(*a))
    cols_rows = []
    if module is numba_conv:
        original_im2col = numba_conv._im2col
        monkeypatch.setattr(numba_conv, "_im2col",
                            lambda *a: cols_rows.append(original_im2col(*a).shape[0]) or
                            original_im2col(*a))
    with impl(implementation):
        y = P.masked_conv2d(x, w, mask_type=mask_type)
        y.sum().backward()
    assert [n for _, n in seen] == [taps, taps, taps]  # forward, input grad, weight grad
    if windows:  # each of the 3 ops visited exactly the kept taps
        assert len(windows) == 3 * taps
        mask = P.pixelcnn_mask(7, mask_type, 1, 64)
        assert all(mask[0, 0, i, j] for i, j in windows)
    if cols_rows:  # the column matrix holds C * T rows, not C * 49 (per chunk: forward
        # and weight grad gather, one call per chunk of images)
        assert set(cols_rows) == {taps} and len(cols_rows) % 2 == 0


def test_mask_tap_counts():
    for mask_type, taps in (("A", 24), ("B", 25)):
        mask = G.WeightMask(P.pixelcnn_mask(7, mask_type, 3, 6), (6, 3, 7, 7))
        assert len(mask.taps) == taps and not mask.partial
    # RGB grouping: the centre tap is kept for some channel pairs only
    mask = G.WeightMask(P.pixelcnn_mask(7, "A", 3, 6, groups_rgb=3), (6, 3, 7, 7))
    assert len(mask.taps) == 25 and mask.partial


@pytest.mark.parametrize("implementation", ["reference", "numba"])
@pytest.mark.parametrize("groups_rgb", [1, 3])
def test_masked_taps_are_never_read(implementation, groups_rgb):
    """NaN under the mask (weights) and at future pixels (input, read only by
    masked taps) cannot reach the outputs they must not influence: proof that
    masked taps are skipped (a multiply by zero would propagate NaN)."""
    rng = np.random.default_rng(2)
    mask = P.pixelcnn_mask(5, "A", 3, 3, groups_rgb)
    w = rng.standard_normal((3, 3, 5, 5))
    w[~mask] = np.nan
    x = rng.standard_normal((1, 3, 6, 6))
    x[:, :, 3:, :] = np.nan  # rows 3.. are the future of every pixel in rows 0..2
    with impl(implementation):
        y = P.masked_conv2d(tg.tensor(x, dtype=tg.float64), tg.tensor(w, dtype=tg.float64),
                            mask_type="A", groups_rgb=groups_rgb).numpy()
    assert np.isfinite(y[:, :, :3]).all()
    torch = pytest.importorskip("torch")
    expected = torch.nn.functional.conv2d(torch.tensor(np.nan_to_num(x[:, :, :3])),
                                          torch.tensor(np.where(mask, w, 0.0)), padding=2)
    # rows 0..2 of a 'same' conv over rows 0..2 only: row 2 also reads rows 3,4 as
    # padding there -- but mask A never reads rows below, so they agree exactly.
    np.testing.assert_allclose(y[:, :, :3], expected.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("length, dilation", [(1, 4), (1, 9), (2, 7), (3, 2)])
def test_padding_wider_than_the_output_matches_reference(length, dilation):
    """A causal conv of a short sequence pads more than the whole output is long;
    the numba kernels once zero-filled past the end of the column row there
    (heap corruption).  Forward and both gradients must match the reference."""
    rng = np.random.default_rng(length * 10 + dilation)
    x_np, w_np = rng.standard_normal((2, 3, length)), rng.standard_normal((4, 3, 2))
    g_np = rng.standard_normal((2, 4, length))
    results = {}
    for name in IMPLS:
        with impl(name):
            x, w = f64(x_np), f64(w_np)
            y = tg.nn.functional.causal_conv1d(x, w, None, dilation)
            y.backward(tg.tensor(g_np, dtype=tg.float64))
            results[name] = (y.numpy(), x.grad.numpy(), w.grad.numpy())
    for ours, ref in zip(results["numba"], results["reference"]):
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


def test_conv2d_padding_wider_than_a_tiny_input_matches_reference():
    rng = np.random.default_rng(5)
    x_np, w_np = rng.standard_normal((1, 2, 1, 2)), rng.standard_normal((3, 2, 3, 3))
    outs = {}
    for name in IMPLS:
        with impl(name):
            x, w = f64(x_np), f64(w_np)
            y = tg.nn.functional.conv2d(x, w, padding=5, dilation=3)
            y.sum().backward()
            outs[name] = (y.numpy(), x.grad.numpy(), w.grad.numpy())
    for ours, ref in zip(outs["numba"], outs["reference"]):
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


def test_valid_range_is_exactly_the_in_bounds_outputs():
    """The kernels copy inside [lo, hi) and zero-fill the rest of the row, so lo and hi
    must stay within [0, count] (the length-1 causal conv above wrote past the row)."""
    valid_range = getattr(numba_conv._valid_range, "py_func", numba_conv._valid_range)
    for offset in range(-12, 8):
        for stride in (1, 2, 3):
            for size in (1, 2, 5):
                for count in (0, 1, 2, 4):
                    lo, hi = valid_range(offset, stride, size, count)
                    assert 0 <= lo <= hi <= count, (offset, stride, size, count, lo, hi)
                    inside = [q for q in range(count) if 0 <= q * stride + offset < size]
                    assert list(range(lo, hi)) == inside, (offset, stride, size, count)


@settings(max_examples=10, deadline=None)
@given(conv_configs(ndim=2, max_side=10, max_channels=6, max_kernel=4, max_batch=5),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_batch_chunks_match_reference(config, dtype, seed):
    """With a tiny chunk budget every image is its own chunk (and the last chunk is
    shorter): the chunked GEMMs and the accumulated weight gradient still match."""
    kwargs = op_kwargs(config)
    original = numba_conv.CHUNK_BYTES
    numba_conv.CHUNK_BYTES = 1
    try:
        _compare(lambda x, w, b=None: C.conv2d(x, w, b, **kwargs), _inputs(config, seed, dtype),
                 dtype)
    finally:
        numba_conv.CHUNK_BYTES = original


def test_chunks_cover_the_batch_in_order(monkeypatch):
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)  # (with more threads, at least one chunk per thread)
    try:
        assert numba_conv._chunks(5, 10, 4) == [(0, 5)]            # 200 bytes: one chunk
        monkeypatch.setattr(numba_conv, "CHUNK_BYTES", 80)         # two images a chunk
        assert numba_conv._chunks(5, 10, 4) == [(0, 2), (2, 4), (4, 5)]
    finally:
        numba.set_num_threads(previous)
