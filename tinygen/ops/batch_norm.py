"""Batch-norm family: ``batch_norm`` (training and evaluation).

Training mode normalises with the batch's own statistics.  Its forward is fused
(``train_forward``: ``train_stats``, the per-channel mean, variance, ``inv_std`` and
the running update; then ``normalize_affine``).  Its backward is a Function of its
own, ``BatchNormTrainGrad`` (as Chainer's ``ReLUGrad2``): fused kernels compute the
input gradient ``inv_std / M * (M g - sum(g) - xhat * sum(g xhat))`` from the saved
per-channel statistics (``backward_stats`` for ``sum(g)`` and ``sum(g xhat)``, then
``backward_input``), and that node's own backward is the closed form of the second
derivatives written with tinygen ops, so the gradient is differentiable again (in x,
in the weight and in g: WGAN-GP's gradient penalty) without a second code path.

Evaluation mode uses the running statistics, which are constants: it is an
affine map per channel, ``y = (x - running_mean) * weight / sqrt(running_var +
eps) + bias``.

Kernels come from ``tinygen.backend.kernels`` (family ``"batch_norm"``): on the
CPU the numba kernels, or the numpy reference under ``use_impl('reference')``; on
a GPU the CUDA ones.  Every device's module has the same functions, so the op
calls the same ones everywhere (the CUDA module runs each fused one in a single
launch; the CPU modules compose them from smaller kernels).
"""
import math
import numbers

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module
from ..backend.kernels import kernels
from ._operands import is_float, check_same_device
from .collective import all_reduce
from .shape import expand, reshape
from .reduce import sum as _sum, mean as _mean

def contiguous(array):
    return array_module(array).ascontiguousarray(array)


# --- shapes --------------------------------------------------------------------------------
def _as_ncl(shape):
    """(N, C, L) of an (N, C, *spatial) shape."""
    return shape[0], shape[1], math.prod(shape[2:])


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
        need = self._needs()
        grads = iter(self._apply_grad(grad, saved[:1 + self.has_weight], need=need,
                                      has_weight=self.has_weight, eps=self.eps,
                                      mean=self.mean, inv_std=self.inv_std))
        grad_x, grad_w, grad_b = (next(grads) if n else None for n in need)
        out = [grad_x]
        if self.has_weight:
            out.append(grad_w)
        if self.has_bias:
            out.append(grad_b)
        return tuple(out)

    def _needs(self):
        needs = self.needs_input_grad
        return needs[0], self.has_weight and needs[1], self.has_bias and needs[-1]

    def _apply_grad(self, grad, x_and_weight, **params):
        """The backward node (``SyncBatchNormTrain`` applies its cross-rank one)."""
        return BatchNormTrainGrad.apply(grad, *x_and_weight, **params)


