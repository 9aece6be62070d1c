"""Matrix products in plain array code (numpy or cupy): ``matmul`` is the array
module's, with its BLAS threads as they are.  The oracle for ``numba_kernels/linalg.py``."""


def matmul(a, b):
    """``a @ b`` with numpy.matmul's semantics (batch dimensions broadcast)."""
    from .. import array_module

    return array_module(a).matmul(a, b)
