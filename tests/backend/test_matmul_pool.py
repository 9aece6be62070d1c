"""Matrix products shared out among the pool's threads (numba_kernels/linalg.py): pieces
of rows or columns, each one cblas GEMM run from compiled code (``chunks.share_pieces``),
give numpy.matmul's numbers for both float dtypes, transposed operands read in place,
odd shapes, fewer rows than threads and one-row pieces; the same bits run to run; and
numpy's own matmul whenever no GEMM was found or a layout needs a copy."""
import numba
import numpy as np
import pytest

import tinygen as tg
from tinygen.backend.numba_kernels import _cblas, chunks, linalg
from tinygen.ops.linalg import linear

needs_gemm = pytest.mark.skipif(_cblas.functions() is None,
                                reason="numpy's BLAS has no ILP64 cblas GEMM (np.matmul is used)")


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads, every product shared out (no size threshold); the pieces each call
    was cut into, and whether BLAS was held at one thread meanwhile, recorded."""
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    monkeypatch.setattr(linalg, "MIN_MULTIPLY_ADDS", 0)
    calls = []
    original = chunks.share_pieces

    def spy(kernel, n, pieces, *args):
        calls.append({"units": n, "pieces": pieces, "by_rows": args[6],
                      "held": chunks._BlasOnOneThread.depth > 0})
        return original(kernel, n, pieces, *args)

    monkeypatch.setattr(linalg, "share_pieces", spy)
    return calls


def _layouts(rng, dtype, m, n, k, a_layout, b_layout):
    a = {"c": lambda: rng.standard_normal((m, k)),
         "t": lambda: rng.standard_normal((k, m)).T}[a_layout]()     # (F-contiguous: Trans)
    b = {"c": lambda: rng.standard_normal((k, n)),
         "t": lambda: rng.standard_normal((n, k)).T}[b_layout]()
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


@needs_gemm
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_layout", ["c", "t"])
@pytest.mark.parametrize("b_layout", ["c", "t"])
@pytest.mark.parametrize("m, n, k", [(131, 45, 67), (37, 300, 9), (1, 70, 33), (2, 17, 2),
                                     (40, 40, 40)])
def test_shared_product_equals_numpy(two_threads, dtype, a_layout, b_layout, m, n, k):
    rng = np.random.default_rng(m + n + k)
    a, b = _layouts(rng, dtype, m, n, k, a_layout, b_layout)
    out = linalg.matmul(a, b)
    assert out.dtype == dtype and out.shape == (m, n)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=tol, atol=tol)
    assert len(two_threads) == 1 and two_threads[0]["held"]
    call = two_threads[0]
    assert call["by_rows"] == (n <= linalg.COLUMNS_PAST * m)
    assert call["units"] == -(-(m if call["by_rows"] else n) // linalg.UNIT)


@needs_gemm
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(9, 7, 5), (3, 40, 6)])     # rows; columns (n > 2m)
def test_one_row_or_column_pieces_on_two_threads(two_threads, monkeypatch, dtype, shape):
    """Pieces of one row (or column) each, many more than threads: every piece lands
    where it belongs, whichever thread ran it."""
    monkeypatch.setattr(linalg, "UNIT", 1)
    monkeypatch.setattr(linalg, "PIECES_PER_THREAD", 1000)
    m, n, k = shape
    rng = np.random.default_rng(7)
    a, b = _layouts(rng, dtype, m, n, k, "t", "t")
    for _ in range(20):
        np.testing.assert_allclose(linalg.matmul(a, b), np.matmul(a, b), rtol=1e-5, atol=1e-5)
    assert two_threads[0]["pieces"] >= (m if n <= linalg.COLUMNS_PAST * m else n)


@needs_gemm
def test_batched_rows_and_the_same_bits_run_to_run(two_threads):
    """A (..., M, K) operand is shared out as one (M', K) matrix; twenty runs at two
    threads give the same bits (the pieces do not depend on which thread runs them)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 50, 96)).astype(np.float32)
    b = rng.standard_normal((96, 200)).astype(np.float32)
    first = linalg.matmul(a, b)
    assert first.shape == (4, 50, 200)
    np.testing.assert_allclose(first, np.matmul(a, b), rtol=1e-5, atol=1e-5)
    for _ in range(20):
        np.testing.assert_array_equal(linalg.matmul(a, b), first)
    assert two_threads[0]["pieces"] == 2 and two_threads[0]["units"] == -(-200 // linalg.UNIT)


def test_numpys_matmul_without_a_gemm_or_for_a_strided_operand(two_threads, monkeypatch):
    """No ILP64 GEMM found (another BLAS, or none): np.matmul, the same numbers; and an
    operand neither C- nor F-contiguous, a float16 product, mixed dtypes, a batched
    ``b``: np.matmul too.  Nothing shared out."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((64, 48))
    b = rng.standard_normal((48, 80))
    monkeypatch.setattr(_cblas, "_found", [None])
    assert _cblas.functions() is None and linalg._plan(a, b) is None
    np.testing.assert_array_equal(linalg.matmul(a, b), np.matmul(a, b))
    monkeypatch.undo()
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    monkeypatch.setattr(linalg, "MIN_MULTIPLY_ADDS", 0)
    strided = rng.standard_normal((64, 96))[:, ::2]
    for x, y in [(strided, b), (a.astype(np.float16), b.astype(np.float16)),
                 (a.astype(np.float32), b), (a, np.stack([b, b]))]:
        assert linalg._plan(x, y) is None
        np.testing.assert_allclose(linalg.matmul(x, y), np.matmul(x, y), rtol=1e-3)
    assert two_threads == []


def test_a_product_with_an_empty_dimension(two_threads):
    for m, n, k in [(0, 5, 3), (4, 0, 3), (4, 5, 0)]:
        a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
        np.testing.assert_array_equal(linalg.matmul(a, b), np.matmul(a, b))
    assert two_threads == []


@needs_gemm
def test_linear_forward_and_backward_shared_out_in_float64(two_threads):
    """Linear's three products (x @ w.T, g @ w, g.T @ x: both transposes) shared out
    at two threads equal numpy's closed forms."""
    rng = np.random.default_rng(4)
    x = tg.tensor(rng.standard_normal((37, 23)), dtype=tg.float64, requires_grad=True)
    w = tg.tensor(rng.standard_normal((19, 23)), dtype=tg.float64, requires_grad=True)
    b = tg.tensor(rng.standard_normal(19), dtype=tg.float64, requires_grad=True)
    g = rng.standard_normal((37, 19))
    out = linear(x, w, b)
    gx, gw, gb = tg.grad(out, [x, w, b], tg.tensor(g, dtype=tg.float64))
    xn, wn = x.numpy(), w.numpy()
    np.testing.assert_allclose(out.numpy(), xn @ wn.T + b.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx.numpy(), g @ wn, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw.numpy(), g.T @ xn, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb.numpy(), g.sum(0), rtol=1e-12, atol=1e-12)
    assert len(two_threads) == 3


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shapes", [((64, 1), (1, 300)), ((3, 1, 5, 1), (4, 1, 7)),
                                    ((5, 1), (2, 1, 6))])
