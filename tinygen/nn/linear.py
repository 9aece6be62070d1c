"""``Linear``, ``Identity`` and ``Flatten``."""

import numpy as np

from ..backend import to_device
from . import functional as F
from . import init
from ._validate import positive_int, float_dtype
from .module import Module
from .parameter import Parameter


class Identity(Module):
    """Returns its input; accepts (and ignores) any constructor arguments."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """``y = x @ weight.T + bias``; weight (out_features, in_features).

    Default initialisation is PyTorch's: ``kaiming_uniform_(a=sqrt(5))`` for the
    weight, i.e. U(-1/sqrt(in_features), 1/sqrt(in_features)), and the same
    bound for the bias.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=None, device=None):
        super().__init__()
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        dtype = float_dtype(dtype)
        device = device or "cpu"
        self.weight = Parameter(to_device(np.empty((out_features, in_features), dtype), device))
        if bias:
            self.bias = Parameter(to_device(np.empty((out_features,), dtype), device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self, generator=None):
        init.default_weight_and_bias_(self.weight, self.bias, generator)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Flattens dimensions ``start_dim..end_dim`` (default: all but the batch dimension)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
