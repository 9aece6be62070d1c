"""Convolution layers: Conv1d, Conv2d, ConvTranspose1d/2d (PyTorch's), and the
autoregressive ones: CausalConv1d (WaveNet), MaskedConv2d (PixelCNN) and the gated
PixelCNN's DownShiftedConv2d / DownRightShiftedConv2d (the gated layer built of them is
the model's: ``tinygen.models.pixelcnn.gated_layer``).

Default initialisation is PyTorch's: ``kaiming_uniform_(a=sqrt(5))`` on the
weight, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the
bias.  fan_in is computed from the weight's dimension 1 and the kernel size,
for transposed convs too (their weight is (in, out/groups, *k), so that is
out/groups * prod(k), exactly as PyTorch computes it).
"""
import numbers

import numpy as np

from ..backend import to_device
from ..ops import conv as C
from ..ops import conv_pixelcnn as P
from ..ops.shape import pad as _pad
from . import init
from ._validate import positive_int, float_dtype
from .module import Module
from .parameter import Parameter


def _tuple(name, value, ndim, minimum=1):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value),) * ndim
    if (not isinstance(value, (tuple, list)) or len(value) != ndim
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        raise TypeError(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}")
    if any(v < minimum for v in value):
        raise ValueError(f"{name} must be >= {minimum}, got {name}={tuple(value)}")
    return tuple(int(v) for v in value)


class _ConvNd(Module):
    """Shared by the conv layers: arguments, parameters and initialisation."""

    _ndim = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", output_padding=0, dtype=None,
                 device=None):
        super().__init__()
        name = type(self).__name__
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.groups = positive_int("groups", groups)
        for arg, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % groups:
                raise ValueError(f"{name}: {arg}={channels} must be divisible by groups={groups}")
        n = self._ndim
        self.kernel_size = _tuple("kernel_size", kernel_size, n)
        self.stride = _tuple("stride", stride, n)
        self.dilation = _tuple("dilation", dilation, n)
        self.output_padding = _tuple("output_padding", output_padding, n, minimum=0)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be 'same', 'valid', an int or a tuple, "
                                 f"got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 f"convolutions (stride={self.stride})")
        self.padding = padding
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"{name}: padding_mode must be 'zeros', 'reflect', 'replicate' or "
                             f"'circular', got {padding_mode!r}")
        if padding_mode != "zeros" and self._transposed:
            raise ValueError(f"{name}: only padding_mode='zeros' is supported for transposed "
                             "convolutions (as in PyTorch)")
        self.padding_mode = padding_mode
        dtype = float_dtype(dtype)
        device = device or "cpu"
        if self._transposed:
            shape = (self.in_channels, self.out_channels // groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // groups) + self.kernel_size
        self.weight = Parameter(to_device(np.empty(shape, dtype), device))
        if bias:
            self.bias = Parameter(to_device(np.empty((self.out_channels,), dtype), device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self, generator=None):
        init.default_weight_and_bias_(self.weight, self.bias, generator)

    def forward(self, input, residual=None):
        """The conv of ``input``; plus ``residual`` (a tensor of the output's shape, tinygen's
        extra), added by the conv's kernels rather than by a separate add."""
        padding = self.padding
        if self.padding_mode != "zeros":
            input, padding = self._explicit_padding(input), 0
        return self._op(input, self.weight, self.bias, self.stride, padding, self.dilation,
                        self.groups, residual=residual)

    def _explicit_padding(self, input):
        """For padding_mode != 'zeros': pad the input explicitly (F.pad order), then
        convolve without padding, as PyTorch does."""
        if isinstance(self.padding, str):
            pairs = []
            for k, d in zip(self.kernel_size, self.dilation):
                total = d * (k - 1) if self.padding == "same" else 0
                pairs.append((total // 2, total - total // 2))
        else:
            p = _tuple("padding", self.padding, self._ndim, minimum=0)
            pairs = [(v, v) for v in p]
        widths = []
        for lo, hi in reversed(pairs):
            widths += [lo, hi]
        return _pad(input, widths, mode=self.padding_mode)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._ndim and self.padding != 0:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._ndim:
            s += f", dilation={self.dilation}"
        if self._transposed and self.output_padding != (0,) * self._ndim:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L); weight (out, in/groups, k)."""

    _ndim = 1
    _op = staticmethod(C.conv1d)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=None, device=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype=dtype, device=device)



class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W); weight (out, in/groups, kH, kW)."""

    _ndim = 2
    _op = staticmethod(C.conv2d)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=None, device=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype=dtype, device=device)



class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=None, device=None):
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple, got "
                             f"{padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, dtype=dtype, device=device)

    def forward(self, input, output_size=None):
        return self._op(input, self.weight, self.bias, self.stride, self.padding,
                        self._output_padding(input, output_size), self.groups, self.dilation)

    def _output_padding(self, input, output_size):
        """PyTorch's ``output_size``: the output_padding that yields that size."""
        if output_size is None:
            return self.output_padding
        n = self._ndim
        output_size = tuple(int(s) for s in output_size)[-n:]
        if len(output_size) != n:
            raise ValueError(f"{type(self).__name__}: output_size must have {n} spatial sizes, "
                             f"got {output_size}")
        padding = _tuple("padding", self.padding, n, minimum=0)
        result = []
        for i in range(n):
            smallest = ((input.shape[-n + i] - 1) * self.stride[i] - 2 * padding[i]
                        + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            extra = output_size[i] - smallest
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(
                    f"{type(self).__name__}: requested output_size {output_size} is not "
                    f"reachable from input shape {tuple(input.shape)}: sizes from "
                    f"{smallest} to {smallest + max(self.stride[i], self.dilation[i]) - 1} "
                    f"are possible in dimension {i}")
            result.append(extra)
        return tuple(result)


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution; weight (in, out/groups, k)."""

    _ndim = 1
    _op = staticmethod(C.conv_transpose1d)


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution; weight (in, out/groups, kH, kW)."""

    _ndim = 2
    _op = staticmethod(C.conv_transpose2d)


class CausalConv1d(_ConvNd):
    """WaveNet's causal conv: output length = input length, output t sees inputs <= t.
    Weight (out, in, k); ``causal_conv1d`` pads dilation*(k-1) on the left."""

    _ndim = 1

    def __init__(self, in_channels, out_channels, kernel_size, dilation=1, bias=True, dtype=None,
                 device=None):
        super().__init__(in_channels, out_channels, kernel_size, 1, 0, dilation, 1, bias,
                         dtype=dtype, device=device)

    @property
    def receptive_field(self):
        """How many inputs (the current one included) an output sees."""
        return self.dilation[0] * (self.kernel_size[0] - 1) + 1

    def forward(self, input, residual=None):
        return C.causal_conv1d(input, self.weight, self.bias, self.dilation[0],
                               residual=residual)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}" + (", bias=False" if self.bias is None else ""))


class MaskedConv2d(_ConvNd):
    """PixelCNN's masked conv (see ``tinygen.ops.conv_pixelcnn.pixelcnn_mask``); 'same' padding,
    stride 1, odd kernel.  Only the taps the mask keeps are computed; the weight's
    masked entries are zeroed at initialisation and always get zero gradient."""

    _ndim = 2

    def __init__(self, in_channels, out_channels, kernel_size, mask_type, groups_rgb=1,
                 bias=True, dtype=None, device=None):
        kernel = _tuple("kernel_size", kernel_size, 2)
        # validates the mask arguments (odd kernel, type, divisibility) up front
        P.pixelcnn_mask(kernel, mask_type, in_channels, out_channels, groups_rgb)
        self.mask_type = mask_type.upper()
        self.groups_rgb = int(groups_rgb)
        super().__init__(in_channels, out_channels, kernel, 1, "same", 1, 1, bias,
                         dtype=dtype, device=device)

    @property
    def mask(self):
        """The boolean (out, in, kH, kW) mask."""
        return P.pixelcnn_mask(self.kernel_size, self.mask_type, self.in_channels,
                               self.out_channels, self.groups_rgb)

    def reset_parameters(self, generator=None):
        init.default_weight_and_bias_(self.weight, self.bias, generator)
        xp_mask = to_device(self.mask, self.weight.device)
        self.weight.data[...] = self.weight.data * xp_mask

    def forward(self, input, residual=None):
        return P.masked_conv2d(input, self.weight, self.bias, self.mask_type, "same",
                               self.groups_rgb, residual=residual)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"mask_type={self.mask_type!r}, groups_rgb={self.groups_rgb}"
                + (", bias=False" if self.bias is None else ""))


