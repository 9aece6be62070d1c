"""Linear algebra family: batched matmul (numpy's BLAS on the CPU, cuBLAS via cupy), and
the affine map of a linear layer as one node.

Both backwards are products in tinygen ops (each a ``MatMul`` node whose forward is one
raw GEMM), so gradients of any order flow through them; ``Linear`` computes a weight's
gradient in the weight's own layout (``g.T @ x``: C-contiguous, straight from the GEMM)
instead of as the transpose of another product.
"""
from ..autograd.function import Function
from ..backend.kernels import kernels
from ._operands import binary_operands
from .shape import reshape, unsqueeze, squeeze


class MatMul(Function):
    """op(a) @ op(b) for ndim >= 2, batch dimensions broadcast like numpy.matmul, where
    op(t) is t with its last two axes swapped when ``transpose_a`` / ``transpose_b`` is
    set: a view, which BLAS reads as it is (a transposed operand is a flag to the GEMM,
    not a copy).  ``matmul()`` makes plain products; the transposed ones are the
    products the backwards need (``g @ b^T``, ``a^T @ g``), one node each instead of a
    Permute node and a product (a few microseconds of Python per gradient)."""

    def forward(self, a, b, transpose_a=False, transpose_b=False):
        self.save_inputs(0, 1)
        self.transpose_a, self.transpose_b = transpose_a, transpose_b
        if transpose_a:
            a = a.swapaxes(-1, -2)
        if transpose_b:
            b = b.swapaxes(-1, -2)
        return kernels("linalg", a, "matmul").matmul(a, b)

    def backward(self, grad):
        a, b = self.saved_inputs()
        ta, tb = self.transpose_a, self.transpose_b
        # With A = op(a), B = op(b) and C = A B: dA = G B^T and dB = A^T G, each then
        # transposed back when its operand was (da = dA^T = B G^T, db = dB^T = G^T A).
        # Gradients come out in the broadcast batch shape; the engine sums them back over
        # broadcast batch dimensions.  MatMul.apply, not matmul(): both operands have
        # ndim >= 2 and one dtype, and their shapes were checked when the product was
        # made, so grad's are aligned too.
        need_a, need_b = self.needs_input_grad
        grad_a = grad_b = None
        if need_a:
            grad_a = (MatMul.apply(b, grad, transpose_a=tb, transpose_b=True) if ta
                      else MatMul.apply(grad, b, transpose_b=not tb))
        if need_b:
            grad_b = (MatMul.apply(grad, a, transpose_a=True, transpose_b=ta) if tb
                      else MatMul.apply(a, grad, transpose_a=not ta))
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


class Linear(Function):
    """``x @ w.T (+ b)`` for x (..., in), w (out, in), b (out,): one node for a linear
    layer (instead of a transpose, a matmul and a broadcast add, and the engine's sum
    of the bias gradient over the batch)."""

    def forward(self, x, w, b=None):
        self.save_inputs(0, 1)
        out = kernels("linalg", x, "linear").matmul(x.reshape(-1, x.shape[-1]), w.T)
        if b is not None:
            out += b
        return out.reshape(x.shape[:-1] + (w.shape[0],))

    def backward(self, grad):
        x, w = self.saved_inputs()
        need_x, need_w = self.needs_input_grad[:2]
        need_b = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        out_features, in_features = w.shape
        g2 = reshape(grad, (-1, out_features))
        # MatMul.apply, as in MatMul.backward: the 2-D operands were checked in forward.
        gx = reshape(MatMul.apply(g2, w), x.shape) if need_x else None
        gw = (MatMul.apply(g2, reshape(x, (-1, in_features)), transpose_a=True)
              if need_w else None)
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, (g2.sum(0) if need_b else None)


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` as one op; the caller checks the shapes."""
    input, weight = binary_operands(input, weight, "linear")
    if bias is None:
        return Linear.apply(input, weight)
    _, bias = binary_operands(input, bias, "linear")
    return Linear.apply(input, weight, bias)
