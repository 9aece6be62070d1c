"""A batch cut into chunks of whole images, the chunks shared out among threads.

Why threads over chunks, not threads inside each kernel: a conv step is a sequence of
small pieces (an unfold, a few GEMMs, adds and copies, per chunk).  Threading each
piece (numba's prange, OpenBLAS's own pool) puts a thread barrier after every one,
and numpy's adds and copies run on one thread anyway; on two cores that scaled 1.3x
at best, and on a busy machine each barrier could wait a whole scheduler slice for
the thread that was not running (2 threads ran slower than 1).  Here each thread
takes the next chunk as soon as it is done with its last, runs every piece of it
itself (BLAS on one thread: numpy's GEMMs release the GIL, our kernels are ``nogil``),
and the only barrier is the end of the batch; a thread that is descheduled simply
takes fewer chunks.

The thread count is numba's (``numba.set_num_threads``, ``NUMBA_NUM_THREADS``), the
one number tinygen's CPU kernels use.  While the chunks run, OpenBLAS is held at one
thread (through threadpoolctl, when it is installed), and set back afterwards.
"""
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

_lock = threading.Lock()
_pool = None            # (pid, executor): a forked child must not reuse its parent's
_blas = None            # threadpoolctl's BLAS controllers, looked up once


def chunk_ranges(n_img, bytes_per_image, budget, threads=None):
    """[(start, stop)] image ranges of about ``budget`` bytes each (at least one image),
    and at least as many chunks as threads when the batch allows."""
    threads = numba.get_num_threads() if threads is None else threads
    per = max(1, budget // max(1, bytes_per_image))
    per = max(1, min(per, -(-n_img // max(1, threads))))
    return [(start, min(n_img, start + per)) for start in range(0, n_img, per)]


def _executor(workers):
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1]._max_workers < workers:
            if _pool is not None and _pool[0] == os.getpid():
                _pool[1].shutdown(wait=False)
            _pool = (os.getpid(), ThreadPoolExecutor(workers, "tinygen-chunks"))
        return _pool[1]


def _blas_controllers():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # BLAS then keeps its own thread count (correct, slower)
            _blas = []
        else:
            _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas


class _BlasOnOneThread:
    """Holds BLAS at one thread while any ``map_chunks`` runs: the first to enter saves
    the counts and the last to leave puts them back (two Python threads may each run
    a conv at once)."""
    depth = 0
    saved = []

    def __enter__(self):
        with _lock:
            cls = _BlasOnOneThread
            if cls.depth == 0:
                cls.saved = [(c, c.get_num_threads()) for c in _blas_controllers()]
                for c, _ in cls.saved:
                    c.set_num_threads(1)
            cls.depth += 1

    def __exit__(self, *exc):
        with _lock:
            cls = _BlasOnOneThread
            cls.depth -= 1
            if cls.depth == 0:
                for c, n in cls.saved:
                    c.set_num_threads(n)


def map_chunks(work, chunks):
    """[work(slot, start, stop) for (start, stop) in chunks], run on up to numba's thread
    count of threads; ``slot`` (0 .. threads-1) names the thread, for its own buffers."""
    threads = min(numba.get_num_threads(), len(chunks))
    if threads <= 1:
        return [work(0, start, stop) for start, stop in chunks]
    results = [None] * len(chunks)
    order = itertools.count()  # next() on it is atomic under the GIL

    def run(slot):
        for index in iter(lambda: next(order), None):
            if index >= len(chunks):
                return
            results[index] = work(slot, *chunks[index])

    with _BlasOnOneThread():
        futures = [_executor(threads - 1).submit(run, slot) for slot in range(1, threads)]
        try:
            run(0)
        finally:
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
    return results
