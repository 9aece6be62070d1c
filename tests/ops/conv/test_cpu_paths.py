"""The numba conv's CPU paths (im2col, conv_rows, conv_direct, conv_winograd) each against the
reference, and through gradgradcheck in float64 (WGAN-GP differentiates conv
gradients), with each path forced on configs that would normally go elsewhere, small
chunks (two images each: a batch of 3 makes a chunk of 2 and one of 1) and, where
numba has two threads, the chunks shared out between threads.  conv_direct runs both
ways: its GEMMs called from compiled code (``_cblas``, pieces of two images) and, as
without numpy's OpenBLAS, through np.matmul chunk by chunk ("direct-matmul"); so does
conv_winograd ("winograd-matmul"), conv_rows ("rows-matmul") and im2col with the images
outermost ("im2col-outer-matmul"; with them innermost it always runs as Python chunks)."""
import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinygen as tg
from tinygen.backend.numba_kernels import _cblas, chunks as chunk_threads
from tinygen.backend.numba_kernels import conv as numba_conv
from tinygen.backend.numba_kernels import conv_depthwise, conv_direct, conv_phase, conv_rows, \
    conv_winograd
from tinygen.ops import conv as C
from tinygen.ops import conv_pixelcnn as P
from tinygen.testing import gradgradcheck

from ._helpers import (conv_configs, conv_transpose_configs, impl, make_inputs,
                       numba_matches_reference, op_kwargs)

TOLERANCE = {np.float32: 2e-5, np.float64: 1e-10}
# path: (ROWS_MIN_K, DIRECT_MIN_CHANNELS, im2col's column order: images innermost?)
# (Winograd serves only dense 3x3 stride-1 convs, from one channel up; the rest of those
# runs goes to conv_rows.)
PATHS = {"im2col": (10**9, 10**9, True), "im2col-outer": (10**9, 10**9, False),
         "im2col-outer-matmul": (10**9, 10**9, False),
         "rows": (0, 10**9, None), "rows-matmul": (0, 10**9, None), "direct": (0, 0, None),
         "direct-matmul": (0, 0, None), "winograd": (0, 10**9, None),
         "winograd-matmul": (0, 10**9, None)}


IMAGES_PER_CHUNK = 2


def _chunks_of_two(n_img, bytes_per_image, budget, threads=None):
    """Chunks of IMAGES_PER_CHUNK images whatever their size: a batch of 3 is cut into
    a chunk of 2 and one of 1, so that both the images side by side within a chunk
    (the im2col columns interleave them) and a short last chunk are exercised."""
    return [(start, min(n_img, start + IMAGES_PER_CHUNK))
            for start in range(0, n_img, IMAGES_PER_CHUNK)]


