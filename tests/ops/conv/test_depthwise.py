"""conv_depthwise (one filter per channel: groups = channels, one output per group)
pinned to the reference kernels over hypothesis-drawn layers: 1-D and 2-D, kernels of
1-4 taps each way (not 1x1, a per-channel scale on conv_direct), stride 1-2 (the
padded-plane kernels at stride 1, the row kernels otherwise), dilation 1-2, padding
0-3 on each side (inputs smaller than the kernel, reads off every edge), with a bias
and a residual, through the ops (conv2d, conv_transpose2d: its forward is a conv's
input gradient), float64 to 1e-12 and float32 to 2e-5, with NaN-filled outputs and
buffers and the planes shared out among every thread numba has; twice differentiated
in float64; the same bits at 1 and 2 threads; a masked kernel's untaken taps get no
gradient."""
import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinygen as tg
from tinygen.backend.numba_kernels import chunks
from tinygen.backend.numba_kernels import conv_depthwise as D
from tinygen.ops import conv as C
from tinygen.testing import gradgradcheck

from .._impls import at_one_and_two_threads
from ._helpers import impl, numba_matches_reference

TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


@st.composite
def layers(draw, max_side=9, max_channels=4, max_batch=3):
    """(x shape, w shape, stride, dilation, padding) of a legal depthwise conv, 1-D
    (padding a pair) or 2-D (padding two pairs)."""
    ndim = draw(st.sampled_from([1, 2]))
    # (a 1x1 kernel is a per-channel scale: conv_direct's)
    kernel = draw(st.tuples(*[st.integers(1, 4)] * ndim).filter(lambda k: np.prod(k) > 1))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(ndim))
    sizes = tuple(draw(st.integers(max(1, d * (k - 1) + 1 - lo - hi), max_side))
                  for k, d, (lo, hi) in zip(kernel, dilation, pads))
    channels = draw(st.integers(2, max_channels))
    x_shape = (draw(st.integers(1, max_batch)), channels) + sizes
    return x_shape, (channels, 1) + kernel, stride, dilation, pads


def _conv(x_shape):
    return C.conv1d if len(x_shape) == 3 else C.conv2d


def _padding(pads):
    return pads[0] if len(pads) == 1 else pads


def _nan_filled(shape, dtype=None):
    return np.full(shape, np.nan, dtype=dtype)


@pytest.fixture
def depthwise(monkeypatch):
    """NaN-filled outputs and buffers, every thread numba has, ranges shared out from
    the smallest layer up; records which kernels ran."""
    monkeypatch.setattr(D, "_empty", _nan_filled)
    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 1)
    served = []
    for name in ("forward", "input_grad", "weight_grad"):
        original = getattr(D, name)
        monkeypatch.setattr(D, name, lambda *a, _o=original, _n=name:
                            served.append(_n) or _o(*a))
    previous = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    yield served
    numba.set_num_threads(previous)


def _inputs(x_shape, w_shape, dtype, seed, out_shape=None):
    rng = np.random.default_rng(seed)
    shapes = [(x_shape, 1.0), (w_shape, 0.5), (w_shape[:1], 1.0)]
    if out_shape is not None:
        shapes.append((out_shape, 1.0))
    return [tg.tensor(scale * rng.standard_normal(shape), dtype=dtype, requires_grad=True)
            for shape, scale in shapes]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layers(), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_conv_matches_reference(depthwise, layer, dtype, seed):
    x_shape, w_shape, stride, dilation, pads = layer
    conv = _conv(x_shape)
    kwargs = dict(stride=stride, dilation=dilation, padding=_padding(pads),
                  groups=x_shape[1])
    with impl("reference"):
        out_shape = tuple(conv(*_inputs(x_shape, w_shape, dtype, seed)[:2], **kwargs).shape)
    x, w, b, r = _inputs(x_shape, w_shape, dtype, seed, out_shape)
    depthwise.clear()
    numba_matches_reference(lambda x, w, b, r: conv(x, w, b, residual=r, **kwargs),
                            (x, w, b, r), TOLERANCE[dtype], dtype=dtype)
    assert sorted(set(depthwise)) == ["forward", "input_grad", "weight_grad"]


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layers(max_side=7), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_conv_transpose_matches_reference(depthwise, layer, dtype, seed):
    """A depthwise conv_transpose2d: its forward runs the input-gradient kernel, its
    backward the forward and the weight gradient."""
    x_shape, w_shape, stride, dilation, pads = layer
    if len(x_shape) == 3:
        x_shape, w_shape = x_shape[:2] + (1,) + x_shape[2:], w_shape[:2] + (1,) + w_shape[2:]
        stride, dilation = (1,) + stride, (1,) + dilation
    padding = tuple(min(lo, (d * (k - 1)) // 2) for (lo, _), k, d in
                    zip(pads if len(pads) == 2 else ((0, 0),) + pads, w_shape[2:], dilation))
    kwargs = dict(stride=stride, dilation=dilation, padding=padding, groups=x_shape[1])
    x, w, b = _inputs(x_shape, w_shape, dtype, seed)
    depthwise.clear()
    numba_matches_reference(lambda x, w, b: C.conv_transpose2d(x, w, b, **kwargs), (x, w, b),
                            TOLERANCE[dtype], dtype=dtype)
    assert sorted(set(depthwise)) == ["forward", "input_grad", "weight_grad"]


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layers(max_side=6, max_channels=3, max_batch=2), st.integers(0, 2**16))
def test_second_derivatives(depthwise, layer, seed):
    x_shape, w_shape, stride, dilation, pads = layer
    conv = _conv(x_shape)
    kwargs = dict(stride=stride, dilation=dilation, padding=_padding(pads),
                  groups=x_shape[1])
    with impl("numba"):
        assert gradgradcheck(lambda x, w, b: conv(x, w, b, **kwargs),
                             _inputs(x_shape, w_shape, np.float64, seed))
    assert depthwise


