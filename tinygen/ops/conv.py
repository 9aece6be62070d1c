"""Convolution family: conv1d/2d, conv_transpose1d/2d, causal and masked convs.

One mechanism serves them all.  Three Functions on 2-D spatial data (1-D convs
are 2-D convs of height 1; the wrappers reshape) that are each other's adjoints:

    Conv2dFn(x, w)                 -> y    the convolution
    Conv2dInputGradFn(gy, w)       -> gx   its input gradient = conv_transpose2d
    Conv2dWeightGradFn(x, gy)      -> gw   its weight gradient

The convolution is bilinear in (x, w), so each of the three is bilinear too and
the derivative of each is made of the other two:

    Conv(x, w),         upstream g:  dx = InputGrad(g, w),   dw = WeightGrad(x, g)
    InputGrad(gy, w),   upstream h:  dgy = Conv(h, w),       dw = WeightGrad(h, gy)
    WeightGrad(x, gy),  upstream h:  dx = InputGrad(gy, h),  dgy = Conv(x, h)

The set is closed under differentiation, so every order of derivative works
(WGAN-GP's gradient penalty, gradgradcheck, third derivatives).

All three take the same ``ConvGeometry`` (stride, per-side padding, dilation,
groups, input and output sizes, kernel size) and an optional ``WeightMask``:
the kernels iterate only the taps (i, j) the mask keeps (a 7x7 PixelCNN mask A
keeps 24 of 49), taps that are only partly kept (the centre tap under RGB
grouping) use the weight zeroed where the mask is off, and the weight gradient
is masked.  Bias is added outside, as a plain broadcast add.

Kernels come from ``tinygen.backend.kernels`` (family ``"conv"``), chosen by
array type: on the CPU the numba kernels or the plain numpy reference
(``use_impl('reference')`` / ``TINYGEN_CPU_IMPL``), on the GPU whatever the
CUDA backend registers.

PixelCNN conventions (masked_conv2d, pixelcnn_mask) and those of the gated
PixelCNN's two stacks (down_shifted_conv2d, down_right_shifted_conv2d,
down_shift) are documented on those functions.
"""
import functools
import numbers
from dataclasses import dataclass

import numpy as np

from ..autograd.function import Function
from ..backend import array_module
from ..backend.kernels import kernels
from ._operands import as_tensor, is_float
from .shape import reshape, pad, getitem


# =======================================================================================
# Geometry and masks
# =======================================================================================
@dataclass(frozen=True)
class ConvGeometry:
    """Everything about a 2-D convolution except its data.

    stride (sh, sw); padding (top, bottom, left, right); dilation (dh, dw);
    groups; in_size (H, W) of x; out_size (Hout, Wout) of y; kernel (kh, kw).
    ``out_size`` may be smaller than the natural output size (a transposed conv
    with output_padding >= stride, or a shifted conv that drops its last column):
    the convolution then simply computes fewer output positions.
    """
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    in_size: tuple
    out_size: tuple
    kernel: tuple

    def natural_out_size(self):
        top, bottom, left, right = self.padding
        return tuple(
            (n + lo + hi - d * (k - 1) - 1) // s + 1
            for n, lo, hi, d, k, s in zip(self.in_size, (top, left), (bottom, right),
                                          self.dilation, self.kernel, self.stride)
        )


class WeightMask:
    """A boolean mask over a conv weight, with the taps it keeps.

    ``array``: bool, broadcastable to the weight (O, C/groups, kh, kw);
    ``taps``: (T, 2) int64 array of the (i, j) where the mask is not all False;
    ``partial``: some kept tap is not kept for every (o, c) pair, so the weight
    must be zeroed where the mask is off (only then is it multiplied).
    """
    __slots__ = ("array", "taps", "partial")

    def __init__(self, array, weight_shape):
        array = np.asarray(array, dtype=bool)
        full = np.broadcast_to(array, weight_shape)
        kept = full.any(axis=(0, 1))                       # (kh, kw)
        taps = np.argwhere(kept).astype(np.int64)
        taps.flags.writeable = False
        self.array = array
        self.taps = taps
        self.partial = bool(not full[:, :, kept].all())

    def __repr__(self):
        return f"WeightMask(taps={len(self.taps)}, partial={self.partial})"