def _pieces_of_two(n, multiply_adds):
    """The compiled paths (conv_direct, conv_winograd, conv_rows, im2col) cut into pieces of
    IMAGES_PER_CHUNK images, however small the conv (a batch of 3: a piece of 2 and one
    of 1)."""
    return max(1, -(-n // IMAGES_PER_CHUNK))


def _nan_filled(shape, dtype=None):
    """The kernels' buffers and outputs, NaN until written: an element a kernel forgets
    to write shows in the results instead of passing for the zero fresh memory holds."""
    return np.full(shape, np.nan, dtype=dtype)


@pytest.fixture(params=sorted(PATHS))
def path(request, monkeypatch):
    """Force a path wherever it can serve (pointwise convs are always direct), with
    two images a chunk and NaN-filled buffers, on every thread numba has (the same for
    every hypothesis example: the fixture only sets switches, which no example changes)."""
    rows_min_k, direct_min, inner = PATHS[request.param]
    monkeypatch.setattr(numba_conv, "ROWS_MIN_K", rows_min_k)
    monkeypatch.setattr(numba_conv, "ROWS_STRIDED", not request.param.startswith("im2col"))
    if inner is not None:  # both column orders, whatever the layer's shape would pick
        monkeypatch.setattr(numba_conv, "_images_inner", lambda rows, out_channels: inner)
    monkeypatch.setattr(numba_conv, "DIRECT_MIN_CHANNELS", direct_min)
    monkeypatch.setattr(numba_conv, "WINOGRAD", request.param.startswith("winograd"))
    monkeypatch.setattr(numba_conv, "PHASE", False)  # (test_phase.py forces that one)
    monkeypatch.setattr(numba_conv, "DEPTHWISE", False)  # (test_depthwise.py tests it)
    monkeypatch.setattr(conv_winograd, "MIN_CHANNELS", 1)
    monkeypatch.setattr(conv_winograd, "MIN_OUT_SIZE", 1)
    monkeypatch.setattr(numba_conv, "_chunk_ranges", _chunks_of_two)
    for module in (conv_rows, conv_direct, conv_winograd):
        monkeypatch.setattr(module, "chunk_ranges", _chunks_of_two)
    monkeypatch.setattr(conv_direct, "_pieces", _pieces_of_two)
    # (products cut into pieces of a few columns, the last one shorter: _column_pieces)
    monkeypatch.setattr(conv_direct, "PIECE_MULTIPLY_ADDS", 7)
    monkeypatch.setattr(conv_winograd, "_pieces", _pieces_of_two)
    monkeypatch.setattr(conv_rows, "_pieces", _pieces_of_two)
    # (conv_rows' and im2col's compiled paths then run a piece of two images as two
    # steps of one: conv_rows' weight gradient adds the second step's products to the
    # first's)
    monkeypatch.setattr(conv_rows, "CHUNK_BYTES", 1)
    monkeypatch.setattr(numba_conv, "_pieces", _pieces_of_two)
    monkeypatch.setattr(numba_conv, "CHUNK_BYTES", 1)
    if request.param.endswith("-matmul"):
        monkeypatch.setattr(_cblas, "_found", [None])
    for module in (numba_conv, conv_rows, conv_direct, conv_winograd):
        monkeypatch.setattr(module, "_empty", _nan_filled)
    previous = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    yield request.param
    numba.set_num_threads(previous)


def _compare(fn, inputs, dtype):
    numba_matches_reference(fn, inputs, TOLERANCE[dtype], dtype=dtype)


def _inputs(config, seed, dtype=np.float64):
    x, w, b = make_inputs(config, np.random.default_rng(seed), dtype)
    return (x, w) if b is None else (x, w, b)


DTYPES = st.sampled_from([np.float32, np.float64])


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conv_configs(ndim=2, max_side=9, max_channels=6, max_kernel=4, max_batch=3), DTYPES,
       st.integers(0, 2**16))
def test_conv2d_matches_reference(path, config, dtype, seed):
    kwargs = op_kwargs(config)
    _compare(lambda x, w, b=None: C.conv2d(x, w, b, **kwargs), _inputs(config, seed, dtype),
             dtype)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conv_transpose_configs(ndim=2, max_side=7, max_channels=6, max_kernel=4, max_batch=3),
       DTYPES, st.integers(0, 2**16))
def test_conv_transpose2d_matches_reference(path, config, dtype, seed):
    kwargs = op_kwargs(config)
    _compare(lambda x, w, b=None: C.conv_transpose2d(x, w, b, **kwargs),
             _inputs(config, seed, dtype), dtype)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conv_configs(ndim=1, max_side=30, max_channels=6, max_kernel=4, max_batch=3), DTYPES,
       st.integers(0, 2**16))
def test_conv1d_matches_reference(path, config, dtype, seed):
    kwargs = op_kwargs(config)
    _compare(lambda x, w, b=None: C.conv1d(x, w, b, **kwargs), _inputs(config, seed, dtype),
             dtype)


def _with_residual(conv, inputs, dtype, seed):
    """inputs plus a residual of conv's output shape (drawn from ``seed``)."""
    with impl("reference"):
        shape = conv(*inputs).shape
    r = tg.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=dtype,
                  requires_grad=True)
    return inputs + (r,)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conv_configs(ndim=2, max_side=9, max_channels=6, max_kernel=4, max_batch=3), DTYPES,
       st.integers(0, 2**16))
def test_conv2d_with_residual_matches_reference(path, config, dtype, seed):
    """The residual added by each path's chunks (with and without a bias), and its
    gradient, against the reference."""
    kwargs = op_kwargs(config)
    inputs = _inputs(config, seed, dtype)
    n = len(inputs)

    def conv(*a):
        return C.conv2d(*a[:n], **kwargs, residual=a[n] if len(a) > n else None)

    _compare(conv, _with_residual(conv, inputs, dtype, seed + 1), dtype)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conv_configs(ndim=1, max_side=30, max_channels=6, max_kernel=4, max_batch=3), DTYPES,
       st.integers(0, 2**16))
