"""PixelCNN's convolutions, of the convolution family: ``pixelcnn_mask`` and
``masked_conv2d`` (van den Oord et al. 2016, masks A and B with optional RGB grouping),
and the gated PixelCNN's shifted convs for its vertical and horizontal stacks
(``down_shifted_conv2d``, ``down_right_shifted_conv2d``, ``down_shift``,
``down_shift_conv1x1``).  A masked conv iterates only the taps its mask keeps
(``conv_geometry.WeightMask``).
"""
import functools

import numpy as np

from .conv import checked_residual, conv_nd, convolve
from .conv_geometry import (
    Call, ConvGeometry, WeightMask, check_bias, conv_geometry, conv_tensors, is_int,
)
from ..autograd.function import Function
from ..backend import array_module
from ._operands import as_tensor


def _mask_args(op, kernel_size, mask_type, groups_rgb):
    if is_int(kernel_size):
        kernel = (int(kernel_size),) * 2
    elif (isinstance(kernel_size, (tuple, list)) and len(kernel_size) == 2
          and all(is_int(k) for k in kernel_size)):
        kernel = tuple(int(k) for k in kernel_size)
    else:
        raise TypeError(f"{op}: kernel_size must be an int or a pair of ints, got {kernel_size!r}")
    if any(k < 1 or k % 2 == 0 for k in kernel):
        raise ValueError(f"{op}: kernel_size must be odd and positive (the mask is centred on "
                         f"the current pixel), got kernel_size={kernel}")
    if not isinstance(mask_type, str) or mask_type.upper() not in ("A", "B"):
        raise ValueError(f"{op}: mask_type must be 'A' or 'B', got mask_type={mask_type!r}")
    if not is_int(groups_rgb) or groups_rgb < 1:
        raise ValueError(f"{op}: groups_rgb must be a positive int, got groups_rgb={groups_rgb!r}")
    return kernel, mask_type.upper(), int(groups_rgb)


def pixelcnn_mask(kernel_size, mask_type, in_channels, out_channels, groups_rgb=1):
    """PixelCNN's weight mask, boolean of shape (out_channels, in_channels, kh, kw).

    A pixel may see the rows above it and the pixels to its left in its own row
    (raster order).  The centre tap (the current pixel) is:
      * groups_rgb=1: off for mask 'A' (first layer: a pixel never sees itself),
        on for mask 'B' (later layers: features at a pixel only hold its past);
      * groups_rgb=3 (van den Oord et al. 2016, "Pixel Recurrent Neural Networks",
        section 3.4): channels are split into contiguous thirds R, G, B (in and
        out alike); output group R sees nothing of the current pixel, G sees R,
        B sees R and G -- with mask 'B' each group also sees its own group.
        Other values of groups_rgb split into that many ordered groups likewise.
    kernel_size must be odd (the mask is centred on the current pixel).
    """
    kernel, mask_type, groups_rgb = _mask_args("pixelcnn_mask", kernel_size, mask_type,
                                               groups_rgb)
    for name, c in (("in_channels", in_channels), ("out_channels", out_channels)):
        if not is_int(c) or c < 1:
            raise ValueError(f"pixelcnn_mask: {name} must be a positive int, got {c!r}")
        if c % groups_rgb:
            raise ValueError(f"pixelcnn_mask: {name}={c} must be divisible by "
                             f"groups_rgb={groups_rgb}")
    return _pixelcnn_mask(kernel, mask_type, int(in_channels), int(out_channels),
                          groups_rgb).copy()


@functools.lru_cache(maxsize=256)
def _pixelcnn_mask(kernel, mask_type, in_channels, out_channels, groups_rgb):
    kh, kw = kernel
    ci, cj = kh // 2, kw // 2
    mask = np.zeros((out_channels, in_channels, kh, kw), dtype=bool)
    mask[:, :, :ci, :] = True          # every row above the current one
    mask[:, :, ci, :cj] = True         # the current row, left of the current pixel
    in_group = np.arange(in_channels) // (in_channels // groups_rgb)
    out_group = np.arange(out_channels) // (out_channels // groups_rgb)
    if mask_type == "A":
        mask[:, :, ci, cj] = out_group[:, None] > in_group[None, :]
    else:
        mask[:, :, ci, cj] = out_group[:, None] >= in_group[None, :]
    mask.flags.writeable = False
    return mask


