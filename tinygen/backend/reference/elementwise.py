"""The elementwise family's reference: an array and a Python number, the arithmetic of
``tinygen.ops.elementwise``'s constant ops (``x * 0.9``, ``x + 0.1``, ``x / 2``,
``1 - x``), in the array's own module (numpy here, cupy on the GPU: kernels._ALIASES).

The number is cast to the array's dtype first, as numpy does with a Python number, so
each result is one IEEE operation on two numbers of that dtype: correctly rounded, the
same bits from any correct implementation (the numba kernels' too).
"""


def add_constant(a, c):
    return a + a.dtype.type(c)


def mul_constant(a, c):
    return a * a.dtype.type(c)


def div_constant(a, c):
    """``a / c``, a division (not a product with ``1 / c``, which rounds twice)."""
    return a / a.dtype.type(c)


def sub_from_constant(a, c):
    return a.dtype.type(c) - a
