"""Spectral normalisation's power iteration on CUDA (kernels/spectral_norm.cu).

Same functions and results as ``tinygen.backend.reference.spectral_norm`` (read it
for the maths): ``power_iteration(weight_matrix, u, v, n_iterations, eps)`` returns
the new ``(u, v)`` and leaves its inputs alone; ``sigma(weight_matrix, u, v)`` is
``u^T W v`` as a 0-d array of W's dtype; ``normalize`` is the reference's (plain
array code, which serves cupy as well).

Each iteration is ONE launch computing ``v = normalize(W^T u)``, ``u = normalize(W v)``
and ``sigma = u^T W v`` (the kernel file explains how a grid does that without a
grid-wide barrier: a tree of per-block partial sums merged by the blocks themselves).
``power_iteration_sigma`` also returns that last sigma, which
saves the separate ``sigma`` launch.  Sums are accumulated in double.
"""
import numbers

import numpy as np

from .. import array_module
from ..reference.spectral_norm import normalize  # noqa: F401  (the family's third function)
from .launch import launch

# kThreads and kCols of kernels/spectral_norm.cu: each block owns COLUMNS_PER_BLOCK columns.
THREADS = 256
COLUMNS_PER_BLOCK = 32

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def _check(op, weight_matrix, u, v):
    w = weight_matrix
    if getattr(w, "ndim", None) != 2:
        raise ValueError(f"{op}: weight_matrix must be a 2-D array, got "
                         f"{getattr(w, 'shape', type(w).__name__)}")
    if w.dtype not in _SUFFIX:
        raise TypeError(f"{op}: weight_matrix must be float32 or float64, got {w.dtype}")
    rows, cols = w.shape
    if rows == 0 or cols == 0:
        raise ValueError(f"{op}: weight_matrix must not be empty, got shape {w.shape}")
    xp = array_module(w)
    for name, vec, n in (("u", u, rows), ("v", v, cols)):
        if getattr(vec, "shape", None) != (n,):
            raise ValueError(f"{op}: {name} must have shape ({n},) for a weight matrix of "
                             f"shape {w.shape}, got {getattr(vec, 'shape', type(vec).__name__)}")
        if vec.dtype != w.dtype:
            raise TypeError(f"{op}: {name} ({vec.dtype}) must have the weight's dtype {w.dtype}")
        if array_module(vec) is not xp:
            raise ValueError(f"{op}: {name} and weight_matrix must be on the same device")
    return xp, xp.ascontiguousarray(w)


def _blocks(cols):
    return -(-cols // COLUMNS_PER_BLOCK)


def power_iteration_sigma(weight_matrix, u, v, n_iterations, eps):
    """``n_iterations >= 1`` steps from (u, v); returns the new ``(u, v, sigma)`` with
    ``sigma = u^T W v`` of the final u and v (0-d, W's dtype)."""
    if isinstance(n_iterations, bool) or not isinstance(n_iterations, numbers.Integral) \
            or n_iterations < 1:
        raise ValueError(f"power_iteration_sigma: n_iterations must be a positive int, got "
                         f"{n_iterations!r}")
    if not eps > 0:
        raise ValueError(f"power_iteration_sigma: eps must be positive, got {eps!r}")
    xp, w = _check("power_iteration", weight_matrix, u, v)
    rows, cols = w.shape
    blocks = _blocks(cols)
    u = xp.array(u, order="C")  # copies: the kernel updates them in place
    v = xp.array(v, order="C")
    v_raw = xp.empty(cols, dtype=np.float64)
    partial_y = xp.empty(blocks * rows, dtype=np.float64)
    partial_vv = xp.empty(blocks, dtype=np.float64)
    tickets = xp.zeros(blocks, dtype=np.int32)  # one per tree node; each merge resets its own
    sigma_out = xp.empty(1, dtype=w.dtype)
    name = f"spectral_norm_power_step_{_SUFFIX[w.dtype]}"
    for _ in range(int(n_iterations)):
        launch(name, blocks, THREADS,
               (w, u, v, v_raw, partial_y, partial_vv, tickets, sigma_out, rows, cols,
                float(eps)))
    return u, v, sigma_out.reshape(())


def power_iteration(weight_matrix, u, v, n_iterations, eps):
    """``n_iterations`` power-iteration steps from (u, v); returns the new (u, v)."""
    if isinstance(n_iterations, bool) or not isinstance(n_iterations, numbers.Integral) \
            or n_iterations < 0:
        raise ValueError(f"power_iteration: n_iterations must be a non-negative int, got "
                         f"{n_iterations!r}")
    if n_iterations == 0:
        _check("power_iteration", weight_matrix, u, v)
        return u, v
    u, v, _ = power_iteration_sigma(weight_matrix, u, v, n_iterations, eps)
    return u, v


def sigma(weight_matrix, u, v):
    """The spectral-norm estimate ``u^T W v`` (0-d, W's dtype), in one launch."""
    xp, w = _check("sigma", weight_matrix, u, v)
    rows, cols = w.shape
    blocks = _blocks(cols)
    partial = xp.empty(blocks, dtype=np.float64)
    ticket = xp.zeros(1, dtype=np.int32)
    out = xp.empty(1, dtype=w.dtype)
    launch(f"spectral_norm_sigma_{_SUFFIX[w.dtype]}", blocks, THREADS,
           (w, xp.ascontiguousarray(u), xp.ascontiguousarray(v), partial, ticket, out, rows,
            cols))
    return out.reshape(())
