"""``BatchNorm1d`` and ``BatchNorm2d`` (PyTorch's arguments, defaults and state_dict keys).

State: ``weight`` (ones) and ``bias`` (zeros) when ``affine``; buffers
``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked``
(an int64 scalar) when ``track_running_stats``.  In training mode the batch's
statistics normalise the input and update the running ones; in evaluation mode
the running ones are used (or, without them, the batch's).  ``momentum=None``
makes the running statistics a cumulative average (factor 1 / num_batches_tracked).

``comm`` (a ``tinygen.distributed`` communicator; None by default) makes the batch
statistics those of the union of every rank's batch (``sync_batch_norm``): a data-
parallel run then normalises exactly as one process with the whole batch would.
``SyncBatchNorm`` is the same module with ``comm`` required, and
``SyncBatchNorm.convert_sync_batchnorm(module, comm)`` switches every batch norm of a
model over in place (same parameters, buffers and state_dict keys).
"""
import numbers

import numpy as np

from ..autograd.tensor import Tensor
from ..backend import to_device
from ..ops.batch_norm import batch_norm, sync_batch_norm
from . import init
from ._validate import positive_int, float_dtype
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    _expected = ()  # accepted input ndims, set by subclasses

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=None, device=None, comm=None):
        super().__init__()
        self.comm = comm
        self.num_features = positive_int("num_features", num_features)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        if momentum is not None and (isinstance(momentum, bool)
                                     or not isinstance(momentum, numbers.Real)):
            raise TypeError(f"momentum must be a number or None, got {momentum!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:   # (NaN fails this too)
            raise ValueError(f"momentum must be in [0, 1] (the weight of the batch's "
                             f"statistics in the running ones) or None, got {momentum!r}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dtype = float_dtype(dtype)
        device = device or "cpu"

        def vector(fill):
            return to_device(np.full((self.num_features,), fill, dtype=dtype), device)

        if self.affine:
            self.weight = Parameter(vector(1.0))
            self.bias = Parameter(vector(0.0))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", Tensor._make(vector(0.0)))
            self.register_buffer("running_var", Tensor._make(vector(1.0)))
            self.register_buffer("num_batches_tracked",
                                 Tensor._make(to_device(np.zeros((), dtype=np.int64), device)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input_dim(self, input):
        if not isinstance(input, Tensor):
            raise TypeError(f"{type(self).__name__}: input must be a Tensor, got "
                            f"{type(input).__name__}")
        if input.ndim not in self._expected:
            names = " or ".join(f"{n}D" for n in self._expected)
            raise ValueError(f"{type(self).__name__}: expected {names} input (got {input.ndim}D "
                             f"input of shape {input.shape})")
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}): expected {self.num_features} "
                f"channels in dimension 1 of the input, got shape {input.shape}")

    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data[...] += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())
        # Batch statistics in training mode, and in evaluation mode without running ones.
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        if use_batch_stats and self.comm is not None:
            return sync_batch_norm(
                input, self.running_mean if track else None,
                self.running_var if track else None, self.weight, self.bias, factor,
                self.eps, self.comm)
        return batch_norm(
            input,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight, self.bias, use_batch_stats, factor, self.eps,
        )

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) inputs."""

    _expected = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) inputs."""

    _expected = (4,)


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation over (N, C), (N, C, L) or (N, C, H, W) inputs with statistics
    over every rank of ``comm`` (PyTorch's ``SyncBatchNorm``, ``comm`` standing for its
    process group)."""

    _expected = (2, 3, 4)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, comm=None, dtype=None, device=None):
        if comm is None:
            raise ValueError("SyncBatchNorm needs a communicator (comm=tinygen.distributed."
                             "init()); use BatchNorm1d/2d in a single process")
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype,
                         device, comm=comm)

    @staticmethod
    def convert_sync_batchnorm(module, comm):
        """Give every batch norm in ``module`` the communicator ``comm`` (in place: the
        parameters the optimizers hold stay the same objects); returns ``module``."""
        for m in module.modules():
            if isinstance(m, _BatchNorm):
                m.comm = comm
        return module
