"""Binary cross-entropy on logits (sigmoid cross-entropy), elementwise, in plain array
ops: the reference.

For a logit x and a target t (a probability: 0 or 1 for binary data, or any value in
[0, 1]),

    loss = -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]
         = max(x, 0) - x t + log1p(exp(-|x|))         (no exp of a positive number)
    d loss / dx = sigmoid(x) - t

so the backward takes the upstream gradient g to ``g (sigmoid(x) - t)``.  Inputs are
same-shaped arrays of one floating dtype (checked by the op layer,
``tinygen.ops.sigmoid_cross_entropy``).  Generic over the array module (numpy here,
cupy on the GPU: kernels._ALIASES), in the inputs' own precision.
"""
from .. import array_module
from .activations import sigmoid_forward as _sigmoid


def forward(x, t):
    """The per-element losses, shaped and typed like ``x``."""
    xp = array_module(x)
    zero = x.dtype.type(0)
    return xp.maximum(x, zero) - x * t + xp.log1p(xp.exp(-xp.abs(x)))


def backward(g, x, t):
    """``g (sigmoid(x) - t)``: the gradient of ``sum(g * forward(x, t))`` for ``x``."""
    return g * (_sigmoid(x) - t)