def test_conv1d_with_residual_matches_reference(path, config, dtype, seed):
    kwargs = op_kwargs(config)
    inputs = _inputs(config, seed, dtype)
    n = len(inputs)

    def conv(*a):
        return C.conv1d(*a[:n], **kwargs, residual=a[n] if len(a) > n else None)

    _compare(conv, _with_residual(conv, inputs, dtype, seed + 1), dtype)


@pytest.mark.parametrize("top,bottom", [(1, 0), (0, 2), (3, 1), (7, 0)])
def test_pointwise_conv_with_rows_of_padding_matches_reference(path, top, bottom):
    """A 1x1 conv padded above and below (conv_direct: one offset along H*W), with a
    padding taller than the input too (no output row reads the input)."""
    config = dict(x_shape=(3, 4, 5, 6), w_shape=(5, 4, 1, 1), bias=True)
    _compare(lambda x, w, b: C.conv2d(x, w, b, padding=((top, bottom), (0, 0))),
             _inputs(config, 6), np.float64)


def test_down_shift_conv1x1_is_the_conv_of_the_shifted_input(path):
    rng = np.random.default_rng(8)
    x, w, b = (tg.tensor(rng.standard_normal(shape), dtype=tg.float64, requires_grad=True)
               for shape in ((3, 4, 5, 6), (5, 4, 1, 1), (5,)))
    _compare(lambda x, w, b: P.down_shift_conv1x1(x, w, b), (x, w, b), np.float64)
    with impl("numba"):
        fused = P.down_shift_conv1x1(x, w, b).numpy()
        np.testing.assert_allclose(fused, C.conv2d(P.down_shift(x), w, b).numpy(), rtol=1e-13,
                                   atol=1e-13)


@pytest.mark.parametrize("op", ["masked", "down", "down_right", "causal"])
def test_pixelcnn_and_causal_convs_with_residual_match_reference(path, op):
    x_shape, w_shape = ((3, 4, 11), (6, 4, 2)) if op == "causal" else \
        ((3, 4, 6, 5), (6, 4) + {"masked": (3, 3), "down": (2, 3), "down_right": (1, 2)}[op])
    conv = {"masked": lambda x, w, b, r=None: P.masked_conv2d(x, w, b, "B", residual=r),
            "down": lambda x, w, b, r=None: P.down_shifted_conv2d(x, w, b, residual=r),
            "down_right": lambda x, w, b, r=None: P.down_right_shifted_conv2d(
                x, w, b, include_current=False, residual=r),
            "causal": lambda x, w, b, r=None: C.causal_conv1d(x, w, b, 2, residual=r)}[op]
    inputs = _inputs(dict(x_shape=x_shape, w_shape=w_shape, bias=True), 4)
    _compare(conv, _with_residual(conv, inputs, np.float64, 5), np.float64)


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("kernel", [(3, 3), (7, 5), (5, 1)])
def test_masked_conv2d_matches_reference(path, mask_type, kernel):
    config = dict(x_shape=(3, 4, 8, 7), w_shape=(5, 4) + kernel, bias=True)
    _compare(lambda x, w, b: P.masked_conv2d(x, w, b, mask_type=mask_type),
             _inputs(config, 3), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel,dilation,padding", [
    (3, 1, 1), (2, 3, ((1, 4),)), (4, 2, "same"), (3, 2, ((5, 0),)), (2, 1, ((0, 3),)),
])
def test_padded_conv1d_matches_reference(path, kernel, dilation, padding, dtype):
    """Taps whose window misses the output's first or last positions (padding on either
    side, wider than some taps reach), which the drawn configs meet only now and then."""
    config = dict(x_shape=(3, 4, 11), w_shape=(6, 4, kernel), bias=True)
    _compare(lambda x, w, b: C.conv1d(x, w, b, dilation=dilation, padding=padding),
             _inputs(config, 7, dtype), dtype)


@pytest.mark.parametrize("kernel", [(1, 1), (1, 3)])
def test_one_row_input_padded_above_and_below_matches_reference(path, kernel):
    """A 2-D conv of a single input row with padding above and below: its output has
    several rows, so it is not the 1-D conv the rows path lays on its side (the drawn
    configs found that once: the rows path wrote the (3, 4) output as if it were (4, 3))."""
    config = dict(x_shape=(2, 3, 1, 5), w_shape=(4, 3) + kernel, bias=True)
    _compare(lambda x, w, b: C.conv2d(x, w, b, padding=1), _inputs(config, 3), np.float64)


