"""conv_phase (Winograd F(4x4, 2x2) over the phase planes of dense 4x4 stride-2 convs)
pinned to the reference kernels over hypothesis-drawn shapes (odd and even sizes,
inputs smaller than the kernel, padding of 0-3 on each side, asymmetric), through its
three kernels directly and through the ops (conv2d, conv_transpose2d, whose backward
runs all three), in float64 to 1e-12 and float32 to 2e-5 (the input gradient, on F(2x2, 2x2),
to 2e-6), with NaN-filled buffers, both ways: the compiled kernels calling cblas (pieces
of two images, in steps of one or two) and, as without numpy's OpenBLAS GEMM, np.matmul
on Python chunks of two images; and twice differentiated in float64."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinygen as tg
from tinygen.backend.numba_kernels import _cblas, chunks
from tinygen.backend.numba_kernels import conv as numba_conv
from tinygen.backend.numba_kernels import conv_phase as P
from tinygen.backend.reference import conv as R
from tinygen.ops import conv as C
from tinygen.ops.conv_geometry import Call, conv_geometry, kept_taps
from tinygen.testing import gradgradcheck, rel_error

from ._helpers import impl, numba_matches_reference

TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


@st.composite
def configs(draw, max_side=13, max_channels=5, max_batch=3):
    """(x shape, w shape, padding ((top, bottom), (left, right))) of a legal 4x4 stride-2 conv."""
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    sizes = tuple(draw(st.integers(max(1, 4 - lo - hi), max_side)) for lo, hi in pads)
    cin, cout = draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    return (draw(st.integers(1, max_batch)), cin) + sizes, (cout, cin, 4, 4), pads


# (way, images per step or chunk): the compiled kernels in pieces of two images (a batch
# of 3: a piece of two and one of one) in steps of one image (the first piece adds its
# second step's products to its first's) or two; np.matmul in Python chunks of two.
WAYS = [("compiled", 1), ("compiled", 2), ("matmul", 2)]


@pytest.fixture(params=WAYS, ids=[f"{way}-{per}" for way, per in WAYS])
def phase(request, monkeypatch):
    """The phase path wherever it can serve, one of WAYS, NaN-filled buffers and
    outputs."""
    way, per = request.param
    if way == "compiled" and _cblas.functions() is None:
        pytest.skip("numpy's BLAS has no ILP64 cblas GEMM")
    if way == "matmul":
        monkeypatch.setattr(_cblas, "_found", [None])
    monkeypatch.setattr(numba_conv, "PHASE", True)
    monkeypatch.setattr(P, "MIN_CHANNELS", 1)
    monkeypatch.setattr(P, "_pieces", lambda n, multiply_adds: 2)
    monkeypatch.setattr(P, "_images_per_step", lambda tiles, columns=None: per)
    monkeypatch.setattr(P, "chunk_ranges", lambda n, *_a, **_k: [
        (s, min(n, s + per)) for s in range(0, n, per)])
    monkeypatch.setattr(P, "_empty", lambda shape, dtype=None: np.full(shape, np.nan, dtype))
    return per


def _geometry(x_shape, w_shape, pads):
    x, w = tg.zeros(*x_shape), tg.zeros(*w_shape)
    geom = conv_geometry(Call("conv2d", x, w), x, w, 2, pads, 1, 1, 2)
    return geom, kept_taps(geom, None)


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(max_examples=40, **SETTINGS)
@given(configs(), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_kernels_match_the_reference(phase, config, dtype, seed):
    x_shape, w_shape, pads = config
    geom, taps = _geometry(x_shape, w_shape, pads)
    assert P.serves(geom, taps, w_shape[1], w_shape[0])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal((x_shape[0], w_shape[0]) + tuple(geom.out_size)).astype(dtype)
    for fast, ref, args in [(P.forward, R.conv2d_forward, (x, w)),
                            (P.input_grad, R.conv2d_input_grad, (gy, w)),
                            (P.weight_grad, R.conv2d_weight_grad, (x, gy))]:
        got, want = fast(*args, geom, taps), ref(*args, geom, taps)
        assert got.dtype == want.dtype == dtype and got.shape == want.shape
        tolerance = TOLERANCE[dtype] / (10 if fast is P.input_grad else 1)
        assert rel_error(got, want) <= tolerance, fast.__name__


def test_the_gan_layer_matches_the_reference(phase):
    """GAN D's second layer's shape (channels past one SIMD vector, several chunks)."""
    geom, taps = _geometry((5, 32, 14, 14), (64, 32, 4, 4), ((1, 1), (1, 1)))
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((5, 32, 14, 14)), rng.standard_normal((64, 32, 4, 4))
    gy = rng.standard_normal((5, 64, 7, 7))
    for fast, ref, args in [(P.forward, R.conv2d_forward, (x, w)),
                            (P.input_grad, R.conv2d_input_grad, (gy, w)),
                            (P.weight_grad, R.conv2d_weight_grad, (x, gy))]:
        assert rel_error(fast(*args, geom, taps), ref(*args, geom, taps)) <= 1e-12


def _compare(fn, inputs):
    numba_matches_reference(fn, inputs, TOLERANCE[np.float64])


@settings(max_examples=15, **SETTINGS)
@given(configs(), st.integers(0, 2**16))
def test_conv2d_and_its_transpose_match_the_reference(phase, config, seed):
    x_shape, w_shape, pads = config
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.standard_normal(x_shape), requires_grad=True)
    w = tg.tensor(rng.standard_normal(w_shape), requires_grad=True)
    _compare(lambda x, w: C.conv2d(x, w, stride=2, padding=pads), (x, w))
    # conv_transpose2d with the same geometry: its forward is the input gradient
    p = (pads[0][0], pads[1][0])
    wt = tg.tensor(rng.standard_normal((x_shape[1], w_shape[0], 4, 4)), requires_grad=True)
    if min(2 * (s - 1) - 2 * q + 4 for s, q in zip(x_shape[2:], p)) >= 1:
        _compare(lambda x, w: C.conv_transpose2d(x, w, stride=2, padding=p), (x, wt))


@settings(max_examples=6, **SETTINGS)
@given(configs(max_side=6, max_channels=3, max_batch=2), st.integers(0, 2**16))
def test_second_derivatives(phase, config, seed):
    x_shape, w_shape, pads = config
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.standard_normal(x_shape), requires_grad=True)
    w = tg.tensor(rng.standard_normal(w_shape), requires_grad=True)
    with impl("numba"):
        assert gradgradcheck(lambda x, w: C.conv2d(x, w, stride=2, padding=pads), (x, w))


@pytest.mark.parametrize("kwargs,w_shape,kept,serves", [
    (dict(padding=1, stride=2), (8, 8, 4, 4), 16, True),    # (channels given below)
    (dict(padding=1, stride=1), (8, 8, 4, 4), 16, False),
    (dict(padding=1, stride=2), (8, 8, 3, 3), 9, False),
    (dict(padding=1, stride=(2, 1)), (8, 8, 4, 4), 16, False),
    (dict(padding=2, stride=2, dilation=2), (8, 8, 4, 4), 16, False),
    (dict(padding=1, stride=2, groups=2), (8, 4, 4, 4), 16, False),
    (dict(padding=1, stride=2), (8, 8, 4, 4), 10, False),   # a masked kernel
])
def test_serves_only_dense_4x4_stride_2_convs(kwargs, w_shape, kept, serves):
    x, w = tg.zeros(2, 8, 16, 16), tg.zeros(*w_shape)
    k = {**dict(dilation=1, groups=1), **kwargs}
    geom = conv_geometry(Call("conv2d", x, w), x, w, k["stride"], k["padding"], k["dilation"],
                         k["groups"], 2)
    taps = kept_taps(geom, None)[:kept]
    assert P.serves(geom, taps, 64, 64) == serves
    assert not P.serves(geom, taps, P.MIN_CHANNELS - 1, 64)


def test_dispatched_by_default_and_off_with_its_switch(monkeypatch):
    geom, taps = _geometry((2, 32, 14, 14), (64, 32, 4, 4), ((1, 1), (1, 1)))
    assert numba_conv._path(geom, taps, 32, 64) is P
    monkeypatch.setattr(numba_conv, "PHASE", False)
    assert numba_conv._path(geom, taps, 32, 64) is None            # im2col


@pytest.mark.parametrize("gemm_found", [True, False])
def test_runs_its_gemms_from_compiled_code_when_the_gemm_is_found(monkeypatch, gemm_found):
    """With numpy's OpenBLAS GEMM found, the three ops each run one compiled kernel on
    pieces of images (chunks.share_images: no Python per chunk); without it, np.matmul
    chunk by chunk (map_chunks / sum_chunks); the same results either way, bias and
    residual added (several pieces and steps: GAN D's layer, 5 images)."""
    if gemm_found and _cblas.functions() is None:
        pytest.skip("numpy's BLAS has no ILP64 cblas GEMM")
    if not gemm_found:
        monkeypatch.setattr(_cblas, "_found", [None])
    monkeypatch.setattr(P, "_pieces", lambda n, multiply_adds: 2)
    monkeypatch.setattr(P, "_images_per_step", lambda tiles, columns=None: 2)
    monkeypatch.setattr(P, "_empty", lambda shape, dtype=None: np.full(shape, np.nan, dtype))
    kernels, chunked = [], []
    monkeypatch.setattr(P, "_share", lambda kernel, *a: kernels.append(
        kernel.__name__) or chunks.share_images(kernel, *a))
    monkeypatch.setattr(P, "map_chunks", lambda *a: chunked.append("map") or
                        chunks.map_chunks(*a))
    monkeypatch.setattr(P, "sum_chunks", lambda *a: chunked.append("sum") or
                        chunks.sum_chunks(*a))
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in ((5, 32, 14, 14), (64, 32, 4, 4), (64,))]
    r, g = (tg.tensor(rng.standard_normal((5, 64, 7, 7))) for _ in range(2))
    results = {}
    for name in ("numba", "reference"):
        with impl(name):
            inputs = [tg.tensor(a, requires_grad=True) for a in arrays]
            y = C.conv2d(*inputs, stride=2, padding=1, residual=r)
            y.backward(g)
            results[name] = [y.numpy()] + [t.grad.numpy() for t in inputs]
    expected = ["_forward_pieces", "_input_grad_pieces", "_weight_grad_pieces"]
    assert (sorted(kernels), sorted(chunked)) == \
        ((expected, []) if gemm_found else ([], ["map", "map", "sum"]))
    for got, want in zip(results["numba"], results["reference"]):
        assert rel_error(got, want) <= 1e-12