class BatchNormTrainGrad(Function):
    """``BatchNormTrain``'s backward as one node: for upstream g (inputs g, x and the
    weight when there is one), the gradients asked for by ``need`` among

        gx = inv_std * (gs - mean(gs) - xhat * mean(gs * xhat)),  gs = g * weight
        gweight = sum(g * xhat),  gbias = sum(g)

    (means and sums per channel), by fused kernels from the forward's saved statistics.

    Its own backward is the closed form of the second derivatives, in tinygen ops
    (statistics recomputed from x, so third derivatives work too).  With
    ``P(v) = inv_std * (v - mean(v) - xhat * mean(v * xhat))``, so that gx = P(g * w)
    (P is self-adjoint per channel, and ``d xhat = P(dx)``), and upstream Hx, Hw, Hb
    for the three outputs:

        d/dg = w P(Hx) + Hw xhat + Hb
        d/dw = sum(Hx P(g))
        d/dx = P(Hw g) - inv_std * (mean(Hx gx) xhat + mean(g w xhat) P(Hx)
                                    + mean(Hx xhat) gx)
    """

    def forward(self, g, x, *weight, need, has_weight, eps, mean, inv_std):
        k = kernels("batch_norm", x, "batch_norm")
        self.need, self.has_weight, self.eps = need, has_weight, eps
        self.save_inputs(*range(2 + len(weight)))
        n, c, length = _as_ncl(x.shape)
        x3 = contiguous(x).reshape(n, c, length)
        g3 = contiguous(g).reshape(n, c, length)
        sum_g, sum_g_xhat = k.backward_stats(g3, x3, mean, inv_std)
        out = []
        if need[0]:
            w = _f64(weight[0] if has_weight else None, 1.0, c, array_module(x))
            sums = self._input_grad_sums(sum_g, sum_g_xhat, n * length)
            out.append(k.backward_input(g3, x3, mean, inv_std, w, *sums).reshape(x.shape))
        if need[1]:
            out.append(sum_g_xhat.astype(x.dtype))
        if need[2]:
            out.append(sum_g.astype(x.dtype))
        return tuple(out)

    def _input_grad_sums(self, sum_g, sum_g_xhat, count):
        """The per-channel sums behind the input gradient (this batch's own here;
        ``SyncBatchNormTrainGrad`` makes them every rank's)."""
        return sum_g, sum_g_xhat

    def _channel_mean(self, t, axes):
        """Per-channel mean over the batch the statistics cover (this one here)."""
        return _mean(t, axes, keepdims=True)

    def backward(self, *upstream):
        saved = self.saved_inputs()
        g, x = saved[0], saved[1]
        it = iter(upstream)
        h_x, h_w, h_b = (next(it) if n else None for n in self.need)
        need_g, need_x = self.needs_input_grad[0], self.needs_input_grad[1]
        need_w = self.has_weight and self.needs_input_grad[2]
        axes, shape = _reduce_axes(x.ndim), _channel_shape(x.ndim)

        def mean(t):
            return self._channel_mean(t, axes)

        centered = x - mean(x)
        inv_std = (mean(centered * centered) + self.eps) ** -0.5
        xhat = centered * inv_std

        def project(v):  # P(v): the input gradient for upstream v and weight 1
            return inv_std * (v - mean(v) - xhat * mean(v * xhat))

        def scaled(t):  # t * weight
            return t * reshape(saved[2], shape) if self.has_weight else t

        p_hx = project(h_x) if h_x is not None and (need_g or need_x) else None
        p_g = project(g) if h_x is not None and (need_w or need_x) else None
        dg = dx = dw = None
        if need_g:
            terms = [scaled(p_hx)] if h_x is not None else []
            if h_w is not None:
                terms.append(xhat * reshape(h_w, shape))
            if h_b is not None:
                terms.append(reshape(h_b, shape))
            dg = _total(terms, g.shape)
        if need_w and h_x is not None:
            dw = _sum(h_x * p_g, axes)
        if need_x:
            terms = [project(g * reshape(h_w, shape))] if h_w is not None else []
            if h_x is not None:
                gx = scaled(p_g)
                terms.append(-inv_std * (mean(h_x * gx) * xhat + mean(scaled(g) * xhat) * p_hx
                                         + mean(h_x * xhat) * gx))
            dx = _total(terms, x.shape)
        return (dg, dx, dw) if self.has_weight else (dg, dx)


def _total(terms, shape):
    """The sum of ``terms`` at ``shape`` (None when there are none)."""
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total if total.shape == shape else expand(total, shape)


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
def _check_vector(op, name, t, x, channels):
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(t).__name__}")
    if t.shape != (channels,):
        raise ValueError(
            f"{op}: {name} should contain {channels} elements (shape ({channels},)) for an "
            f"input of shape {x.shape} with {channels} channels, got shape {t.shape}"
        )
    if t.dtype != x.dtype:
        raise TypeError(
            f"{op}: {name} has dtype {t.dtype} but the input (shape {x.shape}) has "
            f"{x.dtype}; convert one with .float() or .double()"
        )


