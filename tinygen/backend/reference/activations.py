"""Reference activations and their fused backward products, for any array module.

Read these to see what the numba kernels (``numba_kernels/activations.py``) compute;
on the GPU these expressions are what runs.  Constants are in the array's dtype so
float32 stays float32 throughout.
"""
from .. import array_module


def leaky_relu_forward(x, slope):
    return array_module(x).where(x > 0, x, x * x.dtype.type(slope))


def leaky_relu_backward(g, x, slope):
    """g where x > 0, else g * slope."""
    return array_module(g).where(x > 0, g, g * g.dtype.type(slope))


def sigmoid_forward(x):
    xp = array_module(x)
    one = x.dtype.type(1)
    e = xp.exp(-xp.abs(x))        # exp of a non-positive number only: never overflows
    return xp.where(x >= 0, one / (one + e), e / (one + e))


def sigmoid_backward(g, y):
    """g * y * (1 - y), y = sigmoid(x)."""
    return g * y * (y.dtype.type(1) - y)


def tanh_backward(g, y):
    """g * (1 - y * y), y = tanh(x)."""
    return g * (y.dtype.type(1) - y * y)
