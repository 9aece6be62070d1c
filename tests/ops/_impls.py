"""Helpers for the op-family tests that compare kernel implementations (reference,
numba): batch_norm/, pooling/, spectral_norm/, conv/."""
import numba
import numpy as np
from hypothesis import strategies as st

import tinygen as tg
from tinygen.backend.kernels import use_impl


def impl(name):
    """Run the ops with the ``reference`` or ``numba`` kernels."""
    return use_impl(name)


def tensor(array, dtype, requires_grad=False):
    return tg.tensor(np.asarray(array, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def tie_free(rng, shape, spacing=0.05):
    """Values pairwise >= ``spacing`` apart (max pooling has kinks at ties)."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * spacing - n * spacing / 2).reshape(shape)


def tolerance(dtype):
    """Reference vs numba: float32 1e-5, float64 1e-10."""
    return dict(rtol=1e-5, atol=1e-5) if np.dtype(dtype) == np.float32 \
        else dict(rtol=1e-10, atol=1e-10)


def at_one_and_two_threads(compute):
    """``[compute() at 1 thread, compute() at 2]`` on the numba kernels (2: or as many as
    numba has), the thread count set back afterwards: for tests that a thread count
    changes no bit."""
    results = []
    previous = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            with impl("numba"):
                results.append(compute())
    finally:
        numba.set_num_threads(previous)
    return results


seeds = st.integers(0, 2 ** 32 - 1)
dtypes = st.sampled_from([np.float32, np.float64])
