"""Causality and receptive fields of the autoregressive convs.

Perturbing input position t (pixel i in raster order) must leave every output
before it unchanged -- exactly, not approximately -- for stacks of causal_conv1d
(WaveNet), masked_conv2d (PixelCNN, with and without RGB grouping) and the gated
PixelCNN's two stacks.  The dependency pattern is also read off the Jacobian
(an exact zero = no path in the graph): the gated stacks see the *full* past
(no blind spot), a plain masked stack does not (the blind spot they remove).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
from tinygen.ops import conv as C
from tinygen.ops import conv_pixelcnn as P
from tinygen.models.pixelcnn.gated_layer import GatedPixelCNNLayer
from tinygen.testing import f64

from ._helpers import IMPLS, impl


def _no_grad_eval(fn, x):
    with tg.no_grad():
        return fn(tg.tensor(x, dtype=tg.float64)).numpy()


def _dependence(fn, x, index):
    """Boolean map over x's elements: does output[index] depend on them?"""
    xt = f64(x)
    y = fn(xt)
    (g,) = tg.grad(y[index].sum(), (xt,), allow_unused=True)
    return np.zeros(x.shape, bool) if g is None else g.numpy() != 0


# --- WaveNet: causal_conv1d stacks --------------------------------------------------------
def _wavenet_stack(weights, dilations):
    def fn(x):
        h = x
        for w, d in zip(weights, dilations):
            h = C.causal_conv1d(h, w, dilation=d).tanh()
        return h
    return fn


@settings(max_examples=10)
@given(st.lists(st.tuples(st.integers(1, 3), st.sampled_from([1, 2, 4])), min_size=1,
                max_size=4),
       st.integers(1, 3), st.integers(0, 2**16), st.sampled_from(IMPLS))
def test_causal_conv1d_stack_is_causal_with_the_right_receptive_field(layers, channels, seed,
                                                                       implementation):
    rng = np.random.default_rng(seed)
    length = 24
    weights = [f64(rng.standard_normal((channels, channels, k)), requires_grad=False)
               for k, _ in layers]
    dilations = [d for _, d in layers]
    fn = _wavenet_stack(weights, dilations)
    x = rng.standard_normal((1, channels, length))
    with impl(implementation):
        y = _no_grad_eval(fn, x)
        assert y.shape == x.shape
        for t in range(length):
            x2 = x.copy()
            x2[:, :, t] += 1.0
            y2 = _no_grad_eval(fn, x2)
            assert np.array_equal(y2[:, :, :t], y[:, :, :t]), f"output before {t} changed"
        # receptive field: the last output sees exactly the offsets reachable as a
        # sum of one tap offset per layer (all of the last R inputs for 1, 2, 4, ...)
        offsets = {0}
        for k, d in layers:
            offsets = {o + d * j for o in offsets for j in range(k)}
        seen = _dependence(fn, x, (0, slice(None), length - 1)).any(axis=(0, 1))
        expected = np.zeros(length, bool)
        expected[[length - 1 - o for o in offsets if o < length]] = True
        assert np.array_equal(seen, expected)


def test_wavenet_dilation_schedule_covers_its_receptive_field():
    rng = np.random.default_rng(0)
    dilations = [1, 2, 4, 8]
    weights = [f64(rng.standard_normal((2, 2, 2)), requires_grad=False) for _ in dilations]
    fn = _wavenet_stack(weights, dilations)
    x = rng.standard_normal((1, 2, 40))
    seen = _dependence(fn, x, (0, slice(None), 39)).any(axis=(0, 1))
    assert np.array_equal(np.flatnonzero(seen), np.arange(40 - 16, 40))  # R = 16


# --- PixelCNN: masked conv stacks ---------------------------------------------------------
def _masked_stack(weights, groups_rgb):
    def fn(x):
        h = x
        for layer, w in enumerate(weights):
            h = P.masked_conv2d(h, w, mask_type="A" if layer == 0 else "B",
                                groups_rgb=groups_rgb)
            if layer < len(weights) - 1:
                h = h.tanh()
        return h
    return fn


