"""The ``sums`` kernels (the engine's gradient sums, sum_to's sums over broadcast axes):
the reference's einsum path sums like numpy; the numba kernels add bit-equal to numpy,
and sum over axes within float accuracy of the exact sum, with the same bits at 1 and
2 threads (each kept element summed by one thread in a fixed order)."""
import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
from tinygen.autograd.primitives import sum_to
from tinygen.backend.kernels import use_impl
from tinygen.backend.numba_kernels import sums as numba_sums
from tinygen.backend.reference import sums as reference
from tinygen.backend.reference.sums import EINSUM_SUM_FROM

# The layouts the engine meets: a conv bias' (1, C, 1, 1), WaveNet's (C, 1), a linear
# bias' (C,), a row's (N, 1), a full sum.
SHAPES = [
    ((32, 24, 28, 28), (1, 24, 1, 1)), ((8, 64, 1, 1024), (64, 1, 1)),
    ((300, 300), (300, 1)), ((4, 5, 4000), (5, 1)), ((70000,), (1,)), ((3, 70000), ()),
    ((600, 300), (300,)), ((2, 33, 7, 3, 333), (33, 1, 1, 1)),
]


def _axes(shape, to):
    lead = len(shape) - len(to)
    return tuple(i for i in range(len(shape)) if i < lead or (to[i - lead] == 1 and shape[i] != 1))


def _tolerance(a, exact, dtype):
    tol = 1e-6 if dtype == np.float32 else 1e-13
    return dict(rtol=tol, atol=tol * np.abs(exact).max())


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request, monkeypatch):
    """The pool's thread count (numba's getter replaced: chunks.thread_count reads it)."""
    monkeypatch.setattr(numba, "get_num_threads", lambda: request.param)
    return request.param


@pytest.mark.parametrize("shape, to", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_einsum_path_sums_like_numpy(shape, to, dtype, monkeypatch):
    calls = []
    einsum = np.einsum
    monkeypatch.setattr(reference.np, "einsum", lambda *a: calls.append(a[0]) or einsum(*a))
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype) + 0.5
    assert a.size >= EINSUM_SUM_FROM
    with use_impl("reference"):
        out = sum_to(tg.tensor(a), to).numpy()
    exact = a.astype(np.float64).sum(axis=_axes(shape, to)).reshape(to)
    assert out.shape == to and out.dtype == dtype
    assert calls or _axes(shape, to)[-1] != len(shape) - 1     # (einsum: last axis summed)
    np.testing.assert_allclose(out, exact, **_tolerance(a, exact, dtype))


def test_reference_small_or_leading_axis_sums_stay_with_ndarray_sum(monkeypatch):
    monkeypatch.setattr(reference.np, "einsum", None)  # would fail if called
    with use_impl("reference"):
        small = np.ones((4, 5), np.float32)
        np.testing.assert_array_equal(sum_to(tg.tensor(small), (5,)).numpy(), np.full(5, 4.0))
        leading = np.ones((300, 300), np.float32)
        np.testing.assert_array_equal(sum_to(tg.tensor(leading), (1, 300)).numpy(),
                                      np.full((1, 300), 300.0))


@pytest.mark.parametrize("shape, to", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_sum_to_is_accurate_and_the_same_at_1_and_2_threads(shape, to, dtype,
                                                                  monkeypatch):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype) + 0.5
    exact = a.astype(np.float64).sum(axis=_axes(shape, to)).reshape(to)
    outs = []
    for count in (1, 2):
        monkeypatch.setattr(numba, "get_num_threads", lambda: count)
        out = sum_to(tg.tensor(a), to).numpy()
        assert out.shape == to and out.dtype == dtype
        np.testing.assert_allclose(out, exact, **_tolerance(a, exact, dtype))
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])


@settings(max_examples=30, deadline=None)
@given(p=st.integers(1, 40), c=st.integers(2, 70), q=st.integers(numba_sums.SHORTEST_RUN, 700),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_numba_sum_axes_matches_the_exact_sum(p, c, q, dtype):
    """Runs of every length from SHORTEST_RUN (blocks of BLOCK and a remainder)."""
    a = np.random.default_rng(p * c * q).standard_normal((p, c, q)).astype(dtype)
    if a.size < EINSUM_SUM_FROM:        # (below: the reference itself)
        a = np.concatenate([a] * (EINSUM_SUM_FROM // a.size + 1))
    axes = (0, 2)
    exact = a.astype(np.float64).sum(axis=axes)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(numba_sums.sum_axes(a, axes).reshape(-1),
                               exact.reshape(-1), rtol=tol, atol=tol * np.abs(exact).max())


def test_numba_sum_propagates_nan_and_inf():
    a = np.ones((16, 8, 1024), np.float32)
    a[3, 2, 5], a[0, 5, 7] = np.nan, np.inf
    out = numba_sums.sum_axes(a, (0, 2))
    assert np.isnan(out[2]) and out[5] == np.inf and (out[[0, 1, 3, 4, 6, 7]] == 16384).all()


def test_numba_sum_of_other_layouts_is_the_references(monkeypatch):
    monkeypatch.setattr(numba_sums, "_sum_pcq", None)   # would fail if called
    a = np.random.default_rng(2).standard_normal((40, 50, 70)).astype(np.float32)
    short = np.ascontiguousarray(a[:, :, :numba_sums.SHORTEST_RUN - 1])
    # kept axes not one run; nothing kept; no run (a linear bias); runs too short; strided
    for x, axes in [(a, (1,)), (a, (0, 1, 2)), (a, (0,)), (short, (0, 2)),
                    (a[:, :, ::-1], (0, 2))]:
        assert x.size >= EINSUM_SUM_FROM
        np.testing.assert_array_equal(numba_sums.sum_axes(x, axes), reference.sum_axes(x, axes))


@pytest.mark.parametrize("shape", [(32, 48, 28, 28), (1 << 17,), (3, 100003)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_add_and_add_into_are_numpys_bits(shape, dtype, threads):
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    np.testing.assert_array_equal(numba_sums.add(a, b), a + b)
    total = a.copy()
    numba_sums.add_into(total, b)
    np.testing.assert_array_equal(total, a + b)


def test_numba_add_of_mixed_operands_is_the_references():
    a = np.ones((300, 500), np.float32)
    for b in (np.ones(500, np.float32), np.ones((300, 500)), np.ones((500, 300), np.float32).T):
        np.testing.assert_array_equal(numba_sums.add(a, b), a + b)
    total = a.copy()
    numba_sums.add_into(total, np.ones((500, 300), np.float32).T)
    np.testing.assert_array_equal(total, a + 1)


def test_engine_sums_fan_in_with_the_kernels(threads):
    """A tensor used four times: its gradients summed by add, then add_into; a leaf
    whose .grad is set already: add.  The same bits as the reference's numpy sums."""
    x0 = np.random.default_rng(4).standard_normal((64, 64, 40)).astype(np.float32)
    grads = []
    for impl in ("reference", "numba"):
        with use_impl(impl):
            x = tg.tensor(x0, requires_grad=True)
            y = tg.tensor(x0 * 2)
            h = x * 1.5
            (h * y + h * h + h).sum().backward()
            first = x.grad.numpy().copy()
            (x * 3.0).sum().backward()
            grads.append((first, x.grad.numpy()))
    np.testing.assert_allclose(grads[1][0], (x0 * 2 + x0 * 3 + 1) * 1.5, rtol=1e-4, atol=1e-5)
    for reference_grad, numba_grad in zip(*grads):
        np.testing.assert_array_equal(numba_grad, reference_grad)
