"""Constructor-argument checks shared by the layers (messages name the argument)."""
import numbers

import numpy as np


def positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


def number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def probability(name, value):
    value = number(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
    return value


def float_dtype(dtype, name="dtype"):
    """np.dtype of a floating-point ``dtype`` (None means float32)."""
    if dtype is None:
        return np.dtype(np.float32)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be a floating-point dtype, got {dtype!r}") from None
    if dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point dtype, got {dtype}")
    return dtype