@pytest.mark.parametrize("dilation", [1, 4])
def test_causal_conv1d_matches_reference(path, dilation):
    config = dict(x_shape=(3, 4, 11), w_shape=(6, 4, 2), bias=False)
    _compare(lambda x, w: C.causal_conv1d(x, w, dilation=dilation), _inputs(config, 5),
             np.float64)


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conv_configs(ndim=2, max_side=4, max_channels=4, max_kernel=3), st.integers(0, 2**16))
def test_second_derivatives(path, config, seed):
    kwargs = op_kwargs(config)
    with impl("numba"):
        assert gradgradcheck(lambda x, w, b=None: C.conv2d(x, w, b, **kwargs),
                             _inputs(config, seed))


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conv_configs(ndim=1, max_side=8, max_channels=4, max_kernel=3), st.integers(0, 2**16))
def test_second_derivatives_1d(path, config, seed):
    """1-D convs (several taps: conv_direct's stacked forward) twice differentiated."""
    kwargs = op_kwargs(config)
    with impl("numba"):
        assert gradgradcheck(lambda x, w, b=None: C.conv1d(x, w, b, **kwargs),
                             _inputs(config, seed))


@pytest.mark.parametrize("args,expected", [
    (dict(x=(2, 64, 6, 6), w=(64, 64, 3, 3)), conv_rows),                    # small 3x3
    (dict(x=(2, 64, 14, 14), w=(64, 64, 3, 3), padding=1), conv_winograd),   # dense 3x3
    (dict(x=(2, 64, 14, 14), w=(64, 64, 3, 3), dilation=2, padding=2), conv_rows),
    (dict(x=(2, 64, 14, 14), w=(64, 32, 3, 3), groups=2), conv_rows),
    (dict(x=(2, 12, 14, 14), w=(12, 12, 3, 3), padding=1), conv_rows),     # narrow 3x3
    (dict(x=(2, 32, 8, 8), w=(64, 32, 4, 4), stride=2, padding=1), conv_phase),  # GAN D
    (dict(x=(2, 1, 8, 8), w=(32, 1, 4, 4), stride=2, padding=1), None),    # GAN D's first
    (dict(x=(2, 32, 9, 9), w=(64, 32, 3, 3), stride=2, padding=1), None),  # strided 3x3
    (dict(x=(2, 1, 8, 8), w=(64, 1, 7, 7), padding=3), None),                # C=1: im2col
    (dict(x=(2, 64, 14, 14), w=(1, 64, 3, 3), padding=1), conv_rows),       # an image head
    (dict(x=(2, 8, 14, 14), w=(1, 8, 5, 5), padding=2), conv_rows),         # narrowing to 1
    (dict(x=(2, 16, 14, 14), w=(4, 16, 3, 3), padding=1), conv_rows),       # narrowing
    (dict(x=(2, 8, 14, 14), w=(4, 8, 3, 3), padding=1), None),     # narrowing, C x kw < 32
    (dict(x=(2, 64, 7, 7), w=(1, 64, 3, 3), padding=1), None),     # narrowing, a small plane
    (dict(x=(2, 64, 200), w=(1, 64, 3), padding=1), conv_rows),             # a 1-D head
    (dict(x=(2, 16, 14, 14), w=(16, 1, 3, 3), padding=1, groups=16), conv_depthwise),
    (dict(x=(2, 32, 9), w=(64, 32, 2), dilation=8, padding=((8, 0),)), conv_direct),
    (dict(x=(2, 32, 5, 5), w=(16, 32, 1, 1)), conv_direct),                  # pointwise
    (dict(x=(2, 32, 5, 5), w=(16, 32, 1, 1), padding=((2, 1), (0, 0))), conv_direct),  # rows
    (dict(x=(2, 32, 5, 5), w=(16, 32, 1, 1), padding=((0, 0), (1, 0))), None),  # across
])
def test_each_layer_shape_takes_its_path(monkeypatch, args, expected):
    """The default thresholds send dense 3x3 stride-1 layers with 16 channels or more and
    outputs of 12x12 or more to conv_winograd, other wide stride-1 layers and narrowing
    ones (half the inputs' channels or fewer, on 12x12 outputs or more) to conv_rows, 1-D
    and pointwise ones to conv_direct, depthwise ones (one input and one output channel
    per group, wider than 1x1) to conv_depthwise, dense 4x4 stride-2 ones with 8 channels
    or more to conv_phase, other narrow and strided ones to im2col (the paths the
    benchmark rows time)."""
    calls = []
    for module in (conv_rows, conv_direct, conv_winograd, conv_phase, conv_depthwise):
        for name in ("forward", "input_grad", "weight_grad"):
            original = getattr(module, name)
            monkeypatch.setattr(module, name, lambda *a, _o=original, _m=module:
                                calls.append(_m) or _o(*a))
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal(args.pop("x")), dtype=tg.float32, requires_grad=True)
    w = tg.tensor(rng.standard_normal(args.pop("w")), dtype=tg.float32, requires_grad=True)
    conv = C.conv1d if x.ndim == 3 else C.conv2d
    with impl("numba"):
        conv(x, w, **args).sum().backward()
    assert calls == ([expected] * 3 if expected is not None else [])