def test_an_outer_product_is_a_multiply_with_numpys_numbers(monkeypatch, threads, shapes):
    """K = 1: a * b, the same shape and numbers as numpy.matmul (batch dimensions
    broadcast), both layouts; nothing shared out, BLAS not called."""
    monkeypatch.setattr(numba, "get_num_threads", lambda: threads)
    monkeypatch.setattr(linalg, "MIN_MULTIPLY_ADDS", 0)
    monkeypatch.setattr(linalg, "share_pieces", None)       # (would fail if called)
    monkeypatch.setattr(linalg, "_plan", None)
    monkeypatch.setattr(linalg, "blas_on_one_thread", None)  # (BLAS's path would use it)
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        a = rng.standard_normal(shapes[0]).astype(dtype)
        b = rng.standard_normal(shapes[1][::-1]).astype(dtype).T if len(shapes[1]) == 2 \
            else rng.standard_normal(shapes[1]).astype(dtype)
        out = linalg.matmul(a, b)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, np.matmul(a, b))


@needs_gemm
def test_the_same_bits_when_the_pieces_cannot_be_shared_out(two_threads, another_job_posted):
    """Another Python thread's job posted: the caller runs the same two pieces itself,
    not one call over the whole (which rounds differently for this shape)."""
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((340, 204)), rng.standard_normal((204, 255))
    shared = linalg.matmul(a, b)
    with another_job_posted():
        alone = linalg.matmul(a, b)
    np.testing.assert_array_equal(alone, shared)
    np.testing.assert_allclose(shared, np.matmul(a, b), rtol=1e-12, atol=1e-12)