@functools.lru_cache(maxsize=None)
def _all_taps(kh, kw):
    taps = np.argwhere(np.ones((kh, kw), dtype=bool)).astype(np.int64)
    taps.flags.writeable = False
    return taps


def kept_taps(geom, mask):
    """The (T, 2) taps a kernel iterates: those ``mask`` keeps, or all of them."""
    return mask.taps if mask is not None else _all_taps(*geom.kernel)


def _masked_weight(w, mask):
    """The weight zeroed where a partly kept tap is masked (only then: fully masked
    taps are never read, so they need no zeroing)."""
    if mask is None or not mask.partial:
        return w
    xp = array_module(w)
    return xp.where(xp.asarray(mask.array), w, w.dtype.type(0))


def _masked_grad(gw, mask):
    if mask is None or not mask.partial:
        return gw  # untaken taps are already zero
    xp = array_module(gw)
    return xp.where(xp.asarray(mask.array), gw, gw.dtype.type(0))


def _nothing_to_do(out_shape, a, b, geom, mask):
    """An empty batch, or a mask that keeps no tap (a 1x1 mask A): the result is zeros."""
    return 0 in out_shape or a.size == 0 or b.size == 0 or len(kept_taps(geom, mask)) == 0


def _empty_result(shape, like):
    """Zero-sized problems skip the kernels."""
    return array_module(like).zeros(shape, dtype=like.dtype)


def _x_shape(n, w_shape, geom):
    return (n, w_shape[1] * geom.groups) + tuple(geom.in_size)


# =======================================================================================
# The three Functions
# =======================================================================================
class Conv2dFn(Function):
    """y = conv2d(x, w): x (N, C, H, W), w (O, C/groups, kh, kw) -> y (N, O, Hout, Wout)."""

    def forward(self, x, w, geom, mask):
        self.geom, self.mask = geom, mask
        # dx needs w, dw needs x: keep only what a requested gradient needs.
        need_x, need_w = self.needs_input_grad
        self._keep = [i for i, keep in ((0, need_w), (1, need_x)) if keep]
        self.save_inputs(*self._keep)
        out_shape = (x.shape[0], w.shape[0]) + tuple(geom.out_size)
        if _nothing_to_do(out_shape, x, w, geom, mask):
            return _empty_result(out_shape, x)
        return kernels("conv", x, "conv2d").conv2d_forward(x, _masked_weight(w, mask), geom,
                                             kept_taps(geom, mask))

    def backward(self, grad):
        saved = dict(zip(self._keep, self.saved_inputs()))
        x, w = saved.get(0), saved.get(1)
        params = dict(geom=self.geom, mask=self.mask)
        gx = Conv2dInputGradFn.apply(grad, w, **params) if self.needs_input_grad[0] else None
        gw = Conv2dWeightGradFn.apply(x, grad, **params) if self.needs_input_grad[1] else None
        return gx, gw


class Conv2dInputGradFn(Function):
    """gx = conv2d_input_grad(gy, w), the transposed convolution:
    gy (N, O, Hout, Wout), w (O, C/groups, kh, kw) -> gx (N, C, H, W)."""

    def forward(self, gy, w, geom, mask):
        self.geom, self.mask = geom, mask
        need_gy, need_w = self.needs_input_grad
        self._keep = [i for i, keep in ((0, need_w), (1, need_gy)) if keep]
        self.save_inputs(*self._keep)
        out_shape = _x_shape(gy.shape[0], w.shape, geom)
        if _nothing_to_do(out_shape, gy, w, geom, mask):
            return _empty_result(out_shape, gy)
        return kernels("conv", gy, "conv_transpose2d").conv2d_input_grad(gy, _masked_weight(w, mask), geom,
                                                 kept_taps(geom, mask))

    def backward(self, h):
        saved = dict(zip(self._keep, self.saved_inputs()))
        gy, w = saved.get(0), saved.get(1)
        params = dict(geom=self.geom, mask=self.mask)
        dgy = Conv2dFn.apply(h, w, **params) if self.needs_input_grad[0] else None
        dw = Conv2dWeightGradFn.apply(h, gy, **params) if self.needs_input_grad[1] else None
        return dgy, dw