def _check_arguments(op, x, running_mean, running_var, weight, bias, eps):
    """What ``batch_norm`` and ``sync_batch_norm`` both require of their arguments."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if not 2 <= x.ndim <= 4:
        raise ValueError(
            f"{op}: expected a 2-D (N, C), 3-D (N, C, L) or 4-D (N, C, H, W) input, got "
            f"shape {x.shape}"
        )
    if not is_float(x.dtype):
        raise TypeError(f"{op}: input must be floating point, got dtype {x.dtype}")
    vectors = (("running_mean", running_mean), ("running_var", running_var),
               ("weight", weight), ("bias", bias))
    for name, t in vectors:
        _check_vector(op, name, t, x, x.shape[1])
    check_same_device(op, ("input", x), *vectors)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"{op}: eps must be a positive number, got {eps!r}")


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """PyTorch's ``F.batch_norm`` for (N, C), (N, C, L) and (N, C, H, W) inputs.

    Training mode normalises with the batch's statistics and, when running
    statistics are given, updates them in place:
    ``new = (1 - momentum) * old + momentum * batch`` with the batch's *unbiased*
    variance, as PyTorch does.  Evaluation mode uses the running statistics.
    """
    _check_arguments("batch_norm", x, running_mean, running_var, weight, bias, eps)
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
        if running_mean is not None and not 0.0 <= momentum <= 1.0:    # (NaN fails this too)
            raise ValueError(f"batch_norm: momentum must be in [0, 1] (the weight of the "
                             f"batch's statistics in the running ones), got {momentum!r}")
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
    only (the data-parallel gradient average adds the shares up): that is
    ``SyncBatchNormTrainGrad``, whose own backward uses the differentiable
    ``all_reduce`` for its means, so double backward works across ranks too.
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

    def _apply_grad(self, grad, x_and_weight, **params):
        return SyncBatchNormTrainGrad.apply(grad, *x_and_weight, **params, comm=self.comm,
                                            count=self.count)


class SyncBatchNormTrainGrad(BatchNormTrainGrad):
    """``BatchNormTrainGrad`` whose per-channel sums and means cover every rank: the
    input gradient's sums are all-reduced, and its backward's means go through the
    differentiable ``all_reduce``, so double backward works across ranks too."""

    def forward(self, g, x, *weight, comm, count, **params):
        self.comm, self.count = comm, count
        return super().forward(g, x, *weight, **params)

    def _input_grad_sums(self, sum_g, sum_g_xhat, count):
        # backward_input divides the sums by this rank's count: all-reduce them and scale
        # so that it divides by the global one
        both = array_module(sum_g).concatenate([sum_g, sum_g_xhat]).astype(np.float64)
        self.comm.allreduce_(both)
        c = sum_g.shape[0]
        local = count / self.count
        return both[:c] * local, both[c:] * local

    def _channel_mean(self, t, axes):
        return all_reduce(_sum(t, axes, keepdims=True), self.comm) / self.count


def sync_batch_norm(x, running_mean, running_var, weight, bias, momentum, eps, comm):
    """Training-mode ``batch_norm`` whose statistics cover every rank's batch of ``comm``
    (a tinygen.distributed communicator); updates the running statistics in place with
    the global ones, identically on every rank."""
    _check_arguments("sync_batch_norm", x, running_mean, running_var, weight, bias, eps)
    if (running_mean is None) != (running_var is None):
        raise ValueError("sync_batch_norm: running_mean and running_var must both be given "
                         "or both be None")
    affine = tuple(t for t in (weight, bias) if t is not None)
    return SyncBatchNormTrain.apply(
        x, *affine, has_weight=weight is not None, has_bias=bias is not None, eps=float(eps),
        running_mean=None if running_mean is None else running_mean.data,
        running_var=None if running_var is None else running_var.data,
        momentum=None if running_mean is None else float(momentum), comm=comm)
