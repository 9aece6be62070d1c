"""numba-jitted CPU kernels (parallel, cached) for the hot paths; each is tested
against the matching reference implementation in ``tinygen.backend.reference``."""
import os

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
