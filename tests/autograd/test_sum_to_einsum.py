"""sum_to's einsum path (primitives.EINSUM_SUM_FROM elements and more, summing the last
axis among others): the same sums as numpy's, to float accuracy, in every layout the
engine meets (a conv bias' (1, C, 1, 1), a linear bias' (C,), a row's (N, 1))."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.autograd import primitives
from tinygen.autograd.primitives import EINSUM_SUM_FROM, sum_to


@pytest.mark.parametrize("shape, to", [
    ((32, 24, 28, 28), (1, 24, 1, 1)), ((8, 64, 1, 1024), (64, 1, 1)),
    ((300, 300), (300, 1)), ((4, 5, 4000), (5, 1)), ((70000,), (1,)), ((3, 70000), ()),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_einsum_path_sums_like_numpy(shape, to, dtype, monkeypatch):
    calls = []
    einsum = np.einsum
    monkeypatch.setattr(primitives.np, "einsum", lambda *a: calls.append(a[0]) or einsum(*a))
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype) + 0.5
    assert a.size >= EINSUM_SUM_FROM
    out = sum_to(tg.tensor(a), to).numpy()
    lead = len(shape) - len(to)
    axes = tuple(i for i in range(len(shape))
                 if i < lead or (to[i - lead] == 1 and shape[i] != 1))
    exact = a.astype(np.float64).sum(axis=axes).reshape(to)
    assert calls and out.shape == to and out.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, exact, rtol=tol, atol=tol * np.abs(exact).max())


def test_small_or_leading_axis_sums_stay_with_ndarray_sum(monkeypatch):
    monkeypatch.setattr(primitives.np, "einsum", None)  # would fail if called
    small = np.ones((4, 5), np.float32)
    np.testing.assert_array_equal(sum_to(tg.tensor(small), (5,)).numpy(), np.full(5, 4.0))
    leading = np.ones((300, 300), np.float32)
    np.testing.assert_array_equal(sum_to(tg.tensor(leading), (1, 300)).numpy(),
                                  np.full((1, 300), 300.0))