@pytest.mark.parametrize("implementation", IMPLS)
@pytest.mark.parametrize("groups_rgb", [1, 3])
def test_masked_conv_stack_is_causal_in_raster_order(implementation, groups_rgb):
    rng = np.random.default_rng(groups_rgb)
    cin, hidden, height, width = 3, 6, 5, 5
    shapes = [(hidden, cin, 5, 5), (hidden, hidden, 3, 3), (cin, hidden, 3, 3)]
    weights = [f64(rng.standard_normal(s), requires_grad=False) for s in shapes]
    fn = _masked_stack(weights, groups_rgb)
    x = rng.standard_normal((1, cin, height, width))
    with impl(implementation):
        y = _no_grad_eval(fn, x).reshape(1, cin, -1)
        for i in range(height * width):
            r, c = divmod(i, width)
            # groups_rgb=1: perturb every channel; 3: one colour channel at a time
            for channels in ([slice(None)] if groups_rgb == 1 else [0, 1, 2]):
                x2 = x.copy()
                x2[:, channels, r, c] += 1.0
                y2 = _no_grad_eval(fn, x2).reshape(1, cin, -1)
                assert np.array_equal(y2[:, :, :i], y[:, :, :i]), f"pixel {i} leaked"
                # at pixel i itself: nothing sees it (mask A), or under RGB grouping
                # output colour k sees input colours < k only
                unchanged = slice(None) if groups_rgb == 1 else slice(0, channels + 1)
                assert np.array_equal(y2[:, unchanged, i], y[:, unchanged, i])
                if i + 1 < height * width:
                    assert not np.array_equal(y2[:, :, i + 1:], y[:, :, i + 1:])


@pytest.mark.parametrize("implementation", IMPLS)
def test_rgb_grouping_within_a_pixel(implementation):
    """At the current pixel, output R sees no input channel, G sees R, B sees R and G;
    earlier pixels are seen in every channel."""
    rng = np.random.default_rng(8)
    shapes = [(6, 3, 3, 3), (6, 6, 3, 3), (3, 6, 1, 1)]
    weights = [f64(rng.standard_normal(s), requires_grad=False) for s in shapes]
    fn = _masked_stack(weights, 3)
    x = rng.standard_normal((1, 3, 4, 4))
    r, c = 2, 1
    with impl(implementation):
        for out_channel, sees in ((0, []), (1, [0]), (2, [0, 1])):
            dep = _dependence(fn, x, (0, out_channel, r, c))[0]   # (3, H, W)
            assert sorted(np.flatnonzero(dep[:, r, c])) == sees
            flat = dep.reshape(3, -1)
            assert not flat[:, r * 4 + c + 1:].any()           # nothing after the pixel
            assert flat[:, r * 4 + c - 1].all()                 # the pixel to the left: R, G, B


def test_plain_masked_stack_has_a_blind_spot():
    """The PixelCNN blind spot the gated stacks remove: however deep a stack of
    3x3 masked convs, pixels up and to the right are never seen."""
    rng = np.random.default_rng(4)
    shapes = [(4, 1, 3, 3)] + [(4, 4, 3, 3)] * 5 + [(1, 4, 3, 3)]
    weights = [f64(rng.standard_normal(s), requires_grad=False) for s in shapes]
    fn = _masked_stack(weights, 1)
    x = rng.standard_normal((1, 1, 7, 7))
    r, c = 4, 2
    dep = _dependence(fn, x, (0, 0, r, c))[0, 0]
    past = np.arange(49).reshape(7, 7) < r * 7 + c
    assert not (dep & ~past).any()
    assert (past & ~dep).any()        # some past pixel is invisible: the blind spot
    assert not dep[r - 1, c + 2]      # e.g. one row up, two columns right


# --- Gated PixelCNN: vertical and horizontal stacks --------------------------------------
def _gated_stack(layers, depth, seed):
    """``depth`` gated layers built from the functional shifted convs; returns h."""
    rng = np.random.default_rng(seed)
    cin, ch = 2, 3

    def w(*shape):
        return f64(rng.standard_normal(shape) * 0.7, requires_grad=False)

    params = []
    for layer in range(depth):
        c_in = cin if layer == 0 else ch
        params.append(dict(v=w(2 * ch, c_in, 2, 3), h=w(2 * ch, c_in, 1, 2),
                           link=w(2 * ch, 2 * ch, 1, 1), out=w(ch, ch, 1, 1)))

    def gate(t):
        a, b = tg.chunk(t, 2, axis=1)
        return a.tanh() * b.sigmoid()

    def fn(x):
        v, h = x, x
        for layer, p in enumerate(params):
            v_feat = P.down_shifted_conv2d(v, p["v"])
            h_feat = (P.down_right_shifted_conv2d(h, p["h"], include_current=layer > 0)
                      + C.conv2d(P.down_shift(v_feat), p["link"]))
            h_new = C.conv2d(gate(h_feat), p["out"])
            h = h_new if layer == 0 else h_new + h
            v = gate(v_feat)
        return h
    return fn