@pytest.mark.parametrize("x_shape,w_shape,padding,groups", [
    ((3, 64, 13, 12), (1, 64, 3, 3), 1, 1), ((3, 8, 12, 14), (1, 8, 5, 5), 2, 1),
    ((3, 16, 14, 14), (4, 16, 3, 3), 0, 1), ((2, 40, 150), (3, 40, 3), 1, 1),
    ((2, 32, 12, 12), (8, 16, 3, 3), 1, 2)])
def test_narrowing_layers_on_conv_rows_match_the_reference(monkeypatch, x_shape, w_shape,
                                                           padding, groups):
    """The narrowing layers the default dispatch sends to conv_rows (an image head
    64 -> 1, odd planes, no padding, 1-D, groups of 16 -> 4): output and both
    gradients equal the reference's, float32 and float64, with a bias."""
    served = []
    for name in ("forward", "input_grad", "weight_grad"):
        original = getattr(conv_rows, name)
        monkeypatch.setattr(conv_rows, name, lambda *a, _o=original, _n=name:
                            served.append(_n) or _o(*a))
    conv = C.conv1d if len(x_shape) == 3 else C.conv2d
    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(len(x_shape) + w_shape[0])
        inputs = [tg.tensor(scale * rng.standard_normal(shape), dtype=dtype, requires_grad=True)
                  for shape, scale in ((x_shape, 1.0), (w_shape, 0.1), (w_shape[:1], 1.0))]
        _compare(lambda x, w, b: conv(x, w, b, padding=padding, groups=groups), inputs,
                 dtype)
    assert sorted(set(served)) == ["forward", "input_grad", "weight_grad"]


def test_im2col_column_order_follows_the_layer_shape():
    """Images innermost in the columns where the column matrix is at least as tall as the
    output (GAN D's second layer: 32 channels x 16 taps for 64 outputs), outermost for
    narrow layers with large outputs (PixelCNN's masked 7x7 on one channel: 24 taps for
    64 outputs)."""
    assert numba_conv._images_inner(32 * 16, 64)
    assert not numba_conv._images_inner(1 * 24, 64)


# --- the chunks' threads ------------------------------------------------------------------
def test_map_chunks_keeps_order_restores_blas_and_raises(monkeypatch):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here")
    previous = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        seen = []
        blas = chunk_threads._blas_functions()
        before = [get() for get, _ in blas]

        def work(slot, start, stop):
            seen.append([get() for get, _ in blas])
            return (slot, start, stop)

        chunks = [(i, i + 1) for i in range(20)]
        results = chunk_threads.map_chunks(work, chunks)
        assert [r[1:] for r in results] == chunks
        assert {r[0] for r in results} <= {0, 1}
        assert all(counts == [1] * len(blas) for counts in seen)  # BLAS on one thread inside
        assert [get() for get, _ in blas] == before      # and back afterwards

        def failing(slot, start, stop):
            if start == 7:
                raise ValueError("chunk 7")

        with pytest.raises(ValueError, match="chunk 7"):
            chunk_threads.map_chunks(failing, chunks)
        assert [get() for get, _ in blas] == before
    finally:
        numba.set_num_threads(previous)


def test_chunk_ranges_cover_the_batch_and_feed_every_thread():
    assert chunk_threads.chunk_ranges(5, 10, 1000, threads=1) == [(0, 5)]
    assert chunk_threads.chunk_ranges(5, 10, 1000, threads=2) == [(0, 3), (3, 5)]
    assert chunk_threads.chunk_ranges(5, 10, 20, threads=1) == [(0, 2), (2, 4), (4, 5)]
    assert chunk_threads.chunk_ranges(3, 10, 1, threads=1) == [(0, 1), (1, 2), (2, 3)]


