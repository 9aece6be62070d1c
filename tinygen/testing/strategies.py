"""Hypothesis strategies for testing ops (public API).

    from hypothesis import given
    from tinygen.testing import strategies as tst

    @given(tst.tensors(shape=tst.shapes(max_dims=3), requires_grad=True))
    def test_my_op(x):
        gradcheck(my_op, x)

Shapes are kept small by default because finite differences cost two
function evaluations per input element.
"""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..autograd.tensor import Tensor


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Array shapes (size-1 dimensions included)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4):
    """A tuple of ``num_shapes`` shapes that broadcast together (size-1 dims and
    missing leading dims included)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side,
    ).map(lambda result: result.input_shapes)


def axes(ndim, allow_none=True, allow_tuple=True):
    """An axis argument valid for ``ndim`` dimensions: None, an int (negative
    too) or a tuple of distinct ints."""
    options = []
    if allow_none:
        options.append(st.none())
    if ndim > 0:
        options.append(st.integers(-ndim, ndim - 1))
        if allow_tuple:
            options.append(
                st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)
                .map(tuple)
            )
    if not options:
        options.append(st.none())
    return st.one_of(*options)


def arrays(shape, dtype=np.float64, min_value=-3.0, max_value=3.0, avoid=(), margin=0.05):
    """Float arrays with bounded values, optionally kept ``margin`` away from the
    points in ``avoid`` (the kinks of relu, abs, clamp...)."""
    elements = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False, width=64)
    if avoid:
        elements = elements.filter(lambda v: all(abs(v - k) > margin for k in avoid))
    return hnp.arrays(dtype=np.float64, shape=shape, elements=elements).map(
        lambda a: a.astype(dtype)
    )


def tensors(shape=None, dtype=np.float64, min_value=-3.0, max_value=3.0, requires_grad=False,
            avoid=(), margin=0.05):
    """Tensors with bounded values; ``shape`` is a tuple or a strategy of shapes."""
    shape_strategy = shapes() if shape is None else shape
    if isinstance(shape_strategy, tuple):
        shape_strategy = st.just(shape_strategy)
    return shape_strategy.flatmap(
        lambda s: arrays(s, dtype, min_value, max_value, avoid, margin)
    ).map(lambda a: _leaf(a, requires_grad))


def _leaf(array, requires_grad):
    # np.array, not np.ascontiguousarray: the latter turns a 0-d array into shape (1,).
    t = Tensor._make(np.array(array, order="C"))
    if requires_grad:
        t.requires_grad = True
    return t