@pytest.mark.parametrize("implementation", IMPLS)
def test_gated_stacks_are_causal(implementation):
    fn = _gated_stack(None, depth=3, seed=0)
    height, width = 4, 5
    x = np.random.default_rng(1).standard_normal((1, 2, height, width))
    with impl(implementation):
        y = _no_grad_eval(fn, x).reshape(1, 3, -1)
        for i in range(height * width):
            r, c = divmod(i, width)
            x2 = x.copy()
            x2[:, :, r, c] += 1.0
            y2 = _no_grad_eval(fn, x2).reshape(1, 3, -1)
            assert np.array_equal(y2[:, :, :i + 1], y[:, :, :i + 1]), f"pixel {i} leaked"


@pytest.mark.parametrize("implementation", IMPLS)
def test_gated_stacks_have_no_blind_spot(implementation):
    """After enough layers the output at every pixel depends on every earlier pixel
    (rows above over the full width, and the row's pixels to the left) and on no
    other -- the full past, exactly."""
    height, width = 5, 5
    fn = _gated_stack(None, depth=6, seed=2)
    x = np.random.default_rng(3).standard_normal((1, 2, height, width))
    order = np.arange(height * width).reshape(height, width)
    with impl(implementation):
        for r in range(height):
            for c in range(width):
                dep = _dependence(fn, x, (0, slice(None), r, c))[0].any(axis=0)
                assert np.array_equal(dep, order < r * width + c), f"pixel {(r, c)}:\n{dep}"


def test_gated_pixelcnn_layer_module_is_causal_without_blind_spot():
    tg.manual_seed(0)
    layers = [GatedPixelCNNLayer(2, 4, kernel_size=3, first=True, dtype=np.float64)]
    layers += [GatedPixelCNNLayer(4, 4, kernel_size=3, dtype=np.float64) for _ in range(5)]

    def fn(x):
        v, h = x, x
        for layer in layers:
            v, h = layer(v, h)
        return h

    x = np.random.default_rng(5).standard_normal((1, 2, 5, 5))
    order = np.arange(25).reshape(5, 5)
    for r, c in [(0, 0), (0, 4), (2, 0), (3, 2), (4, 4)]:
        dep = _dependence(fn, x, (0, slice(None), r, c))[0].any(axis=0)
        assert np.array_equal(dep, order < r * 5 + c), f"pixel {(r, c)}:\n{dep}"


def test_shifted_conv_receptive_fields():
    """down_shifted: rows r-kh+1..r, columns c±kw//2; down_right_shifted: rows
    r-kh+1..r, columns c-kw+1..c (c-kw..c-1 without the current pixel); down_shift."""
    x = np.random.default_rng(0).standard_normal((1, 1, 7, 7))
    w = f64(np.ones((1, 1, 2, 3)), requires_grad=False)
    dep = _dependence(lambda t: P.down_shifted_conv2d(t, w), x, (0, 0, 4, 3))[0, 0]
    expected = np.zeros((7, 7), bool)
    expected[3:5, 2:5] = True
    assert np.array_equal(dep, expected)
    w = f64(np.ones((1, 1, 2, 2)), requires_grad=False)
    for include, cols in ((True, slice(2, 4)), (False, slice(1, 3))):
        dep = _dependence(lambda t: P.down_right_shifted_conv2d(t, w, include_current=include),
                          x, (0, 0, 4, 3))[0, 0]
        expected = np.zeros((7, 7), bool)
        expected[3:5, cols] = True
        assert np.array_equal(dep, expected)
    shifted = P.down_shift(tg.tensor(x)).numpy()
    assert np.array_equal(shifted[:, :, 0], np.zeros((1, 1, 7)))
    assert np.array_equal(shifted[:, :, 1:], x[:, :, :-1])
