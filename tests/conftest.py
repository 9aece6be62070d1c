"""Shared test configuration: hypothesis profiles and float64 by default in gradchecks.

Profiles: ``ci`` (default; few examples, no deadline because numba compiles on
first use), ``thorough`` (many examples, for a developer's long run):
    pytest --hypothesis-profile=thorough
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

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
