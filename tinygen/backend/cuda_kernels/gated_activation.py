"""Launchers of kernels/gated_activation.cu: the fused gate tanh(a) * sigmoid(b).

The 'cuda' gated_activation family: same functions, arguments and results as
``tinygen.backend.numba_kernels.gated_activation``.  Outputs are allocated with the
input's array module: cupy arrays run on the GPU, numpy arrays on the CUDA emulator.
"""
import numpy as np

from .. import array_module
from .launch import launch

THREADS = 256
# A grid-stride loop covers any size: more blocks than this only add scheduling.
MAX_BLOCKS = 4096
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def _suffix(op, name, array):
    suffix = _SUFFIX.get(getattr(array, "dtype", None))
    if suffix is None:
        raise TypeError(f"{op}: {name} must be a float32 or float64 array, got "
                        f"{getattr(array, 'dtype', type(array).__name__)}")
    return suffix


def _check_x3(op, x3):
    suffix = _suffix(op, "x3", x3)
    if x3.ndim != 3 or x3.shape[1] != 2:
        raise ValueError(f"{op}: x3 must have shape (P, 2, Q) (the two halves on axis 1), got "
                         f"{tuple(x3.shape)}")
    return suffix


def _grid(count):
    return min(-(-count // THREADS), MAX_BLOCKS)


def gated_forward(x3):
    """``tanh(x3[:, 0]) * sigmoid(x3[:, 1])`` for x3 (P, 2, Q), in x3's dtype."""
    op = "gated_forward"
    suffix = _check_x3(op, x3)
    xp = array_module(x3)
    x3 = xp.ascontiguousarray(x3)
    p, _, q = x3.shape
    out = xp.empty((p, q), dtype=x3.dtype)
    if out.size:
        launch(f"gated_activation_forward_{suffix}", _grid(out.size), THREADS, (x3, out, p, q))
    return out


def gated_backward(g, x3):
    """``[g (1 - t^2) s, g t s (1 - s)]`` stacked on axis 1, shape (P, 2, Q), where
    t = tanh(x3[:, 0]), s = sigmoid(x3[:, 1]) and g (P, Q) is the upstream gradient."""
    op = "gated_backward"
    suffix = _check_x3(op, x3)
    if _suffix(op, "g", g) != suffix:
        raise TypeError(f"{op}: g and x3 must share one dtype, got {g.dtype} and {x3.dtype}")
    p, _, q = x3.shape
    if tuple(g.shape) != (p, q):
        raise ValueError(f"{op}: g must have shape {(p, q)} (x3 is {tuple(x3.shape)}), got "
                         f"{tuple(g.shape)}")
    xp = array_module(x3)
    x3, g = xp.ascontiguousarray(x3), xp.ascontiguousarray(g)
    out = xp.empty_like(x3)
    if out.size:
        launch(f"gated_activation_backward_{suffix}", _grid(g.size), THREADS,
               (g, x3, out, p, q))
    return out
