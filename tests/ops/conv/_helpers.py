"""Shared helpers for the conv tests: hypothesis configs, tensors, comparisons."""
import numpy as np
from hypothesis import strategies as st

import tinygen as tg
from tinygen.backend.kernels import use_impl

IMPLS = ("reference", "numba")


def tensor(array, dtype, requires_grad=True):
    return tg.tensor(np.asarray(array).astype(dtype), dtype=dtype, requires_grad=requires_grad)


def impl(name):
    return use_impl(name)


def numba_matches_reference(fn, inputs, tolerance, dtype=None):
    """fn's output and its gradients (along a fixed random upstream gradient) under the
    numba kernels equal those under the numpy reference within ``tolerance`` (relative
    L2); with ``dtype`` the results must also be of that dtype and the same shapes."""
    from tinygen.testing import rel_error

    def run():
        y = fn(*inputs)
        v = tg.tensor(np.random.default_rng(0).standard_normal(y.shape), dtype=y.dtype)
        return [y.numpy()] + [g.numpy() for g in tg.grad(y, inputs, grad_outputs=v)]

    with impl("reference"):
        expected = run()
    with impl("numba"):
        actual = run()
    for a, e in zip(actual, expected):
        if dtype is not None:
            assert a.dtype == e.dtype == dtype and a.shape == e.shape
        assert rel_error(a, e) <= tolerance


# --- hypothesis configs ------------------------------------------------------------------
def _padding_and_sizes(draw, kernel, dilation, stride, max_side, allow_same=True):
    """A padding argument and input sizes that make a legal conv (sizes may be
    smaller than the kernel when the padding allows it)."""
    ndim = len(kernel)
    choices = ["int", "tuple", "pairs", "valid"]
    if allow_same and all(s == 1 for s in stride):
        choices.append("same")
    kind = draw(st.sampled_from(choices))
    if kind == "valid":
        pairs, padding = [(0, 0)] * ndim, "valid"
    elif kind == "same":
        pairs = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                 for k, d in zip(kernel, dilation)]
        padding = "same"
    elif kind == "int":
        p = draw(st.integers(0, 2))
        pairs, padding = [(p, p)] * ndim, p
    elif kind == "tuple":
        ps = tuple(draw(st.integers(0, 2)) for _ in range(ndim))
        pairs, padding = [(p, p) for p in ps], ps
    else:
        pairs = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim)]
        padding = tuple(pairs)
    sizes = []
    for k, d, (lo, hi) in zip(kernel, dilation, pairs):
        low = max(1, d * (k - 1) + 1 - lo - hi)
        sizes.append(draw(st.integers(low, max(low, max_side))))
    return padding, tuple(sizes)


@st.composite
def conv_configs(draw, ndim=2, max_side=4, max_channels=3, max_kernel=3, max_batch=2):
    """Keyword arguments of a legal conv1d/conv2d with tiny tensors."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    groups = min(groups, max_channels)
    cin = groups * draw(st.integers(1, max(1, max_channels // groups)))
    cout = groups * draw(st.integers(1, max(1, max_channels // groups)))
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    padding, sizes = _padding_and_sizes(draw, kernel, dilation, stride, max_side)
    batch = draw(st.integers(1, max_batch))
    return dict(
        x_shape=(batch, cin) + sizes, w_shape=(cout, cin // groups) + kernel,
        bias=draw(st.booleans()), stride=stride, padding=padding, dilation=dilation,
        groups=groups,
    )


@st.composite
def conv_transpose_configs(draw, ndim=2, max_side=4, max_channels=3, max_kernel=3,
                           max_batch=2):
    """Keyword arguments of a legal conv_transpose1d/2d with tiny tensors."""
    groups = min(draw(st.sampled_from([1, 1, 2, 3])), max_channels)
    cin = groups * draw(st.integers(1, max(1, max_channels // groups)))
    cout = groups * draw(st.integers(1, max(1, max_channels // groups)))
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    # output_padding < max(stride, dilation) (PyTorch's rule)
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(ndim))
    sizes = []
    for k, s, d, p, op in zip(kernel, stride, dilation, padding, output_padding):
        # the output size (n-1)*s - 2p + d(k-1) + op + 1 must be positive
        low = 1
        while (low - 1) * s - 2 * p + d * (k - 1) + op + 1 < 1:
            low += 1
        sizes.append(draw(st.integers(low, max(low, max_side))))
    batch = draw(st.integers(1, max_batch))
    return dict(
        x_shape=(batch, cin) + tuple(sizes), w_shape=(cin, cout // groups) + kernel,
        bias=draw(st.booleans()), stride=stride, padding=padding,
        output_padding=output_padding, dilation=dilation, groups=groups,
    )


@st.composite
def masked_configs(draw, max_side=4, max_batch=2, kernels=(1, 3, 5)):
    """Keyword arguments of a masked_conv2d: mask type, RGB grouping, odd kernel."""
    groups_rgb = draw(st.sampled_from([1, 3]))
    if groups_rgb == 3:
        cin, cout = 3, draw(st.sampled_from([3, 6]))
    else:
        cin, cout = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.sampled_from(kernels)), draw(st.sampled_from(kernels))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    return dict(
        x_shape=(draw(st.integers(1, max_batch)), cin, h, w), w_shape=(cout, cin, kh, kw),
        bias=draw(st.booleans()), mask_type=draw(st.sampled_from(["A", "B"])),
        groups_rgb=groups_rgb,
    )


def make_inputs(config, rng, dtype=np.float64, requires_grad=True):
    """(x, weight, bias-or-None) tensors for a config."""
    x = tensor(rng.standard_normal(config["x_shape"]), dtype, requires_grad)
    w = tensor(rng.standard_normal(config["w_shape"]), dtype, requires_grad)
    bias = None
    if config["bias"]:
        out_channels = (config["w_shape"][0] if "output_padding" not in config
                        else config["w_shape"][1] * config["groups"])
        bias = tensor(rng.standard_normal(out_channels), dtype, requires_grad)
    return x, w, bias


def op_kwargs(config):
    return {k: v for k, v in config.items() if k not in ("x_shape", "w_shape", "bias")}
