"""OpenBLAS's GEMM called from numba code: numpy's own OpenBLAS, looked up once through
ctypes, called by address (so a kernel that calls it stays cacheable: the address is
an argument, not a constant baked into the compiled code).

Why: ``chunks.share_range`` runs a numba kernel's ranges on the pool's threads with no
Python (and no GIL) between them; a GEMM reached only through ``np.matmul`` must be
handed out as Python calls instead (``chunks.map_chunks``), each hand-over a GIL
round trip of tens of microseconds on the machines tinygen runs on.

Only 64-bit-integer (ILP64) builds are used, recognised by their symbol names (numpy's
wheels since 2.0: ``scipy_cblas_sgemm64_``; 1.2x: ``cblas_sgemm64_``); a 32-bit build,
or none found, leaves ``functions()`` None and callers use ``np.matmul``.  The caller
holds OpenBLAS at one thread (``chunks.blas_on_one_thread``) while these run: OpenBLAS
threading one product inside every piece we share out would put its threads and ours
on the same cores.
"""
import ctypes
import glob
import os

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# cblas.h's enums (C ints).
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
# The symbol names of an ILP64 OpenBLAS's cblas_?gemm, by build.
_NAMES = (("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"),
          ("cblas_sgemm64_", "cblas_dgemm64_"))

_found = []     # [None or (sgemm address, dgemm address, library path)], looked up once


def _candidate_libraries():
    """Paths of the OpenBLAS libraries to try, numpy's own first: those threadpoolctl
    sees loaded (numpy's among them once numpy is imported), then the ones in numpy's
    wheel directories (``numpy.libs`` on Linux and Windows, ``numpy/.dylibs`` on macOS)."""
    numpy_dir = os.path.dirname(os.path.abspath(np.__file__))
    wheel_dirs = [os.path.join(os.path.dirname(numpy_dir), "numpy.libs"),
                  os.path.join(numpy_dir, ".dylibs")]
    paths = []
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        pass
    else:
        for controller in ThreadpoolController().select(internal_api="openblas").lib_controllers:
            paths.append(controller.filepath)
    for directory in wheel_dirs:
        paths += sorted(glob.glob(os.path.join(directory, "*openblas*")))
    ours = [p for p in paths if any(os.path.abspath(p).startswith(d) for d in wheel_dirs)]
    return list(dict.fromkeys(ours + paths))


def find(paths):
    """(sgemm address, dgemm address, path) of the first library in ``paths`` that
    exports an ILP64 cblas GEMM pair, else None."""
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for single, double in _NAMES:
            s, d = getattr(library, single, None), getattr(library, double, None)
            if s is not None and d is not None:
                return (ctypes.cast(s, ctypes.c_void_p).value,
                        ctypes.cast(d, ctypes.c_void_p).value, path)
    return None


def functions():
    """(sgemm address, dgemm address, library path) of numpy's OpenBLAS, or None when
    no ILP64 cblas GEMM was found (callers then use ``np.matmul``)."""
    if not _found:
        _found.append(find(_candidate_libraries()))
    return _found[0]


def address_for(dtype):
    """The GEMM for ``dtype`` (float32 or float64), or None."""
    found = functions()
    if found is None:
        return None
    return found[0] if dtype == np.float32 else found[1] if dtype == np.float64 else None


_I32, _I64 = ir.IntType(32), ir.IntType(64)


@intrinsic
def gemm(typingctx, function, trans_a, trans_b, m, n, k, a, a_at, lda, b, b_at, ldb, beta,
         out, out_at, ldc):
    """``cblas_?gemm(RowMajor, trans_a, trans_b, m, n, k, 1, a + a_at, lda, b + b_at, ldb,
    beta, out + out_at, ldc)`` through the function at address ``function``; a, b, out:
    C-contiguous arrays of one float dtype, any number of dimensions (their data
    pointers, offset by ``*_at`` elements: the caller lays the matrices out, e.g. a
    window of columns of each image with ld its row length); ``beta`` 0 writes out,
    1 adds to it."""
    if not all(isinstance(x, types.Array) for x in (a, b, out)):
        return None
    dtype = out.dtype
    if dtype not in (types.float32, types.float64) or a.dtype != dtype or b.dtype != dtype:
        return None

    def codegen(context, builder, signature, args):
        (function, trans_a, trans_b, m, n, k, a, a_at, lda, b, b_at, ldb, beta, out, out_at,
         ldc) = args
        sig = signature.args
        real = context.get_value_type(dtype)
        pointer = real.as_pointer()

        def data(value, array_type, at, at_type):
            array = context.make_array(array_type)(context, builder, value)
            offset = context.cast(builder, at, at_type, types.int64)
            return builder.gep(array.data, [offset])

        def i64(value, value_type):
            return context.cast(builder, value, value_type, types.int64)

        def i32(value, value_type):
            return context.cast(builder, value, value_type, types.int32)

        kind = ir.FunctionType(ir.VoidType(), [_I32, _I32, _I32, _I64, _I64, _I64, real, pointer,
                                               _I64, pointer, _I64, real, pointer, _I64])
        callee = builder.inttoptr(i64(function, sig[0]), kind.as_pointer())
        builder.call(callee, [
            ir.Constant(_I32, ROW_MAJOR), i32(trans_a, sig[1]), i32(trans_b, sig[2]),
            i64(m, sig[3]), i64(n, sig[4]), i64(k, sig[5]), ir.Constant(real, 1.0),
            data(a, sig[6], a_at, sig[7]), i64(lda, sig[8]),
            data(b, sig[9], b_at, sig[10]), i64(ldb, sig[11]),
            context.cast(builder, beta, sig[12], dtype),
            data(out, sig[13], out_at, sig[14]), i64(ldc, sig[15])])
        return context.get_dummy_value()

    return types.void(function, trans_a, trans_b, m, n, k, a, a_at, lda, b, b_at, ldb, beta,
                      out, out_at, ldc), codegen


@njit(cache=True, nogil=True)
def gemm_range(function, a, trans_a, b, trans_b, out, by_rows, unit, lo, hi):
    """``out[r] = op(a)[r] @ op(b)`` for the rows r (``by_rows``) or ``out[:, c] = op(a) @
    op(b)[:, c]`` for the columns c in ``[lo * unit, min(hi * unit, end))``: one cblas
    call (``function``: the dtype's GEMM address).  ``op(x)`` is ``x``, or ``x.T`` when
    ``trans_x``; a, b and out are C-contiguous 2-D arrays (a transposed operand is
    passed as its C-contiguous base, read transposed by BLAS, never copied), out (M,
    N), op(a) (M, K), op(b) (K, N) with K >= 1."""
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    ta = TRANS if trans_a else NO_TRANS
    tb = TRANS if trans_b else NO_TRANS
    start = lo * unit
    if by_rows:
        stop = min(hi * unit, m)
        if stop <= start:
            return
        # op(a)'s rows start..stop: a's rows, or a's columns when it is stored transposed
        gemm(function, ta, tb, stop - start, n, k, a, start if trans_a else start * k,
             a.shape[1], b, 0, b.shape[1], 0.0, out, start * n, n)
    else:
        stop = min(hi * unit, n)
        if stop <= start:
            return
        # op(b)'s columns start..stop: b's columns, or b's rows when it is stored transposed
        gemm(function, ta, tb, m, stop - start, k, a, 0, a.shape[1], b,
             start * k if trans_b else start, b.shape[1], 0.0, out, start, n)