class Conv2dWeightGradFn(Function):
    """gw = conv2d_weight_grad(x, gy): x (N, C, H, W), gy (N, O, Hout, Wout)
    -> gw (O, C/groups, kh, kw), zero where the mask is off."""

    def forward(self, x, gy, geom, mask):
        self.geom, self.mask = geom, mask
        need_x, need_gy = self.needs_input_grad
        self._keep = [i for i, keep in ((0, need_gy), (1, need_x)) if keep]
        self.save_inputs(*self._keep)
        out_shape = (gy.shape[1], x.shape[1] // geom.groups) + tuple(geom.kernel)
        if _nothing_to_do(out_shape, x, gy, geom, mask):
            return _empty_result(out_shape, x)
        gw = kernels("conv", x, "conv2d weight gradient").conv2d_weight_grad(x, gy, geom, kept_taps(geom, mask))
        return _masked_grad(gw, mask)

    def backward(self, h):
        saved = dict(zip(self._keep, self.saved_inputs()))
        x, gy = saved.get(0), saved.get(1)
        params = dict(geom=self.geom, mask=self.mask)
        dx = Conv2dInputGradFn.apply(gy, h, **params) if self.needs_input_grad[0] else None
        dgy = Conv2dFn.apply(x, h, **params) if self.needs_input_grad[1] else None
        return dx, dgy


# =======================================================================================
# Argument checking (errors name the argument and the shapes)
# =======================================================================================
class _Call:
    """The op being called and its tensors' shapes, for error messages."""

    def __init__(self, op, x, w):
        self.op, self.x, self.w = op, x, w

    def where(self):
        x_shape = tuple(getattr(self.x, "shape", ()))
        w_shape = tuple(getattr(self.w, "shape", ()))
        return f"(input shape {x_shape}, weight shape {w_shape})"

    def error(self, message, kind=ValueError):
        return kind(f"{self.op}: {message} {self.where()}")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _ints(call, name, value, ndim, minimum):
    """An int or a sequence of ``ndim`` ints, each >= minimum, as a tuple."""
    if _is_int(value):
        values = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) and len(value) == ndim and all(_is_int(v) for v in value):
        values = tuple(int(v) for v in value)
    else:
        raise call.error(f"{name} must be an int or a tuple of {ndim} ints, got {name}={value!r}",
                         TypeError)
    if any(v < minimum for v in values):
        what = "positive" if minimum == 1 else "non-negative"
        raise call.error(f"{name} must be {what}, got {name}={value!r}")
    return values


