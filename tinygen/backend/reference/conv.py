"""Reference 2-D convolution in plain numpy: the oracle for the fast kernels.

Read this file to see what a convolution computes; read
``tinygen/backend/numba_kernels/conv.py`` to see how to compute it fast.

Shapes (PyTorch's):  x (N, C, H, W),  weight (O, C/groups, kh, kw),
y (N, O, Hout, Wout).  ``geom`` is a ``tinygen.ops.conv_geometry.ConvGeometry``:

    stride (sh, sw), padding (top, bottom, left, right), dilation (dh, dw),
    groups, in_size (H, W), out_size (Hout, Wout), kernel (kh, kw).

The convolution (a cross-correlation, like every deep-learning library's):

    y[n, o, p, q] = sum over c in o's group, and over the taps (i, j), of
                    x_padded[n, c, p*sh + i*dh, q*sw + j*dw] * weight[o, c', i, j]

where c' is c's index inside its group.  Each tap (i, j) is therefore one
matrix product between a strided window of the padded input (N, C/g, Hout, Wout)
and the weight slice weight[:, :, i, j] (O/g, C/g).  We loop over the taps,
and *only over the taps we are given*: a masked convolution (PixelCNN) passes
the taps its mask keeps, so the masked ones cost nothing.  The caller has
already zeroed the weight where the mask is off (that matters only for taps
that are partly masked, e.g. the centre tap under RGB channel grouping).

The two other functions are the adjoints of this one:
  * input_grad scatters each tap's contribution back into a zero padded input
    (this is the transposed convolution);
  * weight_grad correlates the input windows with the output gradient, one
    (O/g, C/g) block per tap; taps not given stay zero.
"""
import numpy as np


def _window(x_padded, i, j, geom):
    """The input values tap (i, j) meets at every output position.

    A strided view (no copy) of shape (N, C, Hout, Wout):
    rows i*dh, i*dh + sh, ..., columns j*dw, j*dw + sw, ...
    """
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    hout, wout = geom.out_size
    rows = slice(i * dh, i * dh + sh * (hout - 1) + 1, sh)
    cols = slice(j * dw, j * dw + sw * (wout - 1) + 1, sw)
    return x_padded[:, :, rows, cols]


def _pad(x, geom):
    top, bottom, left, right = geom.padding
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


def _group_slices(groups, in_per_group, out_per_group):
    """(input channel slice, output channel slice) of every group."""
    return [
        (slice(g * in_per_group, (g + 1) * in_per_group),
         slice(g * out_per_group, (g + 1) * out_per_group))
        for g in range(groups)
    ]


def conv2d_forward(x, weight, geom, taps, bias=None, residual=None):
    """y = conv(x, weight) (+ bias (O,), broadcast over the images and positions)
    (+ residual, of y's shape),
    iterating only ``taps`` (a (T, 2) array of (i, j))."""
    n = x.shape[0]
    out_channels, in_per_group = weight.shape[:2]
    out_per_group = out_channels // geom.groups
    x_padded = _pad(x, geom)
    y = np.zeros((n, out_channels) + tuple(geom.out_size), dtype=x.dtype)
    for cs, os in _group_slices(geom.groups, in_per_group, out_per_group):
        for i, j in taps:
            patch = _window(x_padded[:, cs], i, j, geom)        # (N, C/g, Hout, Wout)
            w_tap = weight[os, :, i, j]                          # (O/g, C/g)
            y[:, os] += np.einsum("nchw,oc->nohw", patch, w_tap)
    if bias is not None:
        y += bias.reshape(-1, 1, 1)
    if residual is not None:
        y += residual
    return y


def conv2d_input_grad(grad_y, weight, geom, taps):
    """The gradient of conv w.r.t. its input: the transposed convolution.

    Every output position sent weight[o, c', i, j] * x[...] forward, so it sends
    weight[o, c', i, j] * grad_y[...] back to the same input position.
    """
    n = grad_y.shape[0]
    out_channels, in_per_group = weight.shape[:2]
    out_per_group = out_channels // geom.groups
    height, width = geom.in_size
    top, bottom, left, right = geom.padding
    grad_padded = np.zeros(
        (n, in_per_group * geom.groups, height + top + bottom, width + left + right),
        dtype=grad_y.dtype,
    )
    for cs, os in _group_slices(geom.groups, in_per_group, out_per_group):
        for i, j in taps:
            w_tap = weight[os, :, i, j]                          # (O/g, C/g)
            contribution = np.einsum("nohw,oc->nchw", grad_y[:, os], w_tap)
            _window(grad_padded[:, cs], i, j, geom)[...] += contribution
    # What fell on the padding belongs to no input: crop it away.
    return grad_padded[:, :, top:top + height, left:left + width]


def conv2d_weight_grad(x, grad_y, geom, taps):
    """The gradient of conv w.r.t. its weight: one (O/g, C/g) block per tap,
    the correlation of that tap's input window with the output gradient."""
    in_per_group = x.shape[1] // geom.groups
    out_channels = grad_y.shape[1]
    out_per_group = out_channels // geom.groups
    kh, kw = geom.kernel
    x_padded = _pad(x, geom)
    grad_w = np.zeros((out_channels, in_per_group, kh, kw), dtype=x.dtype)
    for cs, os in _group_slices(geom.groups, in_per_group, out_per_group):
        for i, j in taps:
            patch = _window(x_padded[:, cs], i, j, geom)        # (N, C/g, Hout, Wout)
            grad_w[os, :, i, j] = np.einsum("nohw,nchw->oc", grad_y[:, os], patch)
    return grad_w
