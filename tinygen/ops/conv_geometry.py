"""The convolution family's geometry and argument checks: ``ConvGeometry`` (stride,
padding, dilation, groups, sizes), ``WeightMask`` (the taps a masked conv keeps) and the
validation of a conv call's arguments into them, whose errors name the argument and the
shapes.  The Functions and public convs are in ``conv``; PixelCNN's in ``conv_pixelcnn``.
"""
import functools
import numbers
from dataclasses import dataclass

import numpy as np

from ._operands import as_tensor, is_float
from .shape import reshape


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


class Call:
    """The op being called and its tensors' shapes, for error messages."""

    def __init__(self, op, x, w):
        self.op, self.x, self.w = op, x, w

    def where(self):
        x_shape = tuple(getattr(self.x, "shape", ()))
        w_shape = tuple(getattr(self.w, "shape", ()))
        return f"(input shape {x_shape}, weight shape {w_shape})"

    def error(self, message, kind=ValueError):
        return kind(f"{self.op}: {message} {self.where()}")


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def ints(call, name, value, ndim, minimum):
    """An int or a sequence of ``ndim`` ints, each >= minimum, as a tuple."""
    if is_int(value):
        values = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) and len(value) == ndim and all(is_int(v) for v in value):
        values = tuple(int(v) for v in value)
    else:
        raise call.error(f"{name} must be an int or a tuple of {ndim} ints, got {name}={value!r}",
                         TypeError)
    if any(v < minimum for v in values):
        what = "positive" if minimum == 1 else "non-negative"
        raise call.error(f"{name} must be {what}, got {name}={value!r}")
    return values


def padding_pairs(call, padding, ndim, kernel, dilation, stride, allow_strings=True):
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

    if is_int(padding):
        pairs = ((int(padding), int(padding)),) * ndim
    elif isinstance(padding, (tuple, list)):
        items = list(padding)
        if ndim == 1 and len(items) == 2 and all(is_int(v) for v in items):
            items = [tuple(items)]  # conv1d: (left, right)
        if len(items) != ndim:
            raise bad()
        pairs = []
        for item in items:
            if is_int(item):
                pairs.append((int(item), int(item)))
            elif (isinstance(item, (tuple, list)) and len(item) == 2
                  and all(is_int(v) for v in item)):
                pairs.append((int(item[0]), int(item[1])))
            else:
                raise bad()
        pairs = tuple(pairs)
    else:
        raise bad()
    if any(v < 0 for pair in pairs for v in pair):
        raise call.error(f"padding must be non-negative, got padding={padding!r}")
    return pairs


def check_groups(call, groups):
    if not is_int(groups):
        raise call.error(f"groups must be a positive int, got groups={groups!r}", TypeError)
    if groups < 1:
        raise call.error(f"groups must be a positive int, got groups={groups}")
    return int(groups)


def conv_tensors(call, x, weight, bias, ndim):
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


def check_bias(call, bias, channels):
    if bias is not None and tuple(bias.shape) != (channels,):
        raise call.error(f"bias must have shape ({channels},) (one value per output "
                         f"channel), got bias shape {tuple(bias.shape)}")


def to_2d(values, fill):
    """Per-dimension values of a 1-D conv with the height dimension prepended."""
    return (fill,) + tuple(values) if len(values) == 1 else tuple(values)


def conv_geometry(call, x, weight, stride, padding, dilation, groups, ndim):
    """Validate a conv's arguments; return its 2-D ConvGeometry."""
    groups = check_groups(call, groups)
    stride = ints(call, "stride", stride, ndim, 1)
    dilation = ints(call, "dilation", dilation, ndim, 1)
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
    pairs = padding_pairs(call, padding, ndim, kernel, dilation, stride)
    in_size = tuple(x.shape[2:])
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(in_size, pairs))
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(e > p for e, p in zip(extent, padded)):
        raise call.error(
            f"kernel size {kernel} (dilated extent {extent}, dilation={dilation}) is larger "
            f"than the padded input size {padded} (input size {in_size}, padding={padding!r})"
        )
    out_size = tuple((p - e) // s + 1 for p, e, s in zip(padded, extent, stride))
    (top, bottom), (left, right) = to_2d(pairs, (0, 0))
    return ConvGeometry(
        stride=to_2d(stride, 1), padding=(top, bottom, left, right),
        dilation=to_2d(dilation, 1), groups=groups, in_size=to_2d(in_size, 1),
        out_size=to_2d(out_size, 1), kernel=to_2d(kernel, 1),
    )


def transpose_geometry(call, x, weight, stride, padding, output_padding, groups, dilation,
                        ndim):
    """Validate a transposed conv's arguments; return the ConvGeometry of the conv
    it is the input gradient of (its in_size is the transposed conv's output)."""
    groups = check_groups(call, groups)
    stride = ints(call, "stride", stride, ndim, 1)
    dilation = ints(call, "dilation", dilation, ndim, 1)
    output_padding = ints(call, "output_padding", output_padding, ndim, 0)
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
    pairs = padding_pairs(call, padding, ndim, kernel, dilation, stride, allow_strings=False)
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
    (top, bottom), (left, right) = to_2d(pairs, (0, 0))
    return ConvGeometry(
        stride=to_2d(stride, 1), padding=(top, bottom, left, right),
        dilation=to_2d(dilation, 1), groups=groups, in_size=to_2d(out_size, 1),
        out_size=to_2d(in_size, 1), kernel=to_2d(kernel, 1),
    )


def weight_mask_of(call, weight_mask, weight_shape):
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