def test_concurrent_map_chunks_put_blas_back():
    """Two Python threads running convs at once, the second to start finishing last:
    the BLAS thread count is the original one afterwards (not the 1 that the second
    would have saved)."""
    import threading

    if numba.config.NUMBA_NUM_THREADS < 2 or not chunk_threads._blas_functions():
        pytest.skip("needs two numba threads and threadpoolctl")
    blas = chunk_threads._blas_functions()
    before = [get() for get, _ in blas]
    entered, main_inside, done = threading.Event(), threading.Event(), threading.Event()

    def first(slot, start, stop):
        if start == 0:
            entered.set()
            main_inside.wait(timeout=10)

    def second(slot, start, stop):
        if start == 0:
            main_inside.set()
            done.wait(timeout=10)

    def run_first():
        numba.set_num_threads(2)  # numba's count is per thread
        chunk_threads.map_chunks(first, [(0, 1), (1, 2)])
        done.set()

    other = threading.Thread(target=run_first)
    other.start()
    previous = numba.get_num_threads()
    try:
        assert entered.wait(timeout=10)
        numba.set_num_threads(2)
        chunk_threads.map_chunks(second, [(0, 1), (1, 2)])
    finally:
        main_inside.set()
        done.set()
        other.join(timeout=10)
        numba.set_num_threads(previous)
    assert [get() for get, _ in blas] == before


