"""Batch-norm family: ``batch_norm`` (training and evaluation).

Training mode normalises with the batch's own statistics.  Its forward is fused
(``train_forward``: ``train_stats``, the per-channel mean, variance, ``inv_std`` and
the running update; then ``normalize_affine``), and its backward has two forms:

* with a graph being built for the gradient (``create_graph=True``, as in
  WGAN-GP's gradient penalty) it recomputes the statistics from the saved input
  with tinygen ops and writes the input gradient
  ``inv_std / M * (M g - sum(g) - xhat * sum(g xhat))`` with tinygen ops too, so
  the gradient is itself differentiable (in x, in the weight and in g);
* otherwise (the engine runs backward under ``no_grad``) fused kernels compute
  the same formula from the saved per-channel statistics (``backward_stats`` for
  ``sum(g)`` and ``sum(g xhat)``, then ``backward_input``).

Evaluation mode uses the running statistics, which are constants: it is an
affine map per channel, ``y = (x - running_mean) * weight / sqrt(running_var +
eps) + bias``.

Kernels come from ``tinygen.backend.kernels`` (family ``"batch_norm"``): on the
CPU the numba kernels, or the numpy reference under ``use_impl('reference')``; on
a GPU the CUDA ones.  Every device's module has the same functions, so the op
calls the same ones everywhere (the CUDA module runs each fused one in a single
launch; the CPU modules compose them from smaller kernels).
"""
import numbers

import numpy as np

from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from ..backend import array_module
from ..backend.kernels import kernels
from ._operands import is_float, check_same_device
from .shape import reshape
from .reduce import sum as _sum, mean as _mean

def contiguous(array):
    return array_module(array).ascontiguousarray(array)


# --- shapes --------------------------------------------------------------------------------
def _as_ncl(shape):
    """(N, C, L) of an (N, C, *spatial) shape."""
    return shape[0], shape[1], int(np.prod(shape[2:], dtype=np.int64))


def _channel_shape(ndim):
    """Shape that broadcasts a (C,) vector over an (N, C, *spatial) tensor."""
    return (1, -1) + (1,) * (ndim - 2)


def _reduce_axes(ndim):
    return (0,) + tuple(range(2, ndim))


def _f64(array_or_none, default, channels, xp):
    """A per-channel vector in float64 on the input's device (``xp``)."""
    if array_or_none is None:
        return xp.full(channels, default, dtype=np.float64)
    return array_or_none.astype(np.float64)


def _updatable(buffer):
    """A running-statistics buffer as the kernels update it, in place and contiguous:
    the buffer itself, or a copy of a strided view that ``_write_back`` copies back."""
    if buffer is None or buffer.flags.c_contiguous:
        return buffer
    return contiguous(buffer)


def _write_back(buffer, updated):
    if updated is not buffer:
        buffer[...] = updated