@pytest.mark.parametrize("stride", [1, 2])
def test_the_same_bits_at_one_and_two_threads(monkeypatch, stride):
    """Planes (forward, input gradient) and channels (weight gradient) are each one
    thread's, summed in one order: the thread count changes no bit."""
    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 1)
    x, w, b = _inputs((3, 6, 11, 10), (6, 1, 3, 3), np.float32, 0)
    g = tg.tensor(np.random.default_rng(1).standard_normal((3, 6, 11, 10)), dtype=tg.float32)
    if stride == 2:
        g = tg.tensor(np.ascontiguousarray(g.numpy()[:, :, ::2, ::2]))
    def compute():
        y = C.conv2d(x, w, b, stride=stride, padding=1, groups=6)
        return [y.numpy()] + [t.numpy() for t in tg.grad(y, [x, w, b], grad_outputs=g)]

    for a, e in zip(*at_one_and_two_threads(compute)):
        assert np.array_equal(a, e)


def test_a_masked_kernel_keeps_its_untaken_taps_at_zero(depthwise):
    """Only the taps a mask keeps are computed; the weight gradient is zero elsewhere,
    and the output equals the reference's."""
    mask = np.ones((3, 1, 3, 3), np.float32)
    mask[:, :, 2, :] = 0
    mask[:, :, 1, 2] = 0
    x, w, b = _inputs((2, 3, 8, 8), (3, 1, 3, 3), np.float64, 3)
    numba_matches_reference(lambda x, w, b: C.conv2d(x, w, b, padding=1, groups=3,
                                                     weight_mask=mask),
                            (x, w, b), TOLERANCE[np.float64], dtype=np.float64)
    with impl("numba"):
        y = C.conv2d(x, w, b, padding=1, groups=3, weight_mask=mask)
        (gw,) = tg.grad(y.sum(), [w])
    assert np.all(gw.numpy()[mask == 0] == 0) and np.all(gw.numpy()[mask == 1] != 0)


@pytest.mark.parametrize("args,served", [
    (dict(x=(2, 16, 14, 14), w=(16, 1, 3, 3), padding=1, groups=16), True),
    (dict(x=(2, 16, 14, 14), w=(16, 1, 3, 3), stride=2, groups=16), True),
    (dict(x=(2, 16, 30), w=(16, 1, 3), padding=1, groups=16), True),
    (dict(x=(2, 16, 14, 14), w=(16, 1, 1, 1), groups=16), False),     # 1x1: conv_direct
    (dict(x=(2, 16, 14, 14), w=(32, 1, 3, 3), padding=1, groups=16), False),  # 2 per group
    (dict(x=(2, 1, 14, 14), w=(1, 1, 3, 3), padding=1), False),       # one group
])
def test_which_layers_it_serves(depthwise, args, served):
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal(args.pop("x")), dtype=tg.float32, requires_grad=True)
    w = tg.tensor(rng.standard_normal(args.pop("w")), dtype=tg.float32, requires_grad=True)
    with impl("numba"):
        _conv(x.shape)(x, w, **args).sum().backward()
    assert sorted(set(depthwise)) == (["forward", "input_grad", "weight_grad"] if served
                                      else [])
