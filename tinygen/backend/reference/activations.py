"""Reference activations and their fused backward products, for any array module.

Read these to see what the numba kernels (``numba_kernels/activations.py``) compute;
on the GPU these expressions are what runs.  Constants are in the array's dtype so
float32 stays float32 throughout.

ReLU and LeakyReLU keep for their backward only where x > 0, as a packed bit mask
(1 bit per element, not the 4 or 8 bytes of a saved input or output: a backward
that reads a 32nd of the memory, and a 32nd of the memory kept).  Its layout, shared
by every implementation: the elements, in C order, in blocks of 256 (MASK_BLOCK);
block b's 32 bytes are mask[32 b : 32 b + 32], and bit k of byte 32 b + j is element
256 b + 32 k + j (a partial last block: the missing elements' bits are 0).  So a
kernel packs and unpacks 32 consecutive elements at a time with one shift, a loop
that vectorises, where bit k of byte i // 8 for element i would shuffle.
"""
import math

import numpy as np

from .. import array_module

MASK_BLOCK = 256        # elements per 32 bytes of mask


def _mask_bytes(n):
    """The mask's length in bytes for ``n`` elements."""
    return -(-n // MASK_BLOCK) * (MASK_BLOCK // 8)


def _pack(condition):
    """A boolean array as the packed mask (the layout above), a flat uint8 array."""
    xp = array_module(condition)
    flat = condition.reshape(-1)
    bits = xp.zeros(_mask_bytes(flat.size) * 8, dtype=np.uint8)
    bits[:flat.size] = flat
    weights = xp.asarray([1, 2, 4, 8, 16, 32, 64, 128], dtype=np.uint8).reshape(1, 8, 1)
    return (bits.reshape(-1, 8, 32) * weights).sum(axis=1, dtype=np.uint8).reshape(-1)


def _unpack(mask, shape):
    """The packed mask of an array of ``shape`` as a boolean array of that shape."""
    xp = array_module(mask)
    _check_mask(mask, shape)
    bits = (mask.reshape(-1, 1, 32) >> xp.arange(8, dtype=np.uint8).reshape(1, 8, 1)) & 1
    n = math.prod(shape)
    return bits.reshape(-1)[:n].reshape(shape).astype(bool)


def _check_mask(mask, shape):
    """A clear error for a mask that is not the packed mask of an array of ``shape``."""
    n = math.prod(shape)
    if mask.dtype != np.uint8 or mask.ndim != 1 or mask.size != _mask_bytes(n):
        raise ValueError(f"relu/leaky_relu backward: the mask must be the packed uint8 mask "
                         f"of {_mask_bytes(n)} bytes of a gradient of shape {tuple(shape)}, "
                         f"got {mask.dtype} of shape {tuple(mask.shape)}")


def leaky_relu_forward(x, slope):
    """(the output, the packed mask of x > 0)."""
    positive = x > 0
    return array_module(x).where(positive, x, x * x.dtype.type(slope)), _pack(positive)


def leaky_relu_backward(g, mask, slope):
    """g where x > 0 (the mask), else g * slope."""
    return array_module(g).where(_unpack(mask, g.shape), g, g * g.dtype.type(slope))


def _neg_abs_exp(x):
    """exp(-|x|): the exp of a non-positive number only, so it never overflows."""
    xp = array_module(x)
    return xp.exp(-xp.abs(x))


def sigmoid_forward(x):
    one = x.dtype.type(1)
    e = _neg_abs_exp(x)
    return array_module(x).where(x >= 0, one / (one + e), e / (one + e))


def relu_forward(x):
    """(relu(x), the packed mask of x > 0: where relu(x) > 0, NaN and -0 excluded)."""
    return array_module(x).maximum(x, 0), _pack(x > 0)


def relu_backward(g, mask):
    """g * (1 if x > 0 else 0) (a product, so -0 and NaN behave as g * 0)."""
    return g * _unpack(mask, g.shape).astype(g.dtype)


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