# --- training mode --------------------------------------------------------------------------
class BatchNormTrain(Function):
    """Normalise with batch statistics; inputs ``x`` then the present of weight, bias."""

    def forward(self, x, *affine, has_weight, has_bias, eps, running_mean, running_var,
                momentum):
        k = kernels("batch_norm", x, "batch_norm")
        weight = affine[0] if has_weight else None
        bias = affine[-1] if has_bias else None
        n, c, length = _as_ncl(x.shape)
        x3 = contiguous(x).reshape(n, c, length)
        # the batch statistics, and the running ones updated in place (the running
        # variance tracks the batch's unbiased variance, as PyTorch's)
        running = _updatable(running_mean), _updatable(running_var)
        out, mean, inv_std = k.train_forward(x3, weight, bias, eps, *running, momentum)
        out = out.reshape(x.shape)
        _write_back(running_mean, running[0])
        _write_back(running_var, running[1])

        self.has_weight, self.has_bias, self.eps = has_weight, has_bias, eps
        self.mean, self.inv_std = mean, inv_std
        self.save_inputs(*range(1 + len(affine)))
        return out

    def backward(self, grad):
        saved = self.saved_inputs()
        x = saved[0]
        weight = saved[1] if self.has_weight else None
        if is_grad_enabled():
            grads = self._backward_graph(grad, x, weight)
        else:
            grads = self._backward_fused(grad, x, weight)
        grad_x, grad_weight, grad_bias = grads
        out = [grad_x]
        if self.has_weight:
            out.append(grad_weight)
        if self.has_bias:
            out.append(grad_bias)
        return tuple(out)

    def _needs(self):
        needs = list(self.needs_input_grad)
        need_x = needs[0]
        need_w = self.has_weight and needs[1]
        need_b = self.has_bias and needs[-1]
        return need_x, need_w, need_b

    def _backward_fused(self, grad, x, weight):
        """One reduction pass and one elementwise pass (no graph is being built)."""
        k = kernels("batch_norm", x.data, "batch_norm")
        need_x, need_w, need_b = self._needs()
        n, c, length = _as_ncl(x.shape)
        x3 = contiguous(x.data).reshape(n, c, length)
        g3 = contiguous(grad.data).reshape(n, c, length)
        sum_g, sum_g_xhat = k.backward_stats(g3, x3, self.mean, self.inv_std)
        grad_x = grad_w = grad_b = None
        if need_x:
            w = _f64(weight.data if weight is not None else None, 1.0, c,
                     array_module(x.data))
            sums = self._input_grad_sums(sum_g, sum_g_xhat, n * length)
            grad_x = Tensor._make(k.backward_input(
                g3, x3, self.mean, self.inv_std, w, *sums).reshape(x.shape))
        if need_w:
            grad_w = Tensor._make(sum_g_xhat.astype(x.dtype))
        if need_b:
            grad_b = Tensor._make(sum_g.astype(x.dtype))
        return grad_x, grad_w, grad_b

    def _input_grad_sums(self, sum_g, sum_g_xhat, count):
        """The per-channel sums behind the input gradient (this batch's own here;
        ``SyncBatchNormTrain`` makes them every rank's)."""
        return sum_g, sum_g_xhat

    def _channel_mean(self, t, axes):
        """Per-channel mean over the batch the statistics cover (this one here)."""
        return _mean(t, axes, keepdims=True)

    def _backward_graph(self, grad, x, weight):
        """The same gradients with tinygen ops, so that they can be differentiated again."""
        need_x, need_w, need_b = self._needs()
        axes = _reduce_axes(x.ndim)
        centered = x - self._channel_mean(x, axes)
        var = self._channel_mean(centered * centered, axes)
        inv_std = (var + self.eps) ** -0.5
        xhat = centered * inv_std
        grad_x = grad_w = grad_b = None
        if need_x:
            g_hat = grad * reshape(weight, _channel_shape(x.ndim)) if weight is not None else grad
            grad_x = inv_std * (g_hat - self._channel_mean(g_hat, axes)
                                - xhat * self._channel_mean(g_hat * xhat, axes))
        if need_w:
            grad_w = _sum(grad * xhat, axes)
        if need_b:
            grad_b = _sum(grad, axes)
        return grad_x, grad_w, grad_b


# --- evaluation mode ---------------------------------------------------------------------------
class BatchNormEval(Function):
    """``(x - running_mean) * weight / sqrt(running_var + eps) + bias`` (stats constant)."""

    def forward(self, x, *affine, has_weight, has_bias, eps, running_mean, running_var):
        k = kernels("batch_norm", x, "batch_norm")
        weight = affine[0] if has_weight else None
        bias = affine[-1] if has_bias else None
        n, c, length = _as_ncl(x.shape)
        xp = array_module(x)
        mean = running_mean.astype(np.float64)
        inv_std = 1.0 / xp.sqrt(running_var.astype(np.float64) + eps)
        scale = _f64(weight, 1.0, c, xp) * inv_std
        x3 = contiguous(x).reshape(n, c, length)
        out = k.normalize_affine(x3, mean, scale, _f64(bias, 0.0, c, xp)).reshape(x.shape)
        self.mean = mean.astype(x.dtype)
        self.inv_std = inv_std.astype(x.dtype)
        self.has_weight, self.has_bias = has_weight, has_bias
        self.save_inputs(*range(1 + len(affine)))
        return out

    def backward(self, grad):
        # Linear in x with constant statistics, so these few tinygen ops are both the
        # fast path and the differentiable one.
        saved = self.saved_inputs()
        x = saved[0]
        shape = _channel_shape(x.ndim)
        axes = _reduce_axes(x.ndim)
        inv_std = reshape(Tensor._make(self.inv_std), shape)
        out = []
        if self.needs_input_grad[0]:
            scale = inv_std * reshape(saved[1], shape) if self.has_weight else inv_std
            out.append(grad * scale)
        else:
            out.append(None)
        if self.has_weight:
            need = self.needs_input_grad[1]
            xhat = (x - reshape(Tensor._make(self.mean), shape)) * inv_std if need else None
            out.append(_sum(grad * xhat, axes) if need else None)
        if self.has_bias:
            out.append(_sum(grad, axes) if self.needs_input_grad[-1] else None)
        return tuple(out)


