"""Finite-difference checks of every conv op (float64, hypothesis-drawn configs).

gradcheck checks first derivatives w.r.t. input, weight and bias; gradgradcheck
the derivatives of the vector-Jacobian product (every backward's backward), so
all three adjoint Functions and their closure are exercised.  The reference
implementation is the one checked against finite differences (the fast path is
checked against the reference in test_fast_path.py); one test runs the
numba path through gradgradcheck too.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
from tinygen.ops import conv as C
from tinygen.ops import conv_pixelcnn as P
from tinygen.testing import f64, gradcheck, gradgradcheck

from ._helpers import (
    conv_configs, conv_transpose_configs, impl, make_inputs, masked_configs, op_kwargs,
)


def _inputs(config, seed):
    x, w, b = make_inputs(config, np.random.default_rng(seed))
    return (x, w) if b is None else (x, w, b)


def _check(fn, inputs, second_order=True):
    assert gradcheck(fn, inputs)
    if second_order:
        assert gradgradcheck(fn, inputs)


@settings(max_examples=30)
@given(conv_configs(ndim=2, max_side=5), st.integers(0, 2**16))
def test_conv2d_gradients(config, seed):
    kwargs = op_kwargs(config)
    with impl("reference"):
        _check(lambda x, w, b=None: C.conv2d(x, w, b, **kwargs), _inputs(config, seed))


@settings(max_examples=30)
@given(conv_configs(ndim=1, max_side=5), st.integers(0, 2**16))
def test_conv1d_gradients(config, seed):
    kwargs = op_kwargs(config)
    with impl("reference"):
        _check(lambda x, w, b=None: C.conv1d(x, w, b, **kwargs), _inputs(config, seed))


@settings(max_examples=30)
@given(conv_transpose_configs(ndim=2, max_side=4), st.integers(0, 2**16))
def test_conv_transpose2d_gradients(config, seed):
    kwargs = op_kwargs(config)
    with impl("reference"):
        _check(lambda x, w, b=None: C.conv_transpose2d(x, w, b, **kwargs), _inputs(config, seed))


@settings(max_examples=25)
@given(conv_transpose_configs(ndim=1, max_side=5), st.integers(0, 2**16))
def test_conv_transpose1d_gradients(config, seed):
    kwargs = op_kwargs(config)
    with impl("reference"):
        _check(lambda x, w, b=None: C.conv_transpose1d(x, w, b, **kwargs), _inputs(config, seed))


@settings(max_examples=25)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 3), st.integers(1, 6), st.booleans(), st.integers(0, 2**16))
def test_causal_conv1d_gradients(batch, cin, cout, k, dilation, length, bias, seed):
    config = dict(x_shape=(batch, cin, length), w_shape=(cout, cin, k), bias=bias)
    with impl("reference"):
        _check(lambda x, w, b=None: C.causal_conv1d(x, w, b, dilation=dilation),
               _inputs(config, seed))


@settings(max_examples=30)
@given(masked_configs(max_side=3, kernels=(1, 3)), st.integers(0, 2**16))
def test_masked_conv2d_gradients(config, seed):
    kwargs = op_kwargs(config)
    with impl("reference"):
        _check(lambda x, w, b=None: P.masked_conv2d(x, w, b, **kwargs), _inputs(config, seed))


@settings(max_examples=15)
@given(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2), st.integers(1, 2),
       st.sampled_from([1, 3]), st.integers(1, 3), st.integers(1, 3), st.booleans(),
       st.integers(0, 2**16))
def test_shifted_convs_gradients(batch, cin, cout, kh, kw, h, w, include_current, seed):
    config = dict(x_shape=(batch, cin, h, w), w_shape=(cout, cin, kh, kw), bias=True)
    with impl("reference"):
        _check(lambda x, w, b: P.down_shifted_conv2d(x, w, b), _inputs(config, seed))
        _check(lambda x, w, b: P.down_right_shifted_conv2d(x, w, b, include_current),
               _inputs(config, seed))
        _check(lambda x: P.down_shift(x), _inputs(config, seed)[:1])
        link = dict(x_shape=(batch, cin, h, w), w_shape=(cout, cin, 1, 1), bias=True)
        _check(lambda x, w, b: P.down_shift_conv1x1(x, w, b), _inputs(link, seed))


@settings(max_examples=10)
@given(conv_configs(ndim=2, max_side=3, max_channels=2), st.integers(0, 2**16))
def test_numba_path_gradients(config, seed):
    """The numba kernels through the same checks (few examples: the fast path is
    also compared with the reference directly)."""
    kwargs = op_kwargs(config)
    with impl("numba"):
        _check(lambda x, w, b=None: C.conv2d(x, w, b, **kwargs), _inputs(config, seed))


@settings(max_examples=10)
@given(conv_configs(ndim=2, max_side=4, max_channels=2), st.sampled_from(["reference", "numba"]),
       st.integers(0, 2**16))
def test_conv_with_residual_gradients(config, implementation, seed):
    """conv2d(..., residual=r): first and second derivatives w.r.t. every input,
    the residual included."""
    kwargs = op_kwargs(config)
    inputs = _inputs(config, seed)
    n = len(inputs)
    with impl(implementation):
        shape = C.conv2d(*inputs, **kwargs).shape
        r = f64(np.random.default_rng(seed + 1).standard_normal(shape))
        _check(lambda *a: C.conv2d(*a[:n], **kwargs, residual=a[n]), inputs + (r,))


def test_down_shift_conv1x1_wants_a_1x1_weight():
    with pytest.raises(ValueError, match="down_shift_conv1x1.*the weight must be 1x1, got kernel "
                                         "2x3"):
        P.down_shift_conv1x1(f64(np.ones((1, 2, 4, 4))), f64(np.ones((3, 2, 2, 3))))


def test_conv_residual_errors():
    x, w = f64(np.ones((2, 3, 5))), f64(np.ones((4, 3, 2)))
    with pytest.raises(ValueError, match=r"residual must have the output's shape \(2, 4, 4\), "
                                         r"got \(2, 4, 5\)"):
        C.conv1d(x, w, residual=f64(np.ones((2, 4, 5))))
    with pytest.raises(TypeError, match="residual dtype float32 differs"):
        C.conv1d(x, w, residual=tg.tensor(np.ones((2, 4, 4)), dtype=tg.float32))
    # unbatched: the residual is unbatched too
    y = C.conv1d(x[0], w, residual=f64(np.full((4, 4), 2.0)))
    np.testing.assert_array_equal(y.numpy(), np.full((4, 4), 8.0))


@pytest.mark.parametrize("implementation", ["reference", "numba"])
def test_third_derivative_through_conv(implementation):
    """gradgradcheck of a function that is itself a gradient: third derivatives."""
    rng = np.random.default_rng(3)
    x = f64(rng.standard_normal((1, 2, 3, 3)) * 0.5)
    w = f64(rng.standard_normal((2, 1, 2, 2)) * 0.5)

    def first_derivatives(x, w):
        y = C.conv2d(x, w, stride=1, padding=1, groups=2)
        return tg.grad((y.tanh() * y).sum(), (x, w), create_graph=True)

    with impl(implementation):
        assert gradcheck(first_derivatives, (x, w))        # second derivatives
        assert gradgradcheck(first_derivatives, (x, w))    # third derivatives


def test_third_derivative_through_conv_transpose():
    rng = np.random.default_rng(4)
    x = f64(rng.standard_normal((1, 2, 2, 2)) * 0.5)
    w = f64(rng.standard_normal((2, 1, 2, 3)) * 0.5)

    def first_derivatives(x, w):
        y = C.conv_transpose2d(x, w, stride=2, output_padding=1, padding=(0, 1))
        return tg.grad((y * y * y).sum(), (x, w), create_graph=True)

    with impl("reference"):
        assert gradgradcheck(first_derivatives, (x, w))


def test_masked_weight_gets_zero_gradient():
    rng = np.random.default_rng(5)
    x = f64(rng.standard_normal((2, 3, 4, 4)))
    w = f64(rng.standard_normal((6, 3, 3, 3)))
    for groups_rgb in (1, 3):
        for mask_type in ("A", "B"):
            mask = P.pixelcnn_mask(3, mask_type, 3, 6, groups_rgb)
            (gw,) = tg.grad(P.masked_conv2d(x, w, mask_type=mask_type,
                                            groups_rgb=groups_rgb).sum(), (w,))
            assert np.all(gw.numpy()[~mask] == 0)
            assert np.all(gw.numpy()[mask] != 0)


@settings(max_examples=15)
@given(conv_configs(ndim=2, max_side=4), st.integers(0, 2**16), st.sampled_from(["full", "taps"]))
def test_conv2d_with_an_arbitrary_weight_mask(config, seed, shape):
    """The general weight_mask: per-element (partly kept taps) or per-tap (broadcast)."""
    rng = np.random.default_rng(seed)
    w_shape = config["w_shape"]
    mask = rng.random(w_shape if shape == "full" else w_shape[2:]) < 0.6
    kwargs = op_kwargs(config)
    fn = lambda x, w, b=None: C.conv2d(x, w, b, weight_mask=mask, **kwargs)  # noqa: E731
    inputs = _inputs(config, seed)
    with impl("reference"):
        _check(fn, inputs)
    expected = C.conv2d(inputs[0], tg.tensor(inputs[1].numpy() * np.broadcast_to(mask, w_shape)),
                        *inputs[2:], **kwargs)
    for name in ("reference", "numba"):
        with impl(name):
            np.testing.assert_allclose(fn(*inputs).numpy(), expected.numpy(), rtol=1e-12,
                                       atol=1e-12)
