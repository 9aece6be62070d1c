"""Differentiable ops, grouped by family (one module each).

Each op is a ``Function`` subclass (forward on arrays, backward on Tensors)
plus a lowercase function that validates arguments and applies it; ops that
are compositions of others (mean, var, the losses) are plain functions.
"""
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