# --- the op ----------------------------------------------------------------------------------
def _check_vector(name, t, x, channels):
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"batch_norm: {name} must be a Tensor or None, got {type(t).__name__}")
    if t.shape != (channels,):
        raise ValueError(
            f"batch_norm: {name} should contain {channels} elements (shape ({channels},)) for an "
            f"input of shape {x.shape} with {channels} channels, got shape {t.shape}"
        )
    if t.dtype != x.dtype:
        raise TypeError(
            f"batch_norm: {name} has dtype {t.dtype} but the input (shape {x.shape}) has "
            f"{x.dtype}; convert one with .float() or .double()"
        )


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """PyTorch's ``F.batch_norm`` for (N, C), (N, C, L) and (N, C, H, W) inputs.

    Training mode normalises with the batch's statistics and, when running
    statistics are given, updates them in place:
    ``new = (1 - momentum) * old + momentum * batch`` with the batch's *unbiased*
    variance, as PyTorch does.  Evaluation mode uses the running statistics.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"batch_norm: input must be a Tensor, got {type(x).__name__}")
    if not 2 <= x.ndim <= 4:
        raise ValueError(
            f"batch_norm: expected a 2-D (N, C), 3-D (N, C, L) or 4-D (N, C, H, W) input, got "
            f"shape {x.shape}"
        )
    if not is_float(x.dtype):
        raise TypeError(f"batch_norm: input must be floating point, got dtype {x.dtype}")
    channels = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _check_vector(name, t, x, channels)
    check_same_device("batch_norm", ("input", x), ("running_mean", running_mean),
                      ("running_var", running_var), ("weight", weight), ("bias", bias))
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"batch_norm: eps must be a positive number, got {eps!r}")
    affine = tuple(t for t in (weight, bias) if t is not None)
    flags = dict(has_weight=weight is not None, has_bias=bias is not None, eps=float(eps))
    if training:
        n, _, length = _as_ncl(x.shape)
        if n * length <= 1:
            raise ValueError(
                f"batch_norm: Expected more than 1 value per channel when training, got input "
                f"size {x.shape}"
            )
        if (running_mean is None) != (running_var is None):
            raise ValueError("batch_norm: running_mean and running_var must both be given or "
                             "both be None")
        if running_mean is not None and (isinstance(momentum, bool)
                                         or not isinstance(momentum, numbers.Real)):
            raise TypeError(
                f"batch_norm: momentum must be a number, got {momentum!r} (for a cumulative "
                "average pass momentum=1/num_batches, as BatchNorm modules do for momentum=None)"
            )
        return BatchNormTrain.apply(
            x, *affine, **flags,
            running_mean=None if running_mean is None else running_mean.data,
            running_var=None if running_var is None else running_var.data,
            momentum=None if running_mean is None else float(momentum))
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var must be given in evaluation "
                         "mode (training=False)")
    return BatchNormEval.apply(x, *affine, **flags, running_mean=running_mean.data,
                               running_var=running_var.data)


# --- training mode across the ranks of a distributed job -----------------------------------
class SyncBatchNormTrain(BatchNormTrain):
    """``BatchNormTrain`` with statistics over the union of every rank's batch.

    Forward: the global mean (all-reduced sums and counts), then the global variance
    from all-reduced sums of squared deviations (two passes, as the one-process
    kernels, so a split batch agrees with the whole one to rounding).  Backward: each
    rank's loss only sees its own outputs, so the per-channel ``sum(g)`` and
    ``sum(g * xhat)`` are all-reduced (the gradient of the sum of every rank's loss
    through the shared statistics) while the weight and bias get this rank's share
    only (the data-parallel gradient average adds the shares up).  With a graph being
    built, the same formulas run with tinygen ops and the differentiable
    ``all_reduce``, so double backward works across ranks too.
    """

    def forward(self, x, *affine, has_weight, has_bias, eps, running_mean, running_var,
                momentum, comm):
        k = kernels("batch_norm", x, "batch_norm")
        xp = array_module(x)
        weight = affine[0] if has_weight else None
        bias = affine[-1] if has_bias else None
        n, c, length = _as_ncl(x.shape)
        x3 = contiguous(x).reshape(n, c, length)
        sums = xp.zeros(c + 1, dtype=np.float64)
        sums[:c] = x3.sum(axis=(0, 2), dtype=np.float64)
        sums[c] = n * length
        comm.allreduce_(sums)
        count = float(sums[c])
        if count <= 1:
            raise ValueError(f"sync_batch_norm: expected more than 1 value per channel over "
                             f"all ranks when training, got {count:g}")
        mean = sums[:c] / count
        squares = xp.ascontiguousarray(
            ((x3 - mean[None, :, None].astype(x.dtype)) ** 2).sum(axis=(0, 2), dtype=np.float64))
        var = comm.allreduce_(squares) / count
        inv_std = 1.0 / xp.sqrt(var + eps)
        if running_mean is not None:
            running_mean[...] = ((1.0 - momentum) * running_mean
                                 + momentum * mean).astype(running_mean.dtype)
            running_var[...] = ((1.0 - momentum) * running_var
                                + momentum * var * (count / (count - 1.0))).astype(running_var.dtype)
        scale = _f64(weight, 1.0, c, xp) * inv_std
        out = k.normalize_affine(x3, mean, scale, _f64(bias, 0.0, c, xp)).reshape(x.shape)

        self.has_weight, self.has_bias, self.eps = has_weight, has_bias, eps
        self.mean, self.inv_std, self.count, self.comm = mean, inv_std, count, comm
        self.save_inputs(*range(1 + len(affine)))
        return out

    def _input_grad_sums(self, sum_g, sum_g_xhat, count):
        # backward_input divides the sums by this rank's count: all-reduce them and scale
        # so that it divides by the global one
        both = array_module(sum_g).concatenate([sum_g, sum_g_xhat]).astype(np.float64)
        self.comm.allreduce_(both)
        c = sum_g.shape[0]
        local = count / self.count
        return both[:c] * local, both[c:] * local

    def _channel_mean(self, t, axes):
        from .collective import all_reduce

        return all_reduce(_sum(t, axes, keepdims=True), self.comm) / self.count


def sync_batch_norm(x, running_mean, running_var, weight, bias, momentum, eps, comm):
    """Training-mode ``batch_norm`` whose statistics cover every rank's batch of ``comm``
    (a tinygen.distributed communicator); updates the running statistics in place with
    the global ones, identically on every rank."""
    if not isinstance(x, Tensor):
        raise TypeError(f"sync_batch_norm: input must be a Tensor, got {type(x).__name__}")
    if not 2 <= x.ndim <= 4:
        raise ValueError(f"sync_batch_norm: expected a 2-D, 3-D or 4-D input, got shape "
                         f"{x.shape}")
    if not is_float(x.dtype):
        raise TypeError(f"sync_batch_norm: input must be floating point, got dtype {x.dtype}")
    channels = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _check_vector(name, t, x, channels)
    check_same_device("sync_batch_norm", ("input", x), ("running_mean", running_mean),
                      ("running_var", running_var), ("weight", weight), ("bias", bias))
    if (running_mean is None) != (running_var is None):
        raise ValueError("sync_batch_norm: running_mean and running_var must both be given "
                         "or both be None")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"sync_batch_norm: eps must be a positive number, got {eps!r}")
    affine = tuple(t for t in (weight, bias) if t is not None)
    return SyncBatchNormTrain.apply(
        x, *affine, has_weight=weight is not None, has_bias=bias is not None, eps=float(eps),
        running_mean=None if running_mean is None else running_mean.data,
        running_var=None if running_var is None else running_var.data,
        momentum=None if running_mean is None else float(momentum), comm=comm)
