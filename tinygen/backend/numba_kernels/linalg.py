"""Matrix products on the CPU through tinygen's thread pool (``chunks.py``): numpy's
BLAS on one thread per call, and the rows of a large product shared out among
threads.  Same results as ``tinygen.backend.reference.linalg`` (each row of the
product is computed by the same BLAS kernel either way, up to the blocking BLAS picks
for the row count).

Why not OpenBLAS's own threads: its threaded GEMM splits one product across its
threads with waits between them, and on a 2-core machine where the other core is
busy (or taken by our own pool a moment earlier) each wait can last a scheduler time
slice: a 128x784x512 float32 product took 3 ms on one OpenBLAS thread and 53 ms on two
with other work on the machine.  Shared out by rows here, a thread that does not get
a core in time simply takes fewer rows.
"""
import numba
import numpy as np

from .chunks import blas_on_one_thread, map_chunks

# Rows per piece at least this many: fewer make BLAS's blocking inefficient.
MIN_ROWS = 16
# Products of fewer multiply-adds are one BLAS call: sharing out costs a few tens of
# microseconds (the helper thread's start, the GIL changing hands), about what a
# product of this size saves on two threads (a 128x256x256 float32 product: 125 us on
# one thread, 106 us shared out).
MIN_MULTIPLY_ADDS = 1 << 23


def matmul(a, b):
    """``a @ b`` with numpy.matmul's semantics; a float product of a (..., M, K) operand
    and a 2-D (K, N) one of the same dtype with M * K * N >= MIN_MULTIPLY_ADDS is
    shared out among threads by rows of ``a`` (all of its leading dimensions when it
    is contiguous), one piece per thread (each piece re-packs ``b``: 4 pieces of a
    128x784x256 product cost 35% more than one call, 2 pieces 7%), everything else is
    one BLAS call; BLAS on one thread throughout."""
    threads = numba.get_num_threads()
    if threads <= 1 or (rows := _rows_of(a, b)) is None:    # (one thread: no shape checks)
        with blas_on_one_thread():
            return np.matmul(a, b)
    m, n = rows.shape[0], b.shape[1]
    pieces = min(threads, m // MIN_ROWS)
    if pieces < 2:
        with blas_on_one_thread():
            return np.matmul(a, b)
    out = np.empty((m, n), dtype=a.dtype)
    per = -(-m // pieces)

    def piece(slot, start, stop):
        np.matmul(rows[start:stop], b, out=out[start:stop])

    map_chunks(piece, [(start, min(m, start + per)) for start in range(0, m, per)])
    return out.reshape(a.shape[:-1] + (n,))


def _rows_of(a, b):
    """``a`` as an (M, K) matrix when the product is worth sharing out, else None."""
    if (b.ndim != 2 or a.ndim < 2 or a.dtype != b.dtype or a.dtype.kind != "f"
            or a.shape[-1] != b.shape[0]):
        return None
    if a.ndim > 2:
        if not a.flags.c_contiguous:
            return None
        a = a.reshape(-1, a.shape[-1])
    if a.shape[0] * a.shape[1] * b.shape[1] < MIN_MULTIPLY_ADDS:
        return None
    return a