@functools.lru_cache(maxsize=256)
def _pixelcnn_weight_mask(kernel, mask_type, in_channels, out_channels, groups_rgb):
    mask = _pixelcnn_mask(kernel, mask_type, in_channels, out_channels, groups_rgb)
    return WeightMask(mask, mask.shape)


def masked_conv2d(input, weight, bias=None, mask_type="A", padding="same", groups_rgb=1, *,
                  residual=None):
    """PixelCNN's masked convolution (see ``pixelcnn_mask`` for the masks).

    weight (O, C, kh, kw) with odd kh, kw; stride 1.  Only the taps the mask
    keeps are computed (a 7x7 mask A: 24 of 49 taps, mask B: 25); the weight's
    values under the mask are ignored and get zero gradient.  ``residual``: a tensor
    of the output's shape added to it by the kernels (``conv.conv2d``'s).
    """
    call = Call("masked_conv2d", input, weight)
    if getattr(weight, "ndim", None) != 4:
        raise call.error(f"weight must be 4-D (out_channels, in_channels, kH, kW), got shape "
                         f"{tuple(getattr(weight, 'shape', ()))}")
    out_channels, in_channels, kh, kw = weight.shape
    try:
        kernel, mask_type, groups_rgb = _mask_args("masked_conv2d", (kh, kw), mask_type,
                                                   groups_rgb)
    except ValueError as exc:
        raise ValueError(f"{exc} {call.where()}") from None
    for name, c in (("in_channels", in_channels), ("out_channels", out_channels)):
        if c % groups_rgb:
            raise call.error(f"{name}={c} must be divisible by groups_rgb={groups_rgb}")
    mask = _pixelcnn_weight_mask(kernel, mask_type, in_channels, out_channels, groups_rgb)
    return conv_nd("masked_conv2d", 2, input, weight, bias, 1, padding, 1, 1, mask, residual)


# --- Gated PixelCNN's two stacks (van den Oord et al. 2016, "Conditional Image
# Generation with PixelCNN Decoders") ------------------------------------------------------
#
# The convention (the paper's, also PixelCNN++'s):
#   * vertical stack: down_shifted_conv2d.  Output row r sees input rows
#     r-kh+1 .. r (the current row and the rows above, never below) over the
#     columns c-kw//2 .. c+kw//2.  Stacked, vertical features at row r depend
#     on input rows <= r only -- including pixels right of the current one,
#     which is why they are never used at their own row:
#   * vertical -> horizontal link: down_shift(v) moves the vertical features
#     down one row (zeros enter at the top), so at row r the horizontal stack
#     receives information from rows < r only: no peek at the current row,
#     and (over the full width) no blind spot.
#   * horizontal stack: down_right_shifted_conv2d, usually with a (1, k)
#     kernel.  Output (r, c) sees rows r-kh+1 .. r and columns c-kw+1 .. c; with
#     include_current=False it sees columns c-kw .. c-1 (the first layer, like
#     mask A: a pixel must not see itself).
# So a gated layer is
#     v' = gate(down_shifted_conv2d(v, Wv))
#     h' = gate(down_right_shifted_conv2d(h, Wh, include_current=(layer > 0))
#               + conv1x1(down_shift(down_shifted_conv2d(v, Wv))))  (+ residual)
# and the output at pixel (r, c) depends on every pixel before it in raster
# order once the stacks are deep enough, and on nothing at or after it.


def _shifted(op, input, weight, bias, padding, crop_width, residual=None, crop_height=False):
    call = Call(op, input, weight)
    x, w, bias, batched = conv_tensors(call, input, weight, bias, 2)
    geom = conv_geometry(call, x, w, 1, padding, 1, 1, 2)
    check_bias(call, bias, w.shape[0])
    if crop_width or crop_height:
        # Drop the last output column (the shift right by one) or row (down by one),
        # by computing one fewer rather than computing and cropping it.
        geom = ConvGeometry(geom.stride, geom.padding, geom.dilation, geom.groups,
                            geom.in_size, (geom.out_size[0] - bool(crop_height),
                                           geom.out_size[1] - bool(crop_width)),
                            geom.kernel)
    residual = checked_residual(call, residual, x, w, geom, batched)
    return convolve(x, w, bias, geom, None, batched, residual)


