"""Shared test configuration: hypothesis profiles and float64 by default in gradchecks.

Profiles: ``ci`` (default; few examples, no deadline because numba compiles on
first use), ``thorough`` (many examples, for a developer's long run):
    pytest --hypothesis-profile=thorough
"""
import os

# Two xdist workers share two cores: each must compute on one thread, or numba's
# parallel regions and OpenBLAS oversubscribe the cores and stall each other
# (10x slower steps were measured).  Set before numpy/numba load their pools.
# The same for the ranks of `mpiexec -n 2 python -m pytest tests/distributed`.
if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("OMPI_COMM_WORLD_SIZE"):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", max_examples=20, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", max_examples=300, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("TINYGEN_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
