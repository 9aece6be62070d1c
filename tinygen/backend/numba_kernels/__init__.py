"""numba-jitted CPU kernels (parallel, cached) for the hot paths; each is tested
against the matching reference implementation in ``tinygen.backend.reference``."""
import os
import types

# numba's OpenMP thread pool spins between parallel regions by default, and the
# spinning threads starve OpenBLAS's, which run the GEMMs between our kernels
# (a conv VAE step measured 148 ms spinning vs 89 ms passive on 2 cores).  The
# OpenMP runtime reads this when it starts, which is at numba's first parallel
# kernel; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402

# Below this many elements a kernel runs on the calling thread only: waking the
# thread pool costs more than it saves there (gradchecks, one-pixel-at-a-time
# sampling), and when the other cores are busy a parallel region can stall for a
# whole scheduler time slice waiting for a thread at its barrier.
PARALLEL_THRESHOLD = 1 << 15


def sized(kernel, size, *args):
    """``kernel(*args)``, on one thread when ``size`` (elements touched) is small."""
    if size >= PARALLEL_THRESHOLD:
        return kernel(*args)
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(previous)


def serial_and_parallel(py_func, **options):
    """The serial and the parallel dispatcher of one Python function (``njit`` with
    ``cache=True`` and ``parallel=False`` / ``True``): its ``prange`` loops run on the
    calling thread in the first and on numba's thread pool in the second.

    numba's on-disk cache names a function's entries by its qualified name and keys
    them by bytecode and signature, not by the jit options (numba issue #6845): two
    dispatchers of the very same function would load each other's machine code.  So
    each twin is jitted from its own copy of the function, named ``<name>_serial`` or
    ``<name>_parallel``."""
    twins = []
    for parallel, suffix in ((False, "serial"), (True, "parallel")):
        twin = types.FunctionType(py_func.__code__, py_func.__globals__,
                                  f"{py_func.__name__}_{suffix}", py_func.__defaults__,
                                  py_func.__closure__)
        twin.__qualname__ = f"{py_func.__qualname__}_{suffix}"
        twin.__doc__, twin.__module__ = py_func.__doc__, py_func.__module__
        twins.append(numba.njit(cache=True, parallel=parallel, **options)(twin))
    return tuple(twins)
