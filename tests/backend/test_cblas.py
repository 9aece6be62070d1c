"""OpenBLAS's GEMM called from numba code (numba_kernels/_cblas.py): found in numpy's own
wheel, and ``gemm_range`` computes the rows or columns it is given of op(a) @ op(b), the
same numbers as numpy.matmul, for both float dtypes and every transpose."""
import ctypes.util
import os

import numpy as np
import pytest

from tinygen.backend.numba_kernels import _cblas


def _numpy_has_ilp64_openblas():
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:   # (numpy < 1.26: no dicts mode)
        return False
    return ("openblas" in blas.get("name", "")
            and "USE64BITINT" in blas.get("openblas configuration", ""))


def _gemm_or_skip(dtype):
    function = _cblas.address_for(np.dtype(dtype))
    if function is None:
        assert not _numpy_has_ilp64_openblas(), "numpy's ILP64 OpenBLAS was not found"
        pytest.skip("numpy's BLAS has no ILP64 cblas GEMM (np.matmul is used)")
    return function


def test_numpys_own_openblas_is_found():
    found = _cblas.functions()
    if found is None:
        assert not _numpy_has_ilp64_openblas(), "numpy's ILP64 OpenBLAS was not found"
        pytest.skip("numpy's BLAS has no ILP64 cblas GEMM")
    sgemm, dgemm, path = found
    assert sgemm and dgemm and sgemm != dgemm
    assert os.path.dirname(os.path.abspath(np.__file__)) in os.path.abspath(path) or \
        "numpy.libs" in path or "openblas" in os.path.basename(path)


def test_a_library_without_the_symbols_is_passed_over():
    libc = ctypes.util.find_library("c")
    assert _cblas.find(["/no/such/library.so"] + ([libc] if libc else [])) is None


def _operands(rng, dtype, m, n, k, trans_a, trans_b):
    """(a as stored, b as stored, op(a), op(b)): a stored (K, M) when transposed."""
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b, (a.T if trans_a else a), (b.T if trans_b else b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("by_rows", [False, True])
@pytest.mark.parametrize("m, n, k, unit", [(37, 29, 13, 4), (1, 5, 3, 1), (6, 1, 1, 1),
                                           (33, 70, 50, 16), (17, 17, 200, 3)])
def test_gemm_range_pieces_make_numpys_product(dtype, trans_a, trans_b, by_rows, m, n, k, unit):
    """The product computed piece by piece (every range of units, a last short one and
    an empty one past the end included) is numpy's product; nothing outside is written."""
    function = _gemm_or_skip(dtype)
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    a, b, op_a, op_b = _operands(rng, dtype, m, n, k, trans_a, trans_b)
    out = np.full((m, n), np.nan, dtype)
    units = -(-(m if by_rows else n) // unit)
    for lo in range(0, units + 1, 2):      # (the last range may start past the end)
        _cblas.gemm_range(function, a, trans_a, b, trans_b, out, by_rows, unit, lo,
                          min(units + 1, lo + 2))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, np.matmul(op_a, op_b), rtol=tol, atol=tol)


@pytest.mark.parametrize("by_rows", [False, True])
def test_gemm_range_writes_only_its_own_rows_or_columns(by_rows):
    function = _gemm_or_skip(np.float64)
    rng = np.random.default_rng(3)
    a, b, op_a, op_b = _operands(rng, np.float64, 12, 10, 7, True, False)
    out = np.full((12, 10), np.nan)
    _cblas.gemm_range(function, a, True, b, False, out, by_rows, 2, 1, 3)    # rows/cols 2..5
    expected = np.full((12, 10), np.nan)
    if by_rows:
        expected[2:6] = op_a[2:6] @ op_b
    else:
        expected[:, 2:6] = op_a @ op_b[:, 2:6]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_gemm_reads_and_writes_windows_in_place_and_adds_with_beta_one(beta):
    """``gemm`` on blocks of larger arrays (element offsets, leading dimensions the
    arrays' row lengths), as conv_direct calls it: out's block = op(a) @ b's block
    (beta 0) or += it (beta 1); nothing outside the block is written."""
    from numba import njit

    @njit
    def call(function, a, b, beta, out):
        # op(a) = a[1:4, 2:7].T (5x3), b[2:5, 3:9] (3x6) -> out[1:6, 4:10]
        _cblas.gemm(function, _cblas.TRANS, _cblas.NO_TRANS, 5, 6, 3, a, 1 * 9 + 2, 9,
                    b, 2 * 10 + 3, 10, beta, out, 1 * 12 + 4, 12)

    function = _gemm_or_skip(np.float64)
    rng = np.random.default_rng(4)
    a, b, out = (rng.standard_normal(shape) for shape in ((5, 9), (6, 10), (7, 12)))
    expected = out.copy()
    expected[1:6, 4:10] = beta * out[1:6, 4:10] + a[1:4, 2:7].T @ b[2:5, 3:9]
    call(function, a, b, beta, out)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
