"""Fixtures of the CUDA kernel tests: kernel sources built by the CPU emulator.

Without a C++ compiler the emulator cannot be built and the tests that need it skip."""
from pathlib import Path

import numpy as np
import pytest

from tinygen.backend.cuda_kernels import emulator
from tinygen.backend.cuda_kernels.source import KernelSources, default_sources, kernel_dir

TEST_KERNELS = Path(__file__).resolve().parent / "kernels"


def _built(sources):
    try:
        emulator.library(sources)
    except emulator.EmulatorUnavailable as exc:
        pytest.skip(str(exc))
    return sources


@pytest.fixture(scope="session")
def emulated():
    """The package's kernels, built by the emulator (launch() uses them by default)."""
    return _built(default_sources())


@pytest.fixture(scope="session")
def selftest():
    """Only the emulator's test kernels (tests/backend/cuda/kernels/emulator_selftest.cu)."""
    return _built(KernelSources(kernel_dir(), files=[TEST_KERNELS / "emulator_selftest.cu"]))


@pytest.fixture(scope="session")
def planted():
    """The checker's planted-bug kernels (tests/backend/cuda/kernels/checker_selftest.cu)."""
    return _built(KernelSources(kernel_dir(), files=[TEST_KERNELS / "checker_selftest.cu"]))


def _odd_weights(rng, dtype=np.float64, k=3):
    """Random StepWeights of odd sizes: R 5, S 7, Q 11, 3 layers of dilations 1, 3, 2."""
    from tinygen.backend.reference.wavenet import StepWeights

    L, R, S, Q = 3, 5, 7, 11

    def w(*shape):
        return (rng.standard_normal(shape) * 0.6).astype(dtype)

    return StepWeights(
        embed=w(Q, R), embed_b=w(R), conv_w=w(L, k, 2 * R, R), conv_b=w(L, 2 * R),
        res_w=w(L, R, R), res_b=w(L, R), skip_w=w(L, S, R), skip_b=w(L, S), out1_w=w(S, S),
        out1_b=w(S), out2_w=w(Q, S), out2_b=w(Q), dilations=np.array([1, 3, 2]))


@pytest.fixture
def odd_weights():
    """The WaveNet step's weights of odd sizes: odd_weights(rng, dtype=float64, k=3)."""
    return _odd_weights