def _padding_pairs(call, padding, ndim, kernel, dilation, stride, allow_strings=True):
    """Per-dimension (low, high) padding from an int, 'same'/'valid', a tuple of
    ints (symmetric per dimension) or a tuple of (low, high) pairs.  For 1-D
    convs a plain pair of ints (left, right) is per-side too."""
    if isinstance(padding, str):
        if not allow_strings:
            raise call.error(f"padding={padding!r} is not supported; pass ints "
                             "(PyTorch has no string padding for transposed convs)")
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding != "same":
            raise call.error(f"padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
        if any(s != 1 for s in stride):
            raise call.error(f"padding='same' is not supported for strided convolutions "
                             f"(stride={stride})")
        # PyTorch's 'same': an odd total splits evenly; an even kernel's extra
        # padding goes on the right/bottom.
        pairs = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pairs.append((total // 2, total - total // 2))
        return tuple(pairs)

    def bad():
        return call.error(
            f"padding must be an int, a tuple of {ndim} ints or of {ndim} (low, high) pairs"
            + (", 'same' or 'valid'" if allow_strings else "") + f", got padding={padding!r}",
            TypeError)

    if _is_int(padding):
        pairs = ((int(padding), int(padding)),) * ndim
    elif isinstance(padding, (tuple, list)):
        items = list(padding)
        if ndim == 1 and len(items) == 2 and all(_is_int(v) for v in items):
            items = [tuple(items)]  # conv1d: (left, right)
        if len(items) != ndim:
            raise bad()
        pairs = []
        for item in items:
            if _is_int(item):
                pairs.append((int(item), int(item)))
            elif (isinstance(item, (tuple, list)) and len(item) == 2
                  and all(_is_int(v) for v in item)):
                pairs.append((int(item[0]), int(item[1])))
            else:
                raise bad()
        pairs = tuple(pairs)
    else:
        raise bad()
    if any(v < 0 for pair in pairs for v in pair):
        raise call.error(f"padding must be non-negative, got padding={padding!r}")
    return pairs


def _groups(call, groups):
    if not _is_int(groups):
        raise call.error(f"groups must be a positive int, got groups={groups!r}", TypeError)
    if groups < 1:
        raise call.error(f"groups must be a positive int, got groups={groups}")
    return int(groups)


def _tensors(call, x, weight, bias, ndim):
    """x, weight (and bias) as Tensors of one floating dtype and the right ranks;
    returns (x, weight, bias, batched)."""
    x, weight = as_tensor(x), as_tensor(weight)
    call.x, call.w = x, weight
    dims = "(N, C, L)" if ndim == 1 else "(N, C, H, W)"
    if x.ndim not in (ndim + 1, ndim + 2):
        raise call.error(f"input must be {ndim + 1}-D (unbatched) or {ndim + 2}-D "
                         f"(batched) {dims}, got {x.ndim}-D")
    if weight.ndim != ndim + 2:
        kdims = "k" if ndim == 1 else "kH, kW"
        layout = ("(in_channels, out_channels/groups, " if "transpose" in call.op
                  else "(out_channels, in_channels/groups, ") + kdims + ")"
        raise call.error(f"weight must be {ndim + 2}-D {layout}, got {weight.ndim}-D")
    if not is_float(x.dtype) or not is_float(weight.dtype):
        raise call.error(f"needs floating-point tensors, got input {x.dtype} and weight "
                         f"{weight.dtype}", TypeError)
    if x.dtype != weight.dtype:
        raise call.error(f"input dtype {x.dtype} and weight dtype {weight.dtype} differ; "
                         "convert one with .float() or .double()", TypeError)
    if bias is not None:
        bias = as_tensor(bias)
        if bias.dtype != x.dtype:
            raise call.error(f"bias dtype {bias.dtype} differs from the input's {x.dtype}",
                             TypeError)
    batched = x.ndim == ndim + 2
    if not batched:
        x = reshape(x, (1,) + x.shape)
    return x, weight, bias, batched


def _check_bias(call, bias, channels):
    if bias is not None and tuple(bias.shape) != (channels,):
        raise call.error(f"bias must have shape ({channels},) (one value per output "
                         f"channel), got bias shape {tuple(bias.shape)}")


def _to_2d(values, fill):
    """Per-dimension values of a 1-D conv with the height dimension prepended."""
    return (fill,) + tuple(values) if len(values) == 1 else tuple(values)


def _conv_geometry(call, x, weight, stride, padding, dilation, groups, ndim):
    """Validate a conv's arguments; return its 2-D ConvGeometry."""
    groups = _groups(call, groups)
    stride = _ints(call, "stride", stride, ndim, 1)
    dilation = _ints(call, "dilation", dilation, ndim, 1)
    out_channels, in_per_group = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    channels = x.shape[1]
    if out_channels % groups:
        raise call.error(f"out_channels={out_channels} (weight.shape[0]) must be divisible "
                         f"by groups={groups}")
    if channels % groups:
        raise call.error(f"in_channels={channels} (input.shape[1]) must be divisible by "
                         f"groups={groups}")
    if channels != in_per_group * groups:
        raise call.error(f"the input has {channels} channels but the weight expects "
                         f"in_channels = weight.shape[1] * groups = {in_per_group} * {groups} "
                         f"= {in_per_group * groups}")
    if 0 in kernel:
        raise call.error(f"kernel size {kernel} must be positive")
    pairs = _padding_pairs(call, padding, ndim, kernel, dilation, stride)
    in_size = tuple(x.shape[2:])
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(in_size, pairs))
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(e > p for e, p in zip(extent, padded)):
        raise call.error(
            f"kernel size {kernel} (dilated extent {extent}, dilation={dilation}) is larger "
            f"than the padded input size {padded} (input size {in_size}, padding={padding!r})"
        )
    out_size = tuple((p - e) // s + 1 for p, e, s in zip(padded, extent, stride))
    (top, bottom), (left, right) = _to_2d(pairs, (0, 0))
    return ConvGeometry(
        stride=_to_2d(stride, 1), padding=(top, bottom, left, right),
        dilation=_to_2d(dilation, 1), groups=groups, in_size=_to_2d(in_size, 1),
        out_size=_to_2d(out_size, 1), kernel=_to_2d(kernel, 1),
    )


def _transpose_geometry(call, x, weight, stride, padding, output_padding, groups, dilation,
                        ndim):
    """Validate a transposed conv's arguments; return the ConvGeometry of the conv
    it is the input gradient of (its in_size is the transposed conv's output)."""
    groups = _groups(call, groups)
    stride = _ints(call, "stride", stride, ndim, 1)
    dilation = _ints(call, "dilation", dilation, ndim, 1)
    output_padding = _ints(call, "output_padding", output_padding, ndim, 0)
    in_channels = weight.shape[0]
    kernel = tuple(weight.shape[2:])
    if x.shape[1] != in_channels:
        raise call.error(f"the input has {x.shape[1]} channels but the weight expects "
                         f"in_channels = weight.shape[0] = {in_channels}")
    if in_channels % groups:
        raise call.error(f"in_channels={in_channels} (weight.shape[0]) must be divisible by "
                         f"groups={groups}")
    if 0 in kernel:
        raise call.error(f"kernel size {kernel} must be positive")
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise call.error(f"output_padding={output_padding} must be smaller than either "
                             f"stride={stride} or dilation={dilation}")
    pairs = _padding_pairs(call, padding, ndim, kernel, dilation, stride, allow_strings=False)
    in_size = tuple(x.shape[2:])
    out_size = tuple(
        (n - 1) * s - lo - hi + d * (k - 1) + op + 1
        for n, s, (lo, hi), d, k, op in zip(in_size, stride, pairs, dilation, kernel,
                                            output_padding)
    )
    if any(o < 1 for o in out_size):
        raise call.error(f"the output size {out_size} is not positive: (size - 1) * stride "
                         f"- padding + dilation * (kernel - 1) + output_padding + 1 with "
                         f"stride={stride}, padding={padding!r}, dilation={dilation}, "
                         f"output_padding={output_padding}")
    (top, bottom), (left, right) = _to_2d(pairs, (0, 0))
    return ConvGeometry(
        stride=_to_2d(stride, 1), padding=(top, bottom, left, right),
        dilation=_to_2d(dilation, 1), groups=groups, in_size=_to_2d(out_size, 1),
        out_size=_to_2d(in_size, 1), kernel=_to_2d(kernel, 1),
    )


def _as_2d(t, ndim):
    """A 1-D conv's (N, C, L) tensor or (O, C, k) weight as height-1 2-D."""
    return reshape(t, t.shape[:2] + (1,) + t.shape[2:]) if ndim == 1 else t


def _finish(y, bias, ndim, batched):
    if bias is not None:
        y = y + reshape(bias, (1, bias.shape[0], 1, 1))
    if ndim == 1:
        y = reshape(y, y.shape[:2] + y.shape[3:])
    if not batched:
        y = reshape(y, y.shape[1:])
    return y


def _weight_mask(call, weight_mask, weight_shape):
    if weight_mask is None or isinstance(weight_mask, WeightMask):
        return weight_mask
    array = weight_mask.data if hasattr(weight_mask, "grad_fn") else weight_mask
    array = np.asarray(array.get() if hasattr(array, "get") else array)
    try:
        np.broadcast_to(array, weight_shape)
    except ValueError:
        raise call.error(f"weight_mask of shape {array.shape} does not broadcast to the "
                         f"weight's shape {weight_shape}") from None
    return WeightMask(array != 0, weight_shape)


# =======================================================================================
# Public ops
# =======================================================================================
def _conv(op, ndim, input, weight, bias, stride, padding, dilation, groups, weight_mask=None):
    call = _Call(op, input, weight)
    x, w, bias, batched = _tensors(call, input, weight, bias, ndim)
    geom = _conv_geometry(call, x, w, stride, padding, dilation, groups, ndim)
    _check_bias(call, bias, w.shape[0])
    mask = _weight_mask(call, weight_mask, tuple(w.shape))  # 2-D convs only
    y = Conv2dFn.apply(_as_2d(x, ndim), _as_2d(w, ndim), geom=geom, mask=mask)
    return _finish(y, bias, ndim, batched)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           weight_mask=None):
    """2-D convolution (cross-correlation), PyTorch's ``F.conv2d``.

    input (N, C, H, W) or (C, H, W); weight (O, C/groups, kH, kW); bias (O,).
    padding: int, (pH, pW), ((top, bottom), (left, right)), 'valid' or 'same'
    (an even kernel pads more on the bottom/right; not with stride > 1).
    Output size per dimension: (n + lo + hi - dilation*(k-1) - 1) // stride + 1.
    ``weight_mask`` (tinygen extra): a boolean array broadcastable to the weight;
    only the taps it keeps are computed and the weight gradient is masked.
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups,
                 weight_mask)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution, PyTorch's ``F.conv1d``: input (N, C, L) or (C, L),
    weight (O, C/groups, k).  padding: int, (p,), (left, right) or ((left, right),),
    'valid' or 'same'."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(op, ndim, input, weight, bias, stride, padding, output_padding, groups,
                    dilation):
    call = _Call(op, input, weight)
    x, w, bias, batched = _tensors(call, input, weight, bias, ndim)
    geom = _transpose_geometry(call, x, w, stride, padding, output_padding, groups, dilation,
                               ndim)
    _check_bias(call, bias, w.shape[1] * geom.groups)
    y = Conv2dInputGradFn.apply(_as_2d(x, ndim), _as_2d(w, ndim), geom=geom, mask=None)
    return _finish(y, bias, ndim, batched)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 2-D convolution, PyTorch's ``F.conv_transpose2d``: the input
    gradient of ``conv2d`` with the same arguments.

    input (N, C_in, H, W); weight (C_in, C_out/groups, kH, kW); bias (C_out,).
    Output size: (n - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1
    (per-side padding pairs ((top, bottom), (left, right)) are accepted too).
    output_padding must be smaller than either stride or dilation (PyTorch's rule).
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 1-D convolution, PyTorch's ``F.conv_transpose1d``;
    weight (C_in, C_out/groups, k)."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def causal_conv1d(input, weight, bias=None, dilation=1):
    """WaveNet's causal convolution: output length = input length, and output t
    sees inputs t - dilation*(k-1), ..., t - dilation, t only (never the future).

    It is conv1d with dilation*(k-1) zeros padded on the left only.
    """
    call = _Call("causal_conv1d", input, weight)
    (d,) = _ints(call, "dilation", dilation, 1, 1)
    if getattr(weight, "ndim", None) != 3:
        raise call.error(f"weight must be 3-D (out_channels, in_channels, k), got shape "
                         f"{tuple(getattr(weight, 'shape', ()))}")
    k = weight.shape[2]
    return _conv("causal_conv1d", 1, input, weight, bias, 1, ((d * (k - 1), 0),), d, 1)


# --- PixelCNN ------------------------------------------------------------------------------
def _mask_args(op, kernel_size, mask_type, groups_rgb):
    if _is_int(kernel_size):
        kernel = (int(kernel_size),) * 2
    elif (isinstance(kernel_size, (tuple, list)) and len(kernel_size) == 2
          and all(_is_int(k) for k in kernel_size)):
        kernel = tuple(int(k) for k in kernel_size)
    else:
        raise TypeError(f"{op}: kernel_size must be an int or a pair of ints, got {kernel_size!r}")
    if any(k < 1 or k % 2 == 0 for k in kernel):
        raise ValueError(f"{op}: kernel_size must be odd and positive (the mask is centred on "
                         f"the current pixel), got kernel_size={kernel}")
    if not isinstance(mask_type, str) or mask_type.upper() not in ("A", "B"):
        raise ValueError(f"{op}: mask_type must be 'A' or 'B', got mask_type={mask_type!r}")
    if not _is_int(groups_rgb) or groups_rgb < 1:
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
        if not _is_int(c) or c < 1:
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


def masked_conv2d(input, weight, bias=None, mask_type="A", padding="same", groups_rgb=1):
    """PixelCNN's masked convolution (see ``pixelcnn_mask`` for the masks).

    weight (O, C, kh, kw) with odd kh, kw; stride 1.  Only the taps the mask
    keeps are computed (a 7x7 mask A: 24 of 49 taps, mask B: 25); the weight's
    values under the mask are ignored and get zero gradient.
    """
    call = _Call("masked_conv2d", input, weight)
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
    return _conv("masked_conv2d", 2, input, weight, bias, 1, padding, 1, 1, mask)


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
def _shifted(op, input, weight, bias, padding, crop_width):
    call = _Call(op, input, weight)
    x, w, bias, batched = _tensors(call, input, weight, bias, 2)
    geom = _conv_geometry(call, x, w, 1, padding, 1, 1, 2)
    _check_bias(call, bias, w.shape[0])
    if crop_width:
        # Drop the last output column (the shift right by one), by computing
        # one column fewer rather than computing and cropping it.
        geom = ConvGeometry(geom.stride, geom.padding, geom.dilation, geom.groups,
                            geom.in_size, (geom.out_size[0], geom.out_size[1] - 1),
                            geom.kernel)
    y = Conv2dFn.apply(x, w, geom=geom, mask=None)
    return _finish(y, bias, 2, batched)


def down_shifted_conv2d(input, weight, bias=None):
    """The gated PixelCNN's vertical-stack conv: output (r, c) sees input rows
    r-kh+1 .. r and columns c-kw//2 .. c+kw//2 (kw odd).  Same output size.
    Feed it to the horizontal stack through ``down_shift`` (see the module notes)."""
    kh, kw = _kernel_of("down_shifted_conv2d", input, weight)
    if kw % 2 == 0:
        raise _Call("down_shifted_conv2d", input, weight).error(
            f"the kernel width must be odd (centred on the current column), got kW={kw}")
    return _shifted("down_shifted_conv2d", input, weight, bias,
                    ((kh - 1, 0), (kw // 2, kw // 2)), False)


def down_right_shifted_conv2d(input, weight, bias=None, include_current=True):
    """The gated PixelCNN's horizontal-stack conv: output (r, c) sees input rows
    r-kh+1 .. r and columns c-kw+1 .. c; with ``include_current=False`` columns
    c-kw .. c-1, so a pixel does not see itself (the first layer).  Same output size."""
    kh, kw = _kernel_of("down_right_shifted_conv2d", input, weight)
    left = kw - 1 if include_current else kw
    return _shifted("down_right_shifted_conv2d", input, weight, bias,
                    ((kh - 1, 0), (left, 0)), not include_current)


def down_shift(input):
    """Move (N, C, H, W) features down one row: row r takes row r-1, row 0 is zeros."""
    if input.ndim != 4:
        raise ValueError(f"down_shift: input must be 4-D (N, C, H, W), got shape {input.shape}")
    height = input.shape[2]
    return getitem(pad(input, (0, 0, 1, 0)), (slice(None), slice(None), slice(0, height)))


def _kernel_of(op, input, weight):
    if getattr(weight, "ndim", None) != 4:
        raise _Call(op, input, weight).error(
            f"weight must be 4-D (out_channels, in_channels, kH, kW), got shape "
            f"{tuple(getattr(weight, 'shape', ()))}")
    return weight.shape[2], weight.shape[3]
