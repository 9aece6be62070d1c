"""Tensor factories: ``tensor``, ``zeros``, ``randn``... (PyTorch names and defaults).

Floating data defaults to float32; pass ``dtype=tinygen.float64`` (or a numpy
dtype or its name) for double precision.  numpy arrays keep their dtype, as in
``torch.tensor``.
"""
import numbers

import numpy as np

from .autograd.tensor import Tensor, check_dtype
from .backend import to_device
from .backend.cuda import is_cupy_array as is_device_array
from .random import default_generator

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

_DEFAULT = float32


def _dtype(dtype, default=_DEFAULT):
    if dtype is None:
        return np.dtype(default)
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"not a dtype: {dtype!r}") from None


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"sizes must be non-negative ints, got {size}")
    return tuple(int(s) for s in size)


def _finish(array, requires_grad, device):
    """A leaf tensor of ``array`` on ``device`` (None: where ``array`` already is, so
    ``tensor(cuda_tensor)`` stays on the GPU as in PyTorch; new host data is on the CPU)."""
    check_dtype(array.dtype)
    t = Tensor._make(array if device is None else to_device(array, device))
    if requires_grad:
        t.requires_grad = True
    return t


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new leaf tensor holding a copy of ``data``."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) or is_device_array(data):
        array = data.copy() if dtype is None else data.astype(_dtype(dtype))
    else:
        array = np.array(data)
        if array.dtype == object:
            raise TypeError("tensor(): data must be numbers or nested sequences of equal length")
        if dtype is not None:
            array = array.astype(_dtype(dtype))
        elif array.dtype == np.float64:
            array = array.astype(_DEFAULT)
    return _finish(array, requires_grad, device)


def as_tensor(data, dtype=None, device=None):
    """Like ``tensor`` but shares memory with an array (numpy, or cupy on the GPU) when
    it can: when no dtype conversion and no copy to another device is needed."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    is_array = isinstance(data, np.ndarray) or is_device_array(data)
    if is_array and (dtype is None or np.dtype(dtype) == data.dtype):
        return _finish(data, False, device)
    return tensor(data, dtype=dtype, device=device)


def zeros(*size, dtype=None, requires_grad=False, device=None):
    return _finish(np.zeros(_shape(size), _dtype(dtype)), requires_grad, device)


def ones(*size, dtype=None, requires_grad=False, device=None):
    return _finish(np.ones(_shape(size), _dtype(dtype)), requires_grad, device)


def empty(*size, dtype=None, requires_grad=False, device=None):
    return _finish(np.empty(_shape(size), _dtype(dtype)), requires_grad, device)


def full(size, fill_value, dtype=None, requires_grad=False, device=None):
    size = _shape((size,) if isinstance(size, numbers.Integral) else (tuple(size),))
    if dtype is None and isinstance(fill_value, (bool, np.bool_)):
        dtype = bool_
    elif dtype is None and isinstance(fill_value, numbers.Integral):
        dtype = int64
    return _finish(np.full(size, fill_value, _dtype(dtype)), requires_grad, device)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must not be zero")
    integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    default = int64 if integral else _DEFAULT
    return _finish(np.arange(start, end, step).astype(_dtype(dtype, default)), requires_grad, device)


def linspace(start, end, steps, dtype=None, requires_grad=False, device=None):
    return _finish(np.linspace(start, end, steps).astype(_dtype(dtype)), requires_grad, device)


def eye(n, m=None, dtype=None, requires_grad=False, device=None):
    return _finish(np.eye(n, m, dtype=_dtype(dtype)), requires_grad, device)


def randn(*size, dtype=None, requires_grad=False, device=None, generator=None):
    rng = generator or default_generator()
    return _finish(rng.standard_normal(_shape(size)).astype(_dtype(dtype)), requires_grad, device)


def rand(*size, dtype=None, requires_grad=False, device=None, generator=None):
    rng = generator or default_generator()
    return _finish(rng.random(_shape(size)).astype(_dtype(dtype)), requires_grad, device)


def randint(low, high=None, size=(), dtype=None, device=None, generator=None):
    if high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    rng = generator or default_generator()
    size = _shape((size,) if isinstance(size, numbers.Integral) else (tuple(size),))
    return _finish(rng.integers(low, high, size).astype(_dtype(dtype, int64)), False, device)


def normal(mean, std, size, dtype=None, requires_grad=False, device=None, generator=None):
    rng = generator or default_generator()
    size = _shape((size,) if isinstance(size, numbers.Integral) else (tuple(size),))
    return _finish(rng.normal(mean, std, size).astype(_dtype(dtype)), requires_grad, device)


def _like(fn, x, dtype, requires_grad, device, **kwargs):
    return fn(x.shape, dtype=dtype or x.dtype, requires_grad=requires_grad,
              device=device or x.device, **kwargs)


def zeros_like(x, dtype=None, requires_grad=False, device=None):
    return _like(zeros, x, dtype, requires_grad, device)


def ones_like(x, dtype=None, requires_grad=False, device=None):
    return _like(ones, x, dtype, requires_grad, device)


def full_like(x, fill_value, dtype=None, requires_grad=False, device=None):
    return full(x.shape, fill_value, dtype=dtype or x.dtype, requires_grad=requires_grad,
                device=device or x.device)


def randn_like(x, dtype=None, requires_grad=False, device=None, generator=None):
    return _like(randn, x, dtype, requires_grad, device, generator=generator)


def rand_like(x, dtype=None, requires_grad=False, device=None, generator=None):
    return _like(rand, x, dtype, requires_grad, device, generator=generator)