class DownShiftedConv2d(_ConvNd):
    """The gated PixelCNN's vertical-stack conv (``down_shifted_conv2d``): output row r
    sees rows r-kH+1..r, columns c-kW//2..c+kW//2.  The paper's kernel for an n x n
    receptive field is (n//2 + 1, n)."""

    _ndim = 2

    def __init__(self, in_channels, out_channels, kernel_size=(2, 3), bias=True, dtype=None,
                 device=None):
        kernel = _tuple("kernel_size", kernel_size, 2)
        if kernel[1] % 2 == 0:
            raise ValueError(f"DownShiftedConv2d: the kernel width must be odd, got "
                             f"kernel_size={kernel}")
        super().__init__(in_channels, out_channels, kernel, bias=bias, dtype=dtype,
                         device=device)

    def forward(self, input, residual=None):
        return P.down_shifted_conv2d(input, self.weight, self.bias, residual=residual)


class DownRightShiftedConv2d(_ConvNd):
    """The gated PixelCNN's horizontal-stack conv (``down_right_shifted_conv2d``):
    output (r, c) sees rows r-kH+1..r, columns c-kW+1..c (or c-kW..c-1 when
    ``include_current=False``, the first layer).  The paper's kernel is (1, n//2 + 1)."""

    _ndim = 2

    def __init__(self, in_channels, out_channels, kernel_size=(1, 2), include_current=True,
                 bias=True, dtype=None, device=None):
        self.include_current = bool(include_current)
        super().__init__(in_channels, out_channels, kernel_size, bias=bias, dtype=dtype,
                         device=device)

    def forward(self, input, residual=None):
        return P.down_right_shifted_conv2d(input, self.weight, self.bias, self.include_current,
                                           residual=residual)

    def extra_repr(self):
        return super().extra_repr() + f", include_current={self.include_current}"
