import contextlib

import pytest


@pytest.fixture
def another_job_posted():
    """A context manager under which another Python thread's compiled job seems posted
    (the pool's one job slot, ``_spin.BUSY``, taken): a shared-out call then runs its
    ranges alone."""
    from tinygen.backend.numba_kernels import _spin, chunks

    @contextlib.contextmanager
    def held():
        assert chunks._job[_spin.BUSY] == 0
        chunks._job[_spin.BUSY] = 1
        try:
            yield
        finally:
            chunks._job[_spin.BUSY] = 0

    return held
