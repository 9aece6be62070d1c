"""conv_winograd (F(2x2, 3x3) for dense 3x3 stride-1 convs) pinned to the reference
kernels over hypothesis-drawn shapes (odd and even sizes, inputs smaller than the
kernel, padding of 0-3 on each side, so negative reads and odd tile counts),
through its three kernels directly and through the ops (conv2d, conv_transpose2d,
whose backward runs all three), in float64 to 1e-12 and float32 to 2e-5, with
NaN-filled buffers, both ways: the compiled kernels calling cblas (pieces of two
images, in steps of one or two) and, as without numpy's OpenBLAS GEMM, np.matmul on
Python chunks of one or two images; and twice differentiated in float64."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinygen as tg
from tinygen.backend.numba_kernels import _cblas, chunks
from tinygen.backend.numba_kernels import conv as numba_conv
from tinygen.backend.numba_kernels import conv_winograd as W
from tinygen.backend.reference import conv as R
from tinygen.ops import conv as C
from tinygen.ops.conv_geometry import Call, conv_geometry, kept_taps
from tinygen.testing import gradgradcheck, rel_error

from ._helpers import impl, numba_matches_reference

TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


@st.composite
def configs(draw, max_side=9, max_channels=5, max_batch=3):
    """(x shape, w shape, padding ((top, bottom), (left, right))) of a legal 3x3 conv."""
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    sizes = tuple(draw(st.integers(max(1, 3 - lo - hi), max_side)) for lo, hi in pads)
    cin, cout = draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    return (draw(st.integers(1, max_batch)), cin) + sizes, (cout, cin, 3, 3), pads


# (way, images per step or chunk): the compiled kernels in pieces of two images (a batch
# of 3: a piece of two and one of one) in steps of one image (the first piece adds its
# second step's products to its first's) or two; np.matmul in Python chunks of one or two.
WAYS = [("compiled", 1), ("compiled", 2), ("matmul", 1), ("matmul", 2)]


@pytest.fixture(params=WAYS, ids=[f"{way}-{per}" for way, per in WAYS])
def winograd(request, monkeypatch):
    """Winograd wherever it can serve, one of WAYS, NaN-filled buffers and outputs."""
    way, per = request.param
    if way == "compiled" and _cblas.functions() is None:
        pytest.skip("numpy's BLAS has no ILP64 cblas GEMM")
    if way == "matmul":
        monkeypatch.setattr(_cblas, "_found", [None])
    monkeypatch.setattr(numba_conv, "WINOGRAD", True)
    monkeypatch.setattr(W, "MIN_CHANNELS", 1)
    monkeypatch.setattr(W, "MIN_OUT_SIZE", 1)
    monkeypatch.setattr(W, "_pieces", lambda n, multiply_adds: 2)
    monkeypatch.setattr(W, "_images_per_step", lambda per_image: per)
    monkeypatch.setattr(W, "chunk_ranges", lambda n, *_a, **_k: [
        (s, min(n, s + per)) for s in range(0, n, per)])
    monkeypatch.setattr(W, "_empty", lambda shape, dtype=None: np.full(shape, np.nan, dtype))
    return per


def _geometry(x_shape, w_shape, pads):
    x, w = tg.zeros(*x_shape), tg.zeros(*w_shape)
    geom = conv_geometry(Call("conv2d", x, w), x, w, 1, pads, 1, 1, 2)
    return geom, kept_taps(geom, None)


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(max_examples=40, **SETTINGS)
@given(configs(), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_kernels_match_the_reference(winograd, config, dtype, seed):
    x_shape, w_shape, pads = config
    geom, taps = _geometry(x_shape, w_shape, pads)
    assert W.serves(geom, taps, w_shape[1], w_shape[0])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal((x_shape[0], w_shape[0]) + tuple(geom.out_size)).astype(dtype)
    for fast, ref, args in [(W.forward, R.conv2d_forward, (x, w)),
                            (W.input_grad, R.conv2d_input_grad, (gy, w)),
                            (W.weight_grad, R.conv2d_weight_grad, (x, gy))]:
        got, want = fast(*args, geom, taps), ref(*args, geom, taps)
        assert got.dtype == want.dtype == dtype and got.shape == want.shape
        assert rel_error(got, want) <= TOLERANCE[dtype], fast.__name__


def _compare(fn, inputs):
    numba_matches_reference(fn, inputs, TOLERANCE[np.float64])


@settings(max_examples=15, **SETTINGS)
@given(configs(), st.integers(0, 2**16))
def test_conv2d_and_its_transpose_match_the_reference(winograd, config, seed):
    x_shape, w_shape, pads = config
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.standard_normal(x_shape), requires_grad=True)
    w = tg.tensor(rng.standard_normal(w_shape), requires_grad=True)
    _compare(lambda x, w: C.conv2d(x, w, padding=pads), (x, w))
    # conv_transpose2d of a 3x3 stride-1 conv's output shape: the transpose's forward is
    # the input gradient, its input gradient the forward
    p = (pads[0][0], pads[1][0])
    if min(x_shape[2] + 2 - 2 * p[0], x_shape[3] + 2 - 2 * p[1]) >= 1:
        wt = tg.tensor(rng.standard_normal((x_shape[1], w_shape[0], 3, 3)), requires_grad=True)
        _compare(lambda x, w: C.conv_transpose2d(x, w, padding=p), (x, wt))


@settings(max_examples=6, **SETTINGS)
@given(configs(max_side=5, max_channels=3, max_batch=2), st.integers(0, 2**16))
def test_second_derivatives(winograd, config, seed):
    x_shape, w_shape, pads = config
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.standard_normal(x_shape), requires_grad=True)
    w = tg.tensor(rng.standard_normal(w_shape), requires_grad=True)
    with impl("numba"):
        assert gradgradcheck(lambda x, w: C.conv2d(x, w, padding=pads), (x, w))


@pytest.mark.parametrize("kwargs,w_shape,kept,serves", [
    (dict(padding=1), (4, 4, 3, 3), 9, True),
    (dict(padding=1, stride=2), (4, 4, 3, 3), 9, False),
    (dict(padding=2, dilation=2), (4, 4, 3, 3), 9, False),
    (dict(padding=1, groups=2), (4, 2, 3, 3), 9, False),
    (dict(padding=1), (4, 4, 3, 5), 15, False),
    (dict(padding=1), (4, 4, 3, 3), 5, False),   # a masked 3x3 (PixelCNN's mask B)
])
def test_serves_only_dense_3x3_stride_1_convs(kwargs, w_shape, kept, serves):
    x, w = tg.zeros(2, 4, 16, 16), tg.zeros(*w_shape)
    k = {**dict(stride=1, dilation=1, groups=1), **kwargs}
    geom = conv_geometry(Call("conv2d", x, w), x, w, k["stride"], k["padding"], k["dilation"],
                         k["groups"], 2)
    taps = kept_taps(geom, None)[:kept]
    assert W.serves(geom, taps, 64, 64) == serves
    assert not W.serves(geom, taps, W.MIN_CHANNELS - 1, 64)
    small = conv_geometry(Call("conv2d", x, w), tg.zeros(2, 4, 9, 9), w, k["stride"],
                          k["padding"], k["dilation"], k["groups"], 2)
    assert not W.serves(small, taps, 64, 64)  # outputs under MIN_OUT_SIZE


@pytest.mark.parametrize("gemm_found", [True, False])
def test_runs_its_gemms_from_compiled_code_when_the_gemm_is_found(monkeypatch, gemm_found):
    """With numpy's OpenBLAS GEMM found, the three ops each run one compiled kernel on
    pieces of images (chunks.share_images: no Python per chunk); without it, np.matmul
    chunk by chunk (map_chunks / sum_chunks); the same results either way, bias and
    residual added (several pieces and steps: 5 images, 28 channels, 13x14)."""
    if gemm_found and _cblas.functions() is None:
        pytest.skip("numpy's BLAS has no ILP64 cblas GEMM")
    if not gemm_found:
        monkeypatch.setattr(_cblas, "_found", [None])
    monkeypatch.setattr(W, "_pieces", lambda n, multiply_adds: 2)
    monkeypatch.setattr(W, "_images_per_step", lambda per_image: 2)
    monkeypatch.setattr(W, "_empty", lambda shape, dtype=None: np.full(shape, np.nan, dtype))
    kernels, chunked = [], []
    monkeypatch.setattr(W, "_share", lambda kernel, *a: kernels.append(
        kernel.__name__) or chunks.share_images(kernel, *a))
    monkeypatch.setattr(W, "map_chunks", lambda *a: chunked.append("map") or
                        chunks.map_chunks(*a))
    monkeypatch.setattr(W, "sum_chunks", lambda *a: chunked.append("sum") or
                        chunks.sum_chunks(*a))
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in ((5, 16, 13, 14), (28, 16, 3, 3), (28,))]
    r, g = (tg.tensor(rng.standard_normal((5, 28, 13, 14))) for _ in range(2))
    geom, taps = _geometry((5, 16, 13, 14), (28, 16, 3, 3), ((1, 1), (1, 1)))
    assert numba_conv._path(geom, taps, 16, 28) is W
    results = {}
    for name in ("numba", "reference"):
        with impl(name):
            inputs = [tg.tensor(a, requires_grad=True) for a in arrays]
            y = C.conv2d(*inputs, padding=1, residual=r)
            y.backward(g)
            results[name] = [y.numpy()] + [t.grad.numpy() for t in inputs]
    expected = ["_conv_pieces", "_conv_pieces", "_weight_grad_pieces"]
    assert (sorted(kernels), sorted(chunked)) == \
        ((expected, []) if gemm_found else ([], ["map", "map", "sum"]))
    for got, want in zip(results["numba"], results["reference"]):
        assert rel_error(got, want) <= 1e-12
