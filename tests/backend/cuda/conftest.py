"""Fixtures of the CUDA kernel tests: kernel sources built by the CPU emulator.

Without a C++ compiler the emulator cannot be built and the tests that need it skip."""
from pathlib import Path

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
