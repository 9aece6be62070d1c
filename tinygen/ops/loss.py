"""Loss family, composed of differentiable ops (so all are twice differentiable).

Names, arguments and defaults follow ``torch.nn.functional``.
"""
import numpy as np

from ..autograd.tensor import Tensor
from ..backend import array_module
from ._operands import as_tensor, binary_operands, is_float, check_same_device
from .elementwise import log, clamp, softplus, abs as _abs, _const
from .reduce import sum, mean, log_softmax
from .shape import gather, unsqueeze, squeeze, reshape
from .sigmoid_cross_entropy import sigmoid_cross_entropy
from .softmax_cross_entropy import IGNORED, softmax_cross_entropy

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction):
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    return loss


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _same_shape(name, input, target):
    if input.shape != target.shape:
        raise ValueError(f"{name}: input shape {input.shape} and target shape {target.shape} differ")


def _class_targets(name, input, target, ignore_index):
    """Checked class-index targets for ``input`` (N, C, d...) or (C,): returns
    (input, target array, valid mask, target with ignored positions set to 0,
    batched); an unbatched (C,) input comes back as (1, C) with a (1,) target."""
    target_data = target.data if isinstance(target, Tensor) else np.asarray(target)
    if target_data.dtype.kind not in "iu":
        raise TypeError(f"{name}: target must hold integer class indices, got {target_data.dtype}")
    if input.ndim < 1:
        raise ValueError(f"{name}: input must have a class dimension")
    batched = input.ndim >= 2
    if not batched:  # (C,) with a scalar target
        input, target_data = unsqueeze(input, 0), target_data.reshape(1)
    n_classes = input.shape[1]
    expected = (input.shape[0],) + input.shape[2:]
    if tuple(target_data.shape) != expected:
        raise ValueError(
            f"{name}: target shape {tuple(target_data.shape)} does not match input shape "
            f"{input.shape} (expected {expected})"
        )
    xp = array_module(input.data)
    target_data = xp.asarray(target_data)
    valid = target_data != ignore_index
    # Out of range only where not ignored (ignore_index may be out of range); the bounds
    # first, as they are in almost every call: two reductions, not five array ops.
    if target_data.size and bool((target_data.min() < 0) | (target_data.max() >= n_classes)):
        bad = target_data[valid & ((target_data < 0) | (target_data >= n_classes))]
        if bad.size:
            raise IndexError(
                f"{name}: target {int(bad.reshape(-1)[0])} is out of range for {n_classes} classes"
            )
    safe_target = xp.where(valid, target_data, 0)
    return input, target_data, valid, safe_target, batched


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class ``target`` under log-probabilities ``input``.

    ``input`` is (N, C) or (N, C, d1, d2, ...); ``target`` is (N,) or (N, d1, ...)
    of integer class indices.  ``mean`` divides by the total weight of the
    targets that are not ``ignore_index``, like PyTorch.
    """
    _check_reduction(reduction)
    input, target_data, valid, safe_target, batched = _class_targets(
        "nll_loss", input, target, ignore_index)
    n_classes = input.shape[1]
    picked = squeeze(gather(input, 1, unsqueeze(_const(safe_target), 1)), 1)
    w = valid.astype(input.dtype)
    if weight is not None:
        weight = as_tensor(weight, input)
        if weight.shape != (n_classes,):
            raise ValueError(f"nll_loss: weight must have shape ({n_classes},), got {weight.shape}")
        check_same_device("nll_loss", ("input", input), ("weight", weight))
        w = w * weight.data[safe_target]
    w = _const(w)
    loss = -picked * w
    if reduction == "mean":
        total = float(w.data.sum())
        return sum(loss) * (1.0 / total) if total > 0 else sum(loss) * float("nan")
    if reduction == "sum":
        return sum(loss)
    return loss if batched else squeeze(loss, 0)


def _fused_cross_entropy(input, target, ignore_index, reduction):
    """cross_entropy for class indices without weights or smoothing: one fused op
    (softmax_cross_entropy.py) instead of log_softmax, gather and their backwards, and
    the reduction inside it."""
    input, _, valid, safe_target, batched = _class_targets(
        "cross_entropy", input, target, ignore_index)
    xp = array_module(input.data)
    kernel_target = xp.where(valid, safe_target, IGNORED).astype(xp.int64, copy=False)
    if reduction == "none":
        loss = softmax_cross_entropy(input, kernel_target)
        return loss if batched else squeeze(loss, 0)
    scale = 1.0
    if reduction == "mean":
        total = float(xp.count_nonzero(valid))
        scale = 1.0 / total if total > 0 else float("nan")   # (nothing to average: NaN)
    return softmax_cross_entropy(input, kernel_target, scale)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Softmax cross-entropy from logits; ``target`` holds class indices or probabilities."""
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    class_axis = 1 if input.ndim >= 2 else 0
    target_t = target if isinstance(target, Tensor) else None
    soft = target_t is not None and is_float(target_t.dtype)
    if not soft and weight is None and not label_smoothing:
        return _fused_cross_entropy(input, target, ignore_index, reduction)
    logp = log_softmax(input, axis=class_axis)
    if soft:
        # Class probabilities (soft labels).
        _same_shape("cross_entropy", input, target_t)
        n_classes = input.shape[class_axis]
        if label_smoothing:
            target_t = target_t * (1.0 - label_smoothing) + label_smoothing / n_classes
        terms = -(logp * target_t)
        if weight is not None:
            shape = [1] * input.ndim
            shape[class_axis] = n_classes
            terms = terms * reshape(as_tensor(weight, input), tuple(shape))
        loss = sum(terms, class_axis)
        return _reduce(loss, reduction)
    loss = nll_loss(logp, target, weight, ignore_index, reduction)
    if not label_smoothing:
        return loss
    # Smoothing mixes in the uniform distribution over classes:
    # (1-e) * nll + e/C * sum_c w_c * (-logp_c), averaged with the same
    # normaliser (the total weight of the non-ignored targets) as the nll term.
    n_classes = input.shape[class_axis]
    xp = array_module(input.data)
    target_data = xp.asarray(target.data if isinstance(target, Tensor) else np.asarray(target))
    valid = target_data != ignore_index
    neg_logp = -logp
    if weight is not None:
        weight = as_tensor(weight, input)
        shape = [1] * input.ndim
        shape[class_axis] = n_classes
        neg_logp = neg_logp * reshape(weight, tuple(shape))
    smooth = sum(neg_logp, class_axis) * _const(valid.astype(input.dtype)) * (1.0 / n_classes)
    if input.ndim < 2:
        smooth = reshape(smooth, ())
    if reduction == "mean":
        safe = xp.where(valid, target_data, 0)
        w = valid.astype(input.dtype) * (weight.data[safe] if weight is not None else 1.0)
        total = float(w.sum())
        smooth = sum(smooth) * (1.0 / total if total > 0 else float("nan"))
    elif reduction == "sum":
        smooth = sum(smooth)
    return loss * (1.0 - label_smoothing) + smooth * label_smoothing


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """BCE on probabilities; the logs are clamped at -100 like PyTorch."""
    _check_reduction(reduction)
    target = as_tensor(target, input)
    _same_shape("binary_cross_entropy", input, target)
    if input.data.size and (float(input.data.min()) < 0 or float(input.data.max()) > 1):
        raise ValueError("binary_cross_entropy: input must hold probabilities in [0, 1]")
    loss = -(target * clamp(log(input), min=-100.0) + (1.0 - target) * clamp(log(1.0 - input), min=-100.0))
    if weight is not None:
        loss = loss * as_tensor(weight, input)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """BCE on logits, computed stably as (1-t) x + (1 + (pw-1) t) softplus(-x)."""
    _check_reduction(reduction)
    target = as_tensor(target, input)
    _same_shape("binary_cross_entropy_with_logits", input, target)
    if (pos_weight is None and not target.requires_grad and isinstance(input, Tensor)
            and is_float(input.dtype)):
        # the fused node (sigmoid_cross_entropy.py): the composition below is its definition
        input, target = binary_operands(input, target, "binary_cross_entropy_with_logits")
        check_same_device("binary_cross_entropy_with_logits", ("input", input),
                          ("target", target))
        loss = sigmoid_cross_entropy(input, target.data)
        if weight is not None:
            loss = loss * as_tensor(weight, input)
        return _reduce(loss, reduction)
    neg_log_sigmoid = softplus(-input)  # -log sigmoid(x)
    if pos_weight is not None:
        log_weight = (as_tensor(pos_weight, input) - 1.0) * target + 1.0
        loss = (1.0 - target) * input + log_weight * neg_log_sigmoid
    else:
        loss = (1.0 - target) * input + neg_log_sigmoid
    if weight is not None:
        loss = loss * as_tensor(weight, input)
    return _reduce(loss, reduction)


def mse_loss(input, target, reduction="mean"):
    _check_reduction(reduction)
    target = as_tensor(target, input)
    _same_shape("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input, target, reduction="mean"):
    _check_reduction(reduction)
    target = as_tensor(target, input)
    _same_shape("l1_loss", input, target)
    return _reduce(_abs(input - target), reduction)