def down_shifted_conv2d(input, weight, bias=None, *, residual=None):
    """The gated PixelCNN's vertical-stack conv: output (r, c) sees input rows
    r-kh+1 .. r and columns c-kw//2 .. c+kw//2 (kw odd).  Same output size.
    Feed it to the horizontal stack through ``down_shift`` (see the module notes).
    ``residual``: as ``conv.conv2d``'s."""
    kh, kw = _kernel_of("down_shifted_conv2d", input, weight)
    if kw % 2 == 0:
        raise Call("down_shifted_conv2d", input, weight).error(
            f"the kernel width must be odd (centred on the current column), got kW={kw}")
    return _shifted("down_shifted_conv2d", input, weight, bias,
                    ((kh - 1, 0), (kw // 2, kw // 2)), False, residual)


def down_right_shifted_conv2d(input, weight, bias=None, include_current=True, *, residual=None):
    """The gated PixelCNN's horizontal-stack conv: output (r, c) sees input rows
    r-kh+1 .. r and columns c-kw+1 .. c; with ``include_current=False`` columns
    c-kw .. c-1, so a pixel does not see itself (the first layer).  Same output size.
    ``residual``: as ``conv.conv2d``'s."""
    kh, kw = _kernel_of("down_right_shifted_conv2d", input, weight)
    left = kw - 1 if include_current else kw
    return _shifted("down_right_shifted_conv2d", input, weight, bias,
                    ((kh - 1, 0), (left, 0)), not include_current, residual)


def down_shift_conv1x1(input, weight, bias=None):
    """``conv2d(down_shift(input), weight, bias)`` for a 1x1 ``weight`` (O, C, 1, 1) (the
    gated PixelCNN's vertical-to-horizontal link), as one conv: padded one row on top,
    the output cut to the input's height, so output row r reads input row r - 1 and
    row 0 only the padding.  The kernels read the input in place (no shifted copy)."""
    kh, kw = _kernel_of("down_shift_conv1x1", input, weight)
    if (kh, kw) != (1, 1):
        raise Call("down_shift_conv1x1", input, weight).error(
            f"the weight must be 1x1, got kernel {kh}x{kw}")
    return _shifted("down_shift_conv1x1", input, weight, bias, ((1, 0), (0, 0)), False,
                    crop_height=True)


class DownShift(Function):
    """y[:, :, r] = x[:, :, r-1], y[:, :, 0] = 0: one copy into a fresh contiguous array.
    (It was a pad then a slice: two copies forward, and the slice's view made the 1x1
    conv that reads it copy it once more in each of its forward and weight gradient;
    the gated PixelCNN runs one per layer on its widest features.)"""

    def forward(self, x):
        y = array_module(x).empty_like(x)
        y[:, :, :1] = 0
        y[:, :, 1:] = x[:, :, :-1]
        return y

    def backward(self, grad):
        return UpShift.apply(grad)


class UpShift(Function):
    """DownShift's adjoint: y[:, :, r] = g[:, :, r+1], the last row 0."""

    def forward(self, g):
        y = array_module(g).empty_like(g)
        y[:, :, -1:] = 0
        y[:, :, :-1] = g[:, :, 1:]
        return y

    def backward(self, grad):
        return DownShift.apply(grad)


def down_shift(input):
    """Move (N, C, H, W) features down one row: row r takes row r-1, row 0 is zeros."""
    if input.ndim != 4:
        raise ValueError(f"down_shift: input must be 4-D (N, C, H, W), got shape {input.shape}")
    return DownShift.apply(as_tensor(input))


def _kernel_of(op, input, weight):
    if getattr(weight, "ndim", None) != 4:
        raise Call(op, input, weight).error(
            f"weight must be 4-D (out_channels, in_channels, kH, kW), got shape "
            f"{tuple(getattr(weight, 'shape', ()))}")
    return weight.shape[2], weight.shape[3]
