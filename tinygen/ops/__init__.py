"""Differentiable ops, grouped by family (one module each).

Each op is a ``Function`` subclass (forward on arrays, backward on Tensors)
plus a lowercase function that validates arguments and applies it; ops that
are compositions of others (mean, var, the losses) are plain functions.
"""
import sys as _sys

from .elementwise import (  # noqa: F401
    add, sub, mul, div, pow, neg, abs, exp, log, log1p, sqrt, tanh, sigmoid, relu, leaky_relu,
    elu, softplus, clamp, clip, where, maximum, minimum, sign, eq, ne, lt, le, gt, ge,
    logical_not, isfinite, cast, to_device, clone, dropout,
)
from .reduce import (  # noqa: F401
    sum, mean, var, std, max, min, argmax, argmin, logsumexp, softmax, log_softmax, norm,
)
from .linalg import matmul  # noqa: F401
from .shape import (  # noqa: F401
    reshape, view, squeeze, unsqueeze, flatten, permute, transpose, broadcast_to, expand,
    sum_to, concatenate, cat, stack, split, chunk, pad, getitem, gather,
)
from .loss import (  # noqa: F401
    nll_loss, cross_entropy, binary_cross_entropy, binary_cross_entropy_with_logits, mse_loss,
    l1_loss,
)

# Tensor's methods (x + y, x.sum(), ...) call this package; autograd sits below it and
# does not import it, so the package binds itself there.
from ..autograd import tensor as _tensor  # noqa: E402

_tensor.ops = _sys.modules[__name__]
