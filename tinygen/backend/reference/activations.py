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


def _neg_abs_exp(x):
    """exp(-|x|): the exp of a non-positive number only, so it never overflows."""
    xp = array_module(x)
    return xp.exp(-xp.abs(x))


def sigmoid_forward(x):
    one = x.dtype.type(1)
    e = _neg_abs_exp(x)
    return array_module(x).where(x >= 0, one / (one + e), e / (one + e))


def relu_forward(x):
    return array_module(x).maximum(x, 0)


def relu_backward(g, y):
    """g * (1 if y > 0 else 0), y = relu(x) (a product, so -0 and NaN behave as g * 0)."""
    return g * (y > 0).astype(g.dtype)


def softplus_forward(x, beta, threshold):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's)."""
    xp = array_module(x)
    z = x * x.dtype.type(beta)
    soft = (xp.maximum(z, 0) + xp.log1p(_neg_abs_exp(z))) / x.dtype.type(beta)
    return xp.where(z > threshold, x, soft)


def softplus_backward(g, x, beta, threshold):
    """g where beta x > threshold, else g * sigmoid(beta x)."""
    z = x * x.dtype.type(beta)
    return array_module(g).where(z > threshold, g, g * sigmoid_forward(z))


def sigmoid_backward(g, y):
    """g * y * (1 - y), y = sigmoid(x)."""
    return g * y * (y.dtype.type(1) - y)


def tanh_forward(x):
    return array_module(x).tanh(x)


def tanh_backward(g, y):
    """g * (1 - y * y), y = tanh(x)."""
    return g * (y.dtype.type(1) - y * y)
