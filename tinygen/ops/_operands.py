"""Turning op arguments into Tensors, and the dtype rules for mixing them.

Rules (strict where silence would hide a bug, PyTorch-like elsewhere):
  * two floating tensors of different precision are an error (float32 + float64
    is almost always an accident that halves speed or loses precision);
  * an integer or boolean operand meeting a floating one is cast to its dtype;
  * Python scalars take the dtype of the tensor they meet.
"""
import numbers

import numpy as np

from ..autograd.tensor import Tensor
from ..backend import array_module

_DEFAULT_FLOAT = np.float32


def is_float(dtype):
    return np.dtype(dtype).kind == "f"


def as_tensor(value, like=None):
    """``value`` as a Tensor; scalars and arrays take ``like``'s dtype and device."""
    if isinstance(value, Tensor):
        return value
    if like is not None:
        kind = type(value)
        if kind is float and like.data.dtype.kind == "f":  # the common case (x * 0.5), fast
            return Tensor._make(array_module(like.data).asarray(value, dtype=like.data.dtype))
        xp = array_module(like.data)
        if isinstance(value, (bool, numbers.Number)) and not isinstance(value, np.ndarray):
            dtype = like.dtype
            if not is_float(dtype) and isinstance(value, float):
                dtype = _DEFAULT_FLOAT
            return Tensor._make(xp.asarray(value, dtype=dtype))
        return Tensor._make(xp.asarray(value))
    array = np.asarray(value)
    if array.dtype == np.float64 and not isinstance(value, np.ndarray):
        array = array.astype(_DEFAULT_FLOAT)
    return Tensor._make(array)


def check_same_device(op_name, *named):
    """Raise naming the op and both devices unless every ``(name, tensor)`` in ``named``
    (None tensors skipped) is on one device.  Function.apply checks its Tensor inputs;
    this is for tensors an op reads outside of them (targets, weights, buffers)."""
    first = None
    for name, t in named:
        if t is None:
            continue
        if first is None:
            first = (name, t.device)
        elif t.device != first[1]:
            raise RuntimeError(
                f"{op_name}: {first[0]} is on {first[1]} but {name} is on {t.device}; "
                "move them to one device with .to(device)"
            )


def _cast(t, dtype):
    from .elementwise import cast

    return cast(t, dtype)


def binary_operands(a, b, op_name):
    """Two operands as Tensors with one dtype, or a TypeError naming both."""
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            raise TypeError(f"{op_name}: at least one operand must be a Tensor")
        a = as_tensor(a, b)
    elif not isinstance(b, Tensor):
        b = as_tensor(b, a)
    if a.dtype == b.dtype:
        return a, b
    a_float, b_float = is_float(a.dtype), is_float(b.dtype)
    if a_float and b_float:
        raise TypeError(
            f"{op_name}: dtype mismatch, {a.dtype} (shape {a.shape}) and {b.dtype} "
            f"(shape {b.shape}); convert one with .float() or .double()"
        )
    if a_float:
        return a, _cast(b, a.dtype)
    if b_float:
        return _cast(a, b.dtype), b
    dtype = np.result_type(a.dtype, b.dtype)
    return _cast(a, dtype), _cast(b, dtype)


def check_broadcast(op_name, a_shape, b_shape):
    """Raise ``broadcast_shapes``' error unless two shapes broadcast together: a loop
    over their trailing dimensions, a quarter of numpy.broadcast_shapes' ~2 us (a binary
    op with a bias or a scalar pays it on every call)."""
    for m, n in zip(a_shape[::-1], b_shape[::-1]):
        if m != n and m != 1 and n != 1:
            broadcast_shapes(op_name, a_shape, b_shape)


def broadcast_shapes(op_name, *shapes):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(
            f"{op_name}: shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be broadcast "
            "together"
        ) from None