@pytest.mark.parametrize("gemm_found", [True, False])
def test_conv_direct_runs_its_gemms_from_compiled_code_when_the_gemm_is_found(monkeypatch,
                                                                              gemm_found):
    """With numpy's OpenBLAS GEMM found, conv_direct's three ops each run one compiled
    kernel on pieces of images (chunks.share_images: no Python per chunk); without it,
    np.matmul chunk by chunk (map_chunks / sum_chunks), with the same results."""
    if gemm_found and _cblas.functions() is None:
        pytest.skip("numpy's BLAS has no ILP64 cblas GEMM")
    if not gemm_found:
        monkeypatch.setattr(_cblas, "_found", [None])
    monkeypatch.setattr(numba_conv, "DIRECT_MIN_CHANNELS", 0)
    kernels, chunked = [], []
    monkeypatch.setattr(conv_direct, "_share", lambda kernel, *a: kernels.append(
        kernel.__name__) or chunk_threads.share_images(kernel, *a))
    monkeypatch.setattr(conv_direct, "map_chunks", lambda *a: chunked.append("map") or
                        chunk_threads.map_chunks(*a))
    monkeypatch.setattr(conv_direct, "sum_chunks", lambda *a: chunked.append("sum") or
                        chunk_threads.sum_chunks(*a))
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape) for shape in ((3, 6, 17), (5, 6, 2), (5,))]
    r, g = (tg.tensor(rng.standard_normal((3, 5, 17))) for _ in range(2))
    results = {}
    for name in ("numba", "reference"):
        with impl(name):
            inputs = [tg.tensor(a, requires_grad=True) for a in arrays]
            y = C.causal_conv1d(*inputs, 3, residual=r)
            y.backward(g)
            results[name] = [y.numpy()] + [t.grad.numpy() for t in inputs]
    expected = ["_forward_images", "_input_grad_images", "_weight_grad_images"]
    assert (sorted(kernels), sorted(chunked)) == \
        ((expected, []) if gemm_found else ([], ["map", "map", "sum"]))
    for got, want in zip(results["numba"], results["reference"]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gemm_found", [True, False])
@pytest.mark.parametrize("tap", [(0, 0), (1, 0), (2, 0)])
def test_conv_direct_one_kept_tap_of_a_taller_kernel_matches_reference(monkeypatch, gemm_found,
                                                                        tap):
    """One kept tap of a (3, 1) kernel moves whole rows (conv_direct): its weights are
    the kernel's tap i * kw + j, not its first row's."""
    from tinygen.backend.reference import conv as reference
    from tinygen.ops.conv_geometry import Call, conv_geometry
    if not gemm_found:
        monkeypatch.setattr(_cblas, "_found", [None])
    x, w = tg.zeros(2, 3, 5, 4), tg.zeros(6, 3, 3, 1)
    geom = conv_geometry(Call("conv2d", x, w), x, w, 1, ((2, 0), (0, 0)), 1, 1, 2)
    taps = np.array([tap])
    assert conv_direct.serves(geom, taps)
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    gy = rng.standard_normal((2, 6) + tuple(geom.out_size))
    for fast, ref, args in [(conv_direct.forward, reference.conv2d_forward, (x, w)),
                            (conv_direct.input_grad, reference.conv2d_input_grad, (gy, w)),
                            (conv_direct.weight_grad, reference.conv2d_weight_grad, (x, gy))]:
        np.testing.assert_allclose(fast(*args, geom, taps), ref(*args, geom, taps),
                                   rtol=1e-12, atol=1e-12, err_msg=fast.__name__)


@pytest.mark.parametrize("small_mk,piece", [(0, 1 << 19), (2048, 1 << 19), (2048, 1), (2048, 5)])
@pytest.mark.parametrize("args", [
    dict(x=(3, 4, 37), w=(5, 4, 1)),                                  # pointwise
    dict(x=(3, 4, 37), w=(5, 4, 2), dilation=3, padding=((3, 0),)),   # causal, two taps
    dict(x=(2, 4, 6, 5), w=(6, 2, 1, 1), groups=2),                   # pointwise, grouped
])
def test_conv_direct_column_pieces_match_reference(monkeypatch, small_mk, piece, args):
    """conv_direct's products of few multiply-adds per output cut into pieces of
    columns, the weights read transposed (``_column_pieces``): one call per product
    (SMALL_MK 0, the weights as stored), pieces of many columns, one column, five
    (the last shorter); the same results as the reference."""
    from tinygen.backend.reference import conv as reference
    from tinygen.ops.conv_geometry import Call, conv_geometry, kept_taps
    if _cblas.functions() is None:
        pytest.skip("numpy's BLAS has no ILP64 cblas GEMM")
    monkeypatch.setattr(conv_direct, "SMALL_MK", small_mk)
    monkeypatch.setattr(conv_direct, "PIECE_MULTIPLY_ADDS", piece)
    monkeypatch.setattr(conv_direct, "_empty", _nan_filled)
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(args["x"]), rng.standard_normal(args["w"])
    t, u = tg.tensor(x), tg.tensor(w)
    geom = conv_geometry(Call("conv", t, u), t, u, 1, args.get("padding", 0),
                         args.get("dilation", 1), args.get("groups", 1), x.ndim - 2)
    taps = kept_taps(geom, None)
    if x.ndim == 3:     # (a 1-D conv reaches the kernels as one of height 1)
        x, w = x[:, :, None], w[:, :, None]
    assert conv_direct.serves(geom, taps)
    gy = rng.standard_normal((x.shape[0], w.shape[0]) + tuple(geom.out_size))
    transposed, columns = conv_direct._column_pieces(5, 8, 37)
    assert transposed == (small_mk > 0) and columns == (37 if piece > 1000 or not small_mk
                                                        else -(-37 // -(-40 * 37 // piece)))
    for fast, ref, a in [(conv_direct.forward, reference.conv2d_forward, (x, w)),
                         (conv_direct.input_grad, reference.conv2d_input_grad, (gy, w)),
                         (conv_direct.weight_grad, reference.conv2d_weight_grad, (x, gy))]:
        np.testing.assert_allclose(fast(*a, geom, taps), ref(*a, geom, taps),
                                   rtol=1e-12, atol=1e-12, err_msg=fast.__name__)


@pytest.mark.parametrize("gemm_found", [True, False])
def test_conv_rows_runs_its_gemms_from_compiled_code_when_the_gemm_is_found(monkeypatch,
                                                                            gemm_found):
    """With numpy's OpenBLAS GEMM found, conv_rows' forward, its stride-1 input gradient
    (a forward) and its weight gradient each run one compiled kernel on pieces of images
    (chunks.share_images: no Python per chunk); without it, np.matmul chunk by chunk
    (map_chunks / sum_chunks), with the same results (a 3x3 mask B conv: kernel rows of
    three and two kept taps; a bias and a residual; pieces of two images run as steps of
    one)."""
    if gemm_found and _cblas.functions() is None:
        pytest.skip("numpy's BLAS has no ILP64 cblas GEMM")
    if not gemm_found:
        monkeypatch.setattr(_cblas, "_found", [None])
    monkeypatch.setattr(numba_conv, "ROWS_MIN_K", 0)
    monkeypatch.setattr(numba_conv, "WINOGRAD", False)
    monkeypatch.setattr(conv_rows, "_pieces", _pieces_of_two)
    monkeypatch.setattr(conv_rows, "CHUNK_BYTES", 1)
    monkeypatch.setattr(numba_conv, "_pieces", _pieces_of_two)
    monkeypatch.setattr(numba_conv, "CHUNK_BYTES", 1)
    monkeypatch.setattr(conv_rows, "_empty", _nan_filled)
    kernels, chunked = [], []
    monkeypatch.setattr(conv_rows, "_share", lambda kernel, *a: kernels.append(
        kernel.__name__) or chunk_threads.share_images(kernel, *a))
    monkeypatch.setattr(conv_rows, "map_chunks", lambda *a: chunked.append("map") or
                        chunk_threads.map_chunks(*a))
    monkeypatch.setattr(conv_rows, "sum_chunks", lambda *a: chunked.append("sum") or
                        chunk_threads.sum_chunks(*a))
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape) for shape in ((5, 6, 9, 7), (8, 6, 3, 3), (8,))]
    r, g = (tg.tensor(rng.standard_normal((5, 8, 9, 7))) for _ in range(2))
    results = {}
    for name in ("numba", "reference"):
        with impl(name):
            inputs = [tg.tensor(a, requires_grad=True) for a in arrays]
            y = P.masked_conv2d(*inputs, "B", padding=1, residual=r)
            y.backward(g)
            results[name] = [y.numpy()] + [t.grad.numpy() for t in inputs]
    expected = ["_forward_pieces", "_forward_pieces", "_weight_grad_pieces"]
    assert (sorted(kernels), sorted(chunked)) == \
        ((expected, []) if gemm_found else ([], ["map", "map", "sum"]))
    for got, want in zip(results["numba"], results["reference"]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gemm_found", [True, False])
def test_im2col_runs_its_gemms_from_compiled_code_when_the_gemm_is_found(monkeypatch,
                                                                         gemm_found):
    """With numpy's OpenBLAS GEMM found, a narrow layer on the im2col path (the columns'
    images outermost: a GAN's first 1 -> 32 4x4 stride-2 layer) runs each op as one
    compiled kernel on pieces of images (chunks.share_images: no Python per chunk;
    here 2 groups of 16 column rows for 24 outputs each); without it, np.matmul
    chunk by chunk (map_chunks / sum_chunks), with the same results (a bias and a
    residual, pieces of two images run as steps of one)."""
    if gemm_found and _cblas.functions() is None:
        pytest.skip("numpy's BLAS has no ILP64 cblas GEMM")
    if not gemm_found:
        monkeypatch.setattr(_cblas, "_found", [None])
    monkeypatch.setattr(numba_conv, "_pieces", _pieces_of_two)
    monkeypatch.setattr(numba_conv, "CHUNK_BYTES", 1)
    monkeypatch.setattr(numba_conv, "_empty", _nan_filled)
    kernels, chunked = [], []
    monkeypatch.setattr(numba_conv, "_share", lambda kernel, *a: kernels.append(
        kernel.__name__) or chunk_threads.share_images(kernel, *a))
    monkeypatch.setattr(numba_conv, "_map_chunks", lambda *a: chunked.append("map") or
                        chunk_threads.map_chunks(*a))
    monkeypatch.setattr(numba_conv, "_sum_chunks", lambda *a: chunked.append("sum") or
                        chunk_threads.sum_chunks(*a))
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape) for shape in ((5, 2, 12, 11), (48, 1, 4, 4), (48,))]
    r, g = (tg.tensor(rng.standard_normal((5, 48, 6, 5))) for _ in range(2))
    results = {}
    for name in ("numba", "reference"):
        with impl(name):
            inputs = [tg.tensor(a, requires_grad=True) for a in arrays]
            y = C.conv2d(*inputs, stride=2, padding=1, groups=2, residual=r)
            y.backward(g)
            results[name] = [y.numpy()] + [t.grad.numpy() for t in inputs]
    expected = ["_forward_pieces", "_input_grad_pieces", "_weight_grad_pieces"]
    assert (sorted(kernels), sorted(chunked)) == \
        ((expected, []) if gemm_found else ([], ["map", "map", "sum"]))
    for got, want in zip(results["numba"], results["reference"]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
