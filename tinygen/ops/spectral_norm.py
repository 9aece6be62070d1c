"""Spectral normalisation: the power-iteration step and ``W / sigma(W)``.

Two ops, split the way SN-GAN uses them:

* ``power_iteration`` works on raw arrays and has no gradient: it refines the
  estimates (u, v) of W's top singular vectors (in training mode, under
  ``no_grad``, once per forward).  It is its own op so it can be benchmarked.
* ``spectral_normalize(weight, u, v)`` returns ``weight / sigma`` with
  ``sigma = u^T W v`` computed with tinygen ops: the gradient flows through W
  (both the numerator and sigma) while u and v are constants, as in PyTorch.

W is the weight seen as a matrix: ``dim`` (0 for Linear and Conv, 1 for
ConvTranspose) is moved to the front and the other dimensions are flattened.
"""
import numbers

from ..autograd.tensor import Tensor
from ..backend import array_module
from ..backend.kernels import kernels
from .linalg import matmul
from .shape import permute, reshape, normalize_axis


def _array(value):
    return value.data if isinstance(value, Tensor) else value


def weight_to_matrix(weight, dim=0):
    """The raw weight array as a (weight.shape[dim], -1) matrix (dim moved to the front)."""
    array = _array(weight)
    dim = normalize_axis(dim, array.ndim, array.shape)
    xp = array_module(array)
    if dim != 0:
        array = xp.moveaxis(array, dim, 0)
    return array.reshape(array.shape[0], -1)


def _check_vectors(op, rows, cols, u, v, what):
    for name, vec, n in (("u", u, rows), ("v", v, cols)):
        if tuple(vec.shape) != (n,):
            raise ValueError(
                f"{op}: {name} must have shape ({n},) for {what}, got shape {tuple(vec.shape)}"
            )


def power_iteration(weight_matrix, u, v, n_iterations=1, eps=1e-12):
    """``n_iterations`` steps of ``v <- normalize(W^T u); u <- normalize(W v)``.

    Arrays (or Tensors, read without a graph) in, new ``(u, v)`` arrays out; the
    inputs are not modified.
    """
    w = _array(weight_matrix)
    u, v = _array(u), _array(v)
    if w.ndim != 2:
        raise ValueError(f"power_iteration: weight_matrix must be 2-D, got shape {tuple(w.shape)}")
    _check_vectors("power_iteration", w.shape[0], w.shape[1], u, v,
                   f"a weight matrix of shape {tuple(w.shape)}")
    if isinstance(n_iterations, bool) or not isinstance(n_iterations, numbers.Integral) \
            or n_iterations < 0:
        raise ValueError(
            f"power_iteration: n_iterations must be a non-negative int, got {n_iterations!r}")
    if not eps > 0:
        raise ValueError(f"power_iteration: eps must be positive, got {eps!r}")
    if u.dtype != w.dtype or v.dtype != w.dtype:
        raise TypeError(f"power_iteration: u ({u.dtype}) and v ({v.dtype}) must have the "
                        f"weight's dtype {w.dtype}")
    impl = kernels("spectral_norm", w, "power_iteration")
    return impl.power_iteration(w, u, v, int(n_iterations), float(eps))


def spectral_sigma(weight, u, v, dim=0):
    """``u^T W v`` (a 0-d Tensor), differentiable in ``weight`` only."""
    if not isinstance(weight, Tensor):
        raise TypeError(f"spectral_normalize: weight must be a Tensor, got {type(weight).__name__}")
    if weight.ndim < 1:
        raise ValueError(f"spectral_normalize: weight must have at least one dimension, got "
                         f"shape {weight.shape}")
    dim = normalize_axis(dim, weight.ndim, weight.shape)
    rows = weight.shape[dim]
    cols = weight.numel() // rows if rows else 0
    u_arr, v_arr = _array(u), _array(v)
    _check_vectors("spectral_normalize", rows, cols, u_arr, v_arr,
                   f"a weight of shape {weight.shape} with dim={dim}")
    if u_arr.dtype != weight.dtype or v_arr.dtype != weight.dtype:
        raise TypeError(f"spectral_normalize: u ({u_arr.dtype}) and v ({v_arr.dtype}) must "
                        f"have the weight's dtype {weight.dtype}")
    order = (dim,) + tuple(d for d in range(weight.ndim) if d != dim)
    matrix = reshape(permute(weight, order), (rows, cols))
    # Copies: u and v are buffers that the next power iteration overwrites in place,
    # possibly before this graph is backpropagated (a GAN critic called twice).
    u_const = Tensor._make(u_arr.copy())
    v_const = Tensor._make(v_arr.copy())
    return matmul(u_const, matmul(matrix, v_const))


def spectral_normalize(weight, u, v, dim=0):
    """``weight / (u^T W v)``: the weight scaled to unit (estimated) spectral norm."""
    return weight / spectral_sigma(weight, u, v, dim)
