"""Matrix products on the CPU through tinygen's thread pool (``chunks.py``): numpy's
OpenBLAS on one thread per call, and a large product shared out among threads in
pieces of its rows or columns, each piece one cblas GEMM called from compiled code
(``_cblas.py``) on the pool's threads with no GIL hand-over (``chunks.share_pieces``).
Same results as ``tinygen.backend.reference.linalg`` up to rounding (every element
is one dot product over all of K, but OpenBLAS picks its kernels by shape: a product
cut in two matched one call bit for bit for 461 of 600 random shapes and dtypes, the
rest differed in the last bits), and the same bits run to run at a given thread
count: the pieces depend only on the shape and the thread count, never on which
thread runs which, nor on whether a helper was free (``chunks.share_pieces``).  K is
never split.

Why not OpenBLAS's own threads: its threaded GEMM splits one product across its
threads with waits between them, and on a 2-core machine where the other core is
busy (or taken by our own pool a moment earlier) each wait can last a scheduler time
slice: a 128x784x512 float32 product took 3 ms on one OpenBLAS thread and 53 ms on two
with other work on the machine.  Shared out here, a thread that does not get a core in
time simply takes fewer pieces.
"""
import numpy as np

from . import _cblas
from .chunks import blas_held, blas_on_one_thread, share_pieces, thread_count

# Rows or columns per piece: a multiple of BLAS's register blocking (OpenBLAS's
# float32 kernels on AVX-512 are 16 wide, its float64 ones 8), so that only the
# product's own border needs edge kernels.
UNIT = 16
# Products of fewer multiply-adds are one BLAS call on the calling thread: sharing
# out costs a few microseconds (posting the job, the helper's claim) and each piece
# re-packs the operand it does not split.  Measured quiet on 2 threads (float32, one
# call / shared, us): 64x64x64 5.7 / 8.0, 128x64x64 8.4 / 10.3, 128x64x128 17.0 /
# 11.3, 128x256x32 18.8 / 12.0.  (Shared out as Python calls, through map_chunks, the
# break-even was 8x larger: each piece cost a GIL hand-over.)
MIN_MULTIPLY_ADDS = 1 << 20
PIECES_PER_THREAD = 1
# A product more than this many times as wide as it is tall is cut into pieces of
# columns, else of rows (see matmul).
COLUMNS_PAST = 2


def matmul(a, b):
    """``a @ b`` with numpy.matmul's semantics; a float product of a (..., M, K) operand
    and a 2-D (K, N) one of the same dtype with M * K * N >= MIN_MULTIPLY_ADDS is
    shared out among threads in pieces of out's rows, or of its columns when it is
    more than twice as wide as it is tall (a row piece re-packs all of ``b``, K x N,
    a column piece all of ``a``, M x K), PIECES_PER_THREAD pieces per thread;
    everything else is one BLAS call.  BLAS on one thread throughout.  A product
    over K = 1 (an outer product: a 1-output linear layer's input gradient) is an
    elementwise multiply.

    Measured quiet on 2 threads against one call (float32, us): rows won even where
    they re-pack the larger operand until it is much the larger: 128x256 @ 256x256
    61 (columns 75, one call 100); 128x784 @ 784x256 192 (columns 182, one 312);
    128x784 @ 784x512 444 (columns 388, one 686); 784x128 @ 128x256 155 (columns
    206, one 284).  Two pieces per thread were slower in every case but one (each
    piece re-packs an operand)."""
    if a.shape[-1] == 1 and _outer(a, b):
        return np.multiply(a, b)
    threads = thread_count()
    if threads <= 1 or (plan := _plan(a, b)) is None:    # (one thread: no shape checks)
        with blas_held():
            return np.matmul(a, b)
    function, a2, trans_a, b2, trans_b, m, n, shape = plan
    by_rows = n <= COLUMNS_PAST * m
    units = -(-(m if by_rows else n) // UNIT)
    out = np.empty((m, n), dtype=a.dtype)
    with blas_on_one_thread():
        share_pieces(_cblas.gemm_range, units, min(units, PIECES_PER_THREAD * threads),
                     function, a2, trans_a, b2, trans_b, out, by_rows, UNIT)
    return out.reshape(shape)


def _outer(a, b):
    """Whether ``a @ b`` (a with K = 1) is an outer product of two float operands of one
    dtype, ``a * b`` with the same shape (batch dimensions broadcast alike) and the same
    numbers (one product per element; BLAS's 0 * C + a * b differs only in a zero's
    sign).  OpenBLAS is slow on it: (64, 1) @ (1, 3136) float32 took 210 us on one
    thread, the multiply 15 us (GAN D's last layer's input gradient, every step)."""
    return (a.ndim >= 2 and b.ndim >= 2 and b.shape[-2] == 1 and a.dtype == b.dtype
            and a.dtype.kind == "f")


def _operand(x):
    """(C-contiguous 2-D array, transposed?) with ``x`` the array or its transpose, or
    None when ``x`` is neither layout (BLAS would need a copy)."""
    if x.flags.c_contiguous:
        return x, False
    if x.flags.f_contiguous:
        return x.T, True
    return None


def _plan(a, b):
    """How to share out ``a @ b``: (GEMM address, a as a C-contiguous matrix, transposed?,
    the same for b, M, N, out's shape), or None for one call: too small, not a float
    product of one dtype with a 2-D ``b``, a layout BLAS cannot read without a copy,
    or no GEMM found (``_cblas``)."""
    if (b.ndim != 2 or a.ndim < 2 or a.dtype != b.dtype or a.dtype.kind != "f"
            or a.shape[-1] != b.shape[0]):
        return None
    shape = a.shape[:-1] + (b.shape[1],)
    if a.ndim > 2:
        if not a.flags.c_contiguous:
            return None
        a = a.reshape(-1, a.shape[-1])
    m, k = a.shape
    n = b.shape[1]
    if m * k * n < MIN_MULTIPLY_ADDS or m * k * n == 0:   # (BLAS rejects a leading dim 0)
        return None
    function = _cblas.address_for(a.dtype)
    if function is None:
        return None
    a_op, b_op = _operand(a), _operand(b)
    if a_op is None or b_op is None:
        return None
    return (function,) + a_op + b_op + (m, n, shape)
