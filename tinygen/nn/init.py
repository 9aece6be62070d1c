"""Weight initialisation, in place, with PyTorch's names and formulas.

Every function writes into ``tensor.data`` (outside autograd) and returns the
tensor.  Random numbers are drawn on the CPU in float64 from ``generator`` (a
``numpy.random.Generator``; default ``tinygen.random.default_generator()``),
then cast to the tensor's dtype and copied to its device, so one seed gives the
same weights on every device.

Fans, for a weight of shape (out, in, *kernel):
    fan_in  = in  * prod(kernel)
    fan_out = out * prod(kernel)
(a conv weight's second dimension is already ``in / groups``).
"""
import inspect
import math
import numbers
from statistics import NormalDist

import numpy as np

from ..autograd.tensor import Tensor
from ..autograd.grad_mode import no_grad
from ..backend import to_device
from .. import random as _random

_LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
               "conv_transpose2d", "conv_transpose3d")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for ``nonlinearity`` (PyTorch's table).

    linear / conv / sigmoid: 1;  tanh: 5/3;  relu: sqrt(2);
    leaky_relu: sqrt(2 / (1 + negative_slope^2)) (slope ``param``, default 0.01);
    selu: 3/4.
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            negative_slope = float(param)
        else:
            raise ValueError(f"negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a Linear (out, in) or conv (out, in/groups, *k) weight."""
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions, "
            f"got shape {shape}"
        )
    receptive_field = 1
    for k in shape[2:]:
        receptive_field *= k
    return shape[1] * receptive_field, shape[0] * receptive_field


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower() if isinstance(mode, str) else mode
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} not supported, please use one of 'fan_in', 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


# --- writing -------------------------------------------------------------------------------
def _check(tensor, fn):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{fn}: expected a Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind != "f":
        raise TypeError(f"{fn}: expected a floating-point tensor, got dtype {tensor.dtype}")


def _rng(generator):
    return generator if generator is not None else _random.default_generator()


def _write(tensor, values):
    with no_grad():
        values = np.asarray(values).astype(tensor.dtype, copy=False)
        tensor.data[...] = to_device(values, tensor.device)
    return tensor


# --- plain distributions ---------------------------------------------------------------------
def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b)."""
    _check(tensor, "uniform_")
    if not a <= b:
        raise ValueError(f"uniform_: expects a <= b, got a={a}, b={b}")
    return _write(tensor, _rng(generator).uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std^2)."""
    _check(tensor, "normal_")
    if std < 0:
        raise ValueError(f"normal_: std must be non-negative, got {std}")
    return _write(tensor, _rng(generator).normal(mean, std, tensor.shape))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std^2) truncated to [a, b] (the bounds are absolute, like PyTorch)."""
    _check(tensor, "trunc_normal_")
    if not a < b:
        raise ValueError(f"trunc_normal_: expects a < b, got a={a}, b={b}")
    if std <= 0:
        raise ValueError(f"trunc_normal_: std must be positive, got {std}")
    rng = _rng(generator)
    n = tensor.numel()
    unit = NormalDist()
    lo, hi = unit.cdf((a - mean) / std), unit.cdf((b - mean) / std)
    if hi - lo > 0.05:
        # Rejection sampling: exact, and cheap while [a, b] holds a fair share of the mass.
        out = np.empty(0)
        while out.size < n:
            draw = rng.normal(mean, std, max(2 * (n - out.size), 16))
            out = np.concatenate([out, draw[(draw >= a) & (draw <= b)]])
        values = out[:n]
    else:
        # Far in a tail: inverse CDF of a uniform draw on [cdf(a), cdf(b)].
        u = rng.uniform(lo, hi, n)
        values = np.array([unit.inv_cdf(min(max(x, 1e-300), 1 - 1e-16)) for x in u])
        values = np.clip(mean + std * values, a, b)
    return _write(tensor, values.reshape(tensor.shape))


def constant_(tensor, val):
    _check(tensor, "constant_")
    with no_grad():
        tensor.data[...] = val
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


# --- scaled by fans -------------------------------------------------------------------------
def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    _check(tensor, "xavier_uniform_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return _write(tensor, _rng(generator).uniform(-bound, bound, tensor.shape))


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    _check(tensor, "xavier_normal_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return _write(tensor, _rng(generator).normal(0.0, std, tensor.shape))


def _kaiming_std(tensor, a, mode, nonlinearity):
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(fan) if fan else 0.0


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-bound, bound), bound = gain * sqrt(3 / fan) (He et al., 2015).

    ``a`` is the negative slope of the leaky ReLU that follows (only used with
    ``nonlinearity='leaky_relu'``).
    """
    _check(tensor, "kaiming_uniform_")
    if 0 in tensor.shape:
        return tensor  # nothing to fill (PyTorch warns and returns)
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return _write(tensor, _rng(generator).uniform(-bound, bound, tensor.shape))


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2), std = gain / sqrt(fan)."""
    _check(tensor, "kaiming_normal_")
    if 0 in tensor.shape:
        return tensor
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    return _write(tensor, _rng(generator).normal(0.0, std, tensor.shape))


def default_weight_and_bias_(weight, bias=None, generator=None):
    """PyTorch's default initialisation of Linear and conv layers: weight
    kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the
    bias uniform on the same bound."""
    kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound, generator=generator)


def reset_parameters_(module, generator=None):
    """Re-draw the initial weights of every sub-module of ``module`` that has a
    ``reset_parameters`` (PyTorch's default initialisations) from ``generator``, so
    that one seed gives one model whatever was drawn before."""
    for sub in module.modules():
        if sub is module or not hasattr(sub, "reset_parameters"):
            continue
        if "generator" in inspect.signature(sub.reset_parameters).parameters:
            sub.reset_parameters(generator=generator)
        else:
            sub.reset_parameters()
