"""Tests of tinygen.distributed, in two modes.

    mpiexec -n 2 --oversubscribe python -m pytest -q tests/distributed   # 2 ranks (CI)
    python -m pytest tests/distributed                                    # 1 rank

Under mpiexec the ``comm`` fixture is the MPI communicator of the job and every rank
runs the same tests in the same order (their collectives must match).  Without it
``comm`` is a one-process communicator: the same tests run as 1-rank variants (the
split is then trivial) and those that need a second rank skip, saying so.
"""
import os

import pytest

from tinygen.distributed import LocalCommunicator, mpi_available

UNDER_MPIEXEC = any(v in os.environ for v in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                              "PMIX_RANK"))
# A broken test must fail in minutes, not hang CI: every collective waits at most this.
os.environ.setdefault("TINYGEN_DIST_TIMEOUT", "120")

_comm = None


def world():
    global _comm
    if _comm is None:
        if UNDER_MPIEXEC:
            if not mpi_available():
                pytest.exit("tests/distributed run under mpiexec but mpi4py cannot load MPI",
                            returncode=3)
            from tinygen.distributed import MPICommunicator

            _comm = MPICommunicator()
        else:
            _comm = LocalCommunicator()
    return _comm


@pytest.fixture
def comm():
    return world()


@pytest.fixture
def comm2(comm):
    """The job's communicator, for tests that need a second rank."""
    if comm.size < 2:
        pytest.skip("needs a second rank: run under mpiexec -n 2 (CI does)")
    return comm


@pytest.fixture
def own_mpiexec():
    """For tests that launch mpiexec themselves: path of mpiexec, or skip."""
    import shutil

    if UNDER_MPIEXEC:
        pytest.skip("launches its own mpiexec; runs in the plain pytest run")
    path = shutil.which("mpiexec")
    if path is None or not mpi_available():
        pytest.skip("needs Open MPI (mpiexec) and mpi4py: apt-get install openmpi-bin "
                    "libopenmpi-dev; pip install mpi4py")
    return path
