"""Linear algebra family: batched matmul (numpy's BLAS on the CPU, cuBLAS via cupy)."""
from ..autograd.function import Function
from ..backend import array_module
from ._operands import binary_operands
from .shape import unsqueeze, squeeze, transpose


class MatMul(Function):
    """a @ b for ndim >= 2, batch dimensions broadcast like numpy.matmul."""

    def forward(self, a, b):
        self.save_inputs(0, 1)
        return array_module(a).matmul(a, b)

    def backward(self, grad):
        a, b = self.saved_inputs()
        # Gradients come out in the broadcast batch shape; the engine sums them
        # back over broadcast batch dimensions.
        grad_a = matmul(grad, transpose(b)) if self.needs_input_grad[0] else None
        grad_b = matmul(transpose(a), grad) if self.needs_input_grad[1] else None
        return grad_a, grad_b


def matmul(a, b):
    """numpy.matmul semantics, including 1-D operands (promoted, then squeezed)."""
    a, b = binary_operands(a, b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one dimension, got {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
            f"{a.shape[-1]} (last dim of a) != {b.shape[-2 if b.ndim > 1 else 0]} "
            f"({'second-to-last' if b.ndim > 1 else 'only'} dim of b)"
        )
    if a.ndim > 2 or b.ndim > 2:
        import numpy as np

        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(
                f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast"
            ) from None
    a2 = unsqueeze(a, 0) if a.ndim == 1 else a
    b2 = unsqueeze(b, -1) if b.ndim == 1 else b
    out = MatMul.apply(a2, b2)
    if b.ndim == 1:
        out = squeeze(out, -1)
    if a.ndim == 1:
        out = squeeze(out, -2 if b.ndim > 1 else -1)
    return out
