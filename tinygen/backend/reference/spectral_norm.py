"""Spectral normalisation's power iteration in plain array code (numpy or cupy).

For a weight matrix W (rows x cols) and unit vectors u (rows,), v (cols,), one
step of the power iteration is

    v <- normalize(W^T u)
    u <- normalize(W v)

and ``sigma = u^T W v`` then estimates W's largest singular value (Miyato et
al., 2018): after enough steps u and v are its left and right singular vectors.
``normalize(y) = y / max(||y||, eps)``, like ``torch.nn.functional.normalize``.

No numba kernel here: both steps are matrix-vector products, memory-bound and
already optimal in BLAS (cuBLAS through cupy on the GPU), so the same code
serves every device.
"""
from .. import array_module


def normalize(vector, eps):
    """``vector / max(||vector||, eps)``."""
    xp = array_module(vector)
    return vector / max(float(xp.linalg.norm(vector)), eps)


def power_iteration(weight_matrix, u, v, n_iterations, eps):
    """``n_iterations`` power-iteration steps from (u, v); returns the new (u, v)."""
    for _ in range(n_iterations):
        v = normalize(weight_matrix.T @ u, eps)
        u = normalize(weight_matrix @ v, eps)
    return u, v


def sigma(weight_matrix, u, v):
    """The spectral-norm estimate ``u^T W v``."""
    return u @ (weight_matrix @ v)
