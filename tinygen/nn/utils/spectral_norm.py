"""``spectral_norm(module)``: re-parameterise a weight as ``W / sigma(W)`` (SN-GAN).

The same mechanism as PyTorch's ``torch.nn.utils.spectral_norm``:

* the original weight becomes the Parameter ``<name>_orig``;
* two buffers, ``<name>_u`` and ``<name>_v`` (persistent: they are in the
  state_dict), hold the current estimates of its top singular vectors;
* a forward pre-hook recomputes ``module.<name> = <name>_orig / sigma`` before
  every forward, with ``sigma = u^T W v``.  In training mode it first runs
  ``n_power_iterations`` power-iteration steps under ``no_grad``, updating u and
  v in place; in evaluation mode it uses them as they are.  Gradients flow
  through ``<name>_orig`` only (u and v are constants).

W is the weight as a matrix with dimension ``dim`` in front: 0 by default, 1 for
transposed convolutions (whose weight is (in, out, ...)).
"""
import numbers


from ...autograd.grad_mode import no_grad
from ...autograd.tensor import Tensor
from ...backend import to_device
from ...ops.spectral_norm import power_iteration, spectral_normalize, weight_to_matrix
from ...backend.reference.spectral_norm import normalize
from ... import random as _random
from ..parameter import Parameter


class SpectralNorm:
    """The forward pre-hook that spectral_norm installs (one per re-parameterised weight)."""

    def __init__(self, name="weight", n_power_iterations=1, dim=0, eps=1e-12):
        self.name = name
        self.n_power_iterations = n_power_iterations
        self.dim = dim
        self.eps = eps

    def compute_weight(self, module, do_power_iteration):
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        if do_power_iteration:
            with no_grad():
                matrix = weight_to_matrix(weight.data, self.dim)
                new_u, new_v = power_iteration(matrix, u.data, v.data,
                                               self.n_power_iterations, self.eps)
                u.data[...] = new_u
                v.data[...] = new_v
        return spectral_normalize(weight, u, v, self.dim)

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module, do_power_iteration=module.training))

    def remove(self, module):
        with no_grad():
            weight = self.compute_weight(module, do_power_iteration=False)
        delattr(module, self.name)
        delattr(module, self.name + "_u")
        delattr(module, self.name + "_v")
        delattr(module, self.name + "_orig")
        module.register_parameter(self.name, Parameter(weight.data))


def _spectral_hooks(module):
    return [(key, hook) for key, hook in module._forward_pre_hooks.items()
            if isinstance(hook, SpectralNorm)]


def _is_transposed(module):
    return ("ConvTranspose" in type(module).__name__
            or getattr(module, "transposed", False) is True
            or getattr(module, "_transposed", False) is True)


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    """Apply spectral normalisation to ``module.<name>``; returns the module.

    ``dim`` defaults to 0, or 1 for ConvTranspose modules.  u and v start as
    normalised standard-normal draws from ``tinygen.random.default_generator()``
    (so ``tinygen.manual_seed`` makes them reproducible).
    """
    if isinstance(n_power_iterations, bool) \
            or not isinstance(n_power_iterations, numbers.Integral) or n_power_iterations <= 0:
        raise ValueError(
            "spectral_norm: expected n_power_iterations to be positive, but got "
            f"n_power_iterations={n_power_iterations!r}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"spectral_norm: eps must be a positive number, got {eps!r}")
    for _, hook in _spectral_hooks(module):
        if hook.name == name:
            raise RuntimeError(
                f"spectral_norm: cannot register two spectral_norm hooks on the same parameter "
                f"{name!r} of {type(module).__name__}")
    weight = module._parameters.get(name)
    if weight is None:
        raise ValueError(
            f"spectral_norm: {type(module).__name__} has no parameter {name!r} (its parameters: "
            f"{[k for k, p in module._parameters.items() if p is not None]})")
    if weight.ndim < 1 or weight.numel() == 0:
        raise ValueError(f"spectral_norm: parameter {name!r} must be a non-empty tensor with at "
                         f"least one dimension, got shape {weight.shape}")
    if dim is None:
        dim = 1 if _is_transposed(module) else 0
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) \
            or not -weight.ndim <= dim < weight.ndim:
        raise ValueError(f"spectral_norm: dim={dim!r} is out of range for parameter {name!r} "
                         f"of shape {weight.shape}")
    dim = int(dim) % weight.ndim

    fn = SpectralNorm(name, int(n_power_iterations), dim, float(eps))
    rows, cols = weight_to_matrix(weight.data, dim).shape
    rng = _random.default_generator()
    u = normalize(rng.standard_normal(rows), fn.eps).astype(weight.dtype)
    v = normalize(rng.standard_normal(cols), fn.eps).astype(weight.dtype)

    delattr(module, name)
    module.register_parameter(name + "_orig", weight)
    # Until the first forward, module.<name> is the raw weight (as in PyTorch).
    setattr(module, name, Tensor._make(weight.data))
    module.register_buffer(name + "_u", Tensor._make(to_device(u, weight.device)))
    module.register_buffer(name + "_v", Tensor._make(to_device(v, weight.device)))
    module.register_forward_pre_hook(fn)
    return module


def remove_spectral_norm(module, name="weight"):
    """Undo ``spectral_norm``: ``module.<name>`` becomes a Parameter again, holding the
    normalised weight (computed with the stored u and v); returns the module."""
    for key, hook in _spectral_hooks(module):
        if hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"spectral_norm of {name!r} not found in {type(module).__name__}")
