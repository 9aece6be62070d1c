"""Cross-check against PyTorch CPU (skipped when torch is not installed):
values and gradients of conv1d/conv2d/conv_transpose1d/2d with every argument,
per-side padding (against F.pad + conv), 'same' with even kernels, masked conv
against torch's conv2d with the masked dense weight, causal conv against
left-padding, and both CPU implementations."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
from tinygen.ops import conv as C
from tinygen.ops import conv_pixelcnn as P

from ._helpers import (IMPLS, conv_configs, conv_transpose_configs, impl, make_inputs,
                       masked_configs, op_kwargs)

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _torch_padding(padding, ndim):
    """(torch padding argument, F.pad list or None) for one of our padding args."""
    if isinstance(padding, str) or isinstance(padding, int):
        return padding, None
    items = list(padding)
    if all(isinstance(p, int) for p in items):
        return tuple(items), None
    # per-side pairs: pad explicitly (F.pad lists the last dimension first)
    pad = []
    for lo, hi in reversed(items):
        pad += [lo, hi]
    return 0, pad


def _check(ours, theirs, inputs, rtol=1e-10, atol=1e-10):
    """Compare values and gradients for one random upstream gradient."""
    t_inputs = [torch.tensor(t.numpy(), requires_grad=True) for t in inputs]
    expected = theirs(*t_inputs)
    v = np.random.default_rng(0).standard_normal(tuple(expected.shape))
    expected.backward(torch.tensor(v))
    for name in IMPLS:
        with impl(name):
            y = ours(*inputs)
            grads = tg.grad(y, inputs, grad_outputs=tg.tensor(v, dtype=tg.float64))
        np.testing.assert_allclose(y.numpy(), expected.detach().numpy(), rtol=rtol, atol=atol)
        for g, t in zip(grads, t_inputs):
            np.testing.assert_allclose(g.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)


def _inputs(config, seed):
    x, w, b = make_inputs(config, np.random.default_rng(seed))
    return (x, w) if b is None else (x, w, b)


@settings(max_examples=40)
@given(conv_configs(ndim=2, max_side=9, max_channels=6, max_kernel=4, max_batch=3),
       st.integers(0, 2**16))
def test_conv2d_matches_torch(config, seed):
    kwargs = op_kwargs(config)
    padding, pre_pad = _torch_padding(kwargs["padding"], 2)

    def theirs(x, w, b=None):
        if pre_pad:
            x = TF.pad(x, pre_pad)
        return TF.conv2d(x, w, b, stride=kwargs["stride"], padding=padding,
                         dilation=kwargs["dilation"], groups=kwargs["groups"])

    _check(lambda x, w, b=None: C.conv2d(x, w, b, **kwargs), theirs, _inputs(config, seed))


@settings(max_examples=25)
@given(conv_configs(ndim=1, max_side=20, max_channels=6, max_kernel=4, max_batch=3),
       st.integers(0, 2**16))
def test_conv1d_matches_torch(config, seed):
    kwargs = op_kwargs(config)
    padding, pre_pad = _torch_padding(kwargs["padding"], 1)

    def theirs(x, w, b=None):
        if pre_pad:
            x = TF.pad(x, pre_pad)
        return TF.conv1d(x, w, b, stride=kwargs["stride"], padding=padding,
                         dilation=kwargs["dilation"], groups=kwargs["groups"])

    _check(lambda x, w, b=None: C.conv1d(x, w, b, **kwargs), theirs, _inputs(config, seed))


@settings(max_examples=40)
@given(conv_transpose_configs(ndim=2, max_side=7, max_channels=6, max_kernel=4, max_batch=3),
       st.integers(0, 2**16))
def test_conv_transpose2d_matches_torch(config, seed):
    kwargs = op_kwargs(config)
    _check(lambda x, w, b=None: C.conv_transpose2d(x, w, b, **kwargs),
           lambda x, w, b=None: TF.conv_transpose2d(x, w, b, **kwargs), _inputs(config, seed))


@settings(max_examples=25)
@given(conv_transpose_configs(ndim=1, max_side=12, max_channels=6, max_kernel=4, max_batch=3),
       st.integers(0, 2**16))
def test_conv_transpose1d_matches_torch(config, seed):
    kwargs = op_kwargs(config)
    _check(lambda x, w, b=None: C.conv_transpose1d(x, w, b, **kwargs),
           lambda x, w, b=None: TF.conv_transpose1d(x, w, b, **kwargs), _inputs(config, seed))


@settings(max_examples=25)
@given(masked_configs(max_side=8, max_batch=2, kernels=(1, 3, 5, 7)), st.integers(0, 2**16))
def test_masked_conv2d_matches_torch_with_masked_dense_weight(config, seed):
    kwargs = op_kwargs(config)
    out_channels, in_channels, kh, kw = config["w_shape"]
    mask = torch.tensor(P.pixelcnn_mask((kh, kw), kwargs["mask_type"], in_channels,
                                        out_channels, kwargs["groups_rgb"]))
    _check(lambda x, w, b=None: P.masked_conv2d(x, w, b, **kwargs),
           lambda x, w, b=None: TF.conv2d(x, w * mask, b, padding="same"),
           _inputs(config, seed))


@pytest.mark.parametrize("kernel", [(2, 4), (4, 3), (1, 2)])
@pytest.mark.parametrize("dilation", [1, 2])
def test_same_padding_with_even_kernels_matches_torch(kernel, dilation):
    config = dict(x_shape=(2, 3, 7, 6), w_shape=(4, 3) + kernel, bias=True)
    _check(lambda x, w, b: C.conv2d(x, w, b, padding="same", dilation=dilation),
           lambda x, w, b: TF.conv2d(x, w, b, padding="same", dilation=dilation),
           _inputs(config, 3))


@pytest.mark.parametrize("k,dilation", [(2, 1), (2, 8), (3, 2), (1, 1)])
def test_causal_conv1d_is_left_padded_conv1d(k, dilation):
    config = dict(x_shape=(2, 3, 20), w_shape=(4, 3, k), bias=True)
    out = _inputs(config, 5)
    _check(lambda x, w, b: C.causal_conv1d(x, w, b, dilation=dilation),
           lambda x, w, b: TF.conv1d(TF.pad(x, [dilation * (k - 1), 0]), w, b, dilation=dilation),
           out)
    assert C.causal_conv1d(*out, dilation=dilation).shape == (2, 4, 20)


def test_unbatched_inputs_match_torch():
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((3, 5, 5)), rng.standard_normal((2, 3, 3, 3))
    y = C.conv2d(tg.tensor(x, dtype=tg.float64), tg.tensor(w, dtype=tg.float64), padding=1)
    np.testing.assert_allclose(y.numpy(), TF.conv2d(torch.tensor(x), torch.tensor(w),
                                                    padding=1).numpy(), rtol=1e-12)
    x1, w1 = rng.standard_normal((3, 7)), rng.standard_normal((3, 2, 3))
    y1 = C.conv_transpose1d(tg.tensor(x1, dtype=tg.float64), tg.tensor(w1, dtype=tg.float64),
                            stride=2)
    np.testing.assert_allclose(y1.numpy(), TF.conv_transpose1d(torch.tensor(x1), torch.tensor(w1),
                                                               stride=2).numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_float64_keep_their_dtype(dtype):
    rng = np.random.default_rng(1)
    x = tg.tensor(rng.standard_normal((2, 3, 8, 8)).astype(dtype), dtype=dtype, requires_grad=True)
    w = tg.tensor(rng.standard_normal((4, 3, 3, 3)).astype(dtype), dtype=dtype, requires_grad=True)
    for name in IMPLS:
        with impl(name):
            y = C.conv2d(x, w, padding=1)
            gx, gw = tg.grad(y.sum(), (x, w))
        assert y.dtype == gx.dtype == gw.dtype == dtype
    expected = TF.conv2d(torch.tensor(x.numpy()), torch.tensor(w.numpy()), padding=1)
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
