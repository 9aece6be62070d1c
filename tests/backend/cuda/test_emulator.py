"""The CPU emulator of CUDA kernels: barriers, shared memory, numbering, atomics, errors.

Test-only kernels: tests/backend/cuda/kernels/emulator_selftest.cu."""
import numpy as np
import pytest

from tinygen.backend.cuda_kernels import emulator
from tinygen.backend.cuda_kernels.launch import launch
from tinygen.backend.cuda_kernels.source import KernelSources, kernel_dir


@pytest.mark.parametrize("block", [(256,), (7, 5, 3), (1024,), (1,)])
def test_block_sum_through_shared_memory_and_barriers(selftest, rng, block):
    threads = int(np.prod(block))
    count = 3 * threads - 5 if threads > 5 else 2 * threads  # a ragged last block
    blocks = -(-count // threads)
    x = rng.standard_normal(count)
    sums = np.full(blocks, np.nan)
    launch("selftest_block_sum_f64", blocks, block, (x, sums, count), sources=selftest)
    padded = np.zeros(blocks * threads)
    padded[:count] = x
    np.testing.assert_allclose(sums, padded.reshape(blocks, threads).sum(axis=1), rtol=1e-12)


@pytest.fixture
def thread_order(selftest):
    lib = emulator.library(selftest)
    yield lib.set_reverse_order
    lib.set_reverse_order(False)


@pytest.mark.parametrize("reverse", [False, True])
def test_barrier_orders_shared_memory_whatever_the_thread_order(selftest, thread_order, rng,
                                                                reverse):
    thread_order(reverse)
    x = rng.standard_normal(3 * 64)
    y = np.empty_like(x)
    launch("selftest_reverse_f64", 3, 64, (x, y), sources=selftest)
    np.testing.assert_array_equal(y, x.reshape(3, 64)[:, ::-1].ravel())


def test_a_missing_barrier_shows_up_as_order_dependent_results(selftest, thread_order, rng):
    for reverse in (False, True):
        thread_order(reverse)
        x = rng.standard_normal(64)  # new values: stale shared memory must not match
        y = np.empty_like(x)
        # (the checked emulator reports the race, test_emulator_check.py; the outputs
        # are written back all the same)
        with pytest.raises(emulator.EmulatorCheckError, match="race"):
            launch("selftest_racy_reverse_f64", 1, 64, (x, y), sources=selftest)
        # Forward order, threads 0..31 read slots 63..32 before they are written and
        # the other half is right; in reverse order the other way round.
        wrong, right = (slice(0, 32), slice(32, 64)) if not reverse else (slice(32, 64),
                                                                           slice(0, 32))
        assert not np.any(y[wrong] == x[::-1][wrong])
        np.testing.assert_array_equal(y[right], x[::-1][right])


def test_returned_threads_count_as_arrived_at_barriers(selftest, rng):
    x = rng.standard_normal(128)
    total = np.zeros(1)
    launch("selftest_early_return_f64", 1, 128, (x, total, 37), sources=selftest)
    assert total[0] == pytest.approx(x[:37].sum(), rel=1e-12)


def test_divergent_barrier_is_an_error_naming_both_places(selftest):
    y = np.zeros(8)
    with pytest.raises(emulator.EmulatorError) as info:
        launch("selftest_divergent_barrier_f64", 1, 8, (y,), sources=selftest)
    message = str(info.value)
    assert "selftest_divergent_barrier_f64: divergent __syncthreads() in block (0, 0, 0)" in message
    assert message.count("emulator_selftest.cu:") == 2
    # the emulator is usable again after a failed launch
    x, out = np.arange(64.0), np.empty(64)
    launch("selftest_reverse_f64", 1, 64, (x, out), sources=selftest)
    np.testing.assert_array_equal(out, x[::-1])


def test_thread_and_block_coordinates(selftest):
    grid, block = (2, 3, 2), (4, 2, 3)
    out = np.full((2 * 3 * 2 * 4 * 2 * 3, 12), -1, dtype=np.int32)
    launch("selftest_coordinates", grid, block, (out,), sources=selftest)
    rows = iter(out)
    for bz in range(2):
        for by in range(3):
            for bx in range(2):
                for tz in range(3):
                    for ty in range(2):
                        for tx in range(4):
                            assert list(next(rows)) == [tx, ty, tz, bx, by, bz, *block, *grid]


def test_atomic_adds(selftest, rng):
    n = 1000
    x = rng.standard_normal(n)
    total_d, total_f, count = np.zeros(1), np.zeros(1, np.float32), np.zeros(1, np.int32)
    launch("selftest_atomics", 3, 128, (x, total_d, total_f, count, n), sources=selftest)
    assert count[0] == n
    assert total_d[0] == pytest.approx(x.sum(), rel=1e-12)
    assert total_f[0] == pytest.approx(x.sum(), rel=1e-4, abs=1e-4)


def test_scalar_parameters_and_min_max(selftest):
    out = np.zeros(8)
    launch("selftest_scalars", 1, 1, (out, -3, 2**40 + 1, 0.5, 1e300), sources=selftest)
    assert list(out) == [-3, 2**40 + 1, 0.5, 1e300, -7, 0.5, np.inf, -np.inf]


def test_the_emulator_itself_refuses_an_oversized_block(selftest):
    # launch() refuses it first; the library checks too, for any other caller.
    lib = emulator.library(selftest)
    signature = selftest.signature("selftest_reverse_f64")
    x = np.zeros(2048)
    with pytest.raises(emulator.EmulatorError, match=r"block \(2048, 1, 1\) has 2048 threads"):
        lib.run(signature, (1, 1, 1), (2048, 1, 1), [x, x])


def test_library_is_built_once_and_cached_on_disk(selftest):
    lib = emulator.library(selftest)
    assert emulator.library(selftest) is lib
    assert lib.path.parent == emulator.cache_dir() and lib.path.is_file()


def test_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYGEN_CACHE", str(tmp_path))
    assert emulator.cache_dir() == tmp_path / "emulator"
    monkeypatch.delenv("TINYGEN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert emulator.cache_dir() == tmp_path / "xdg" / "tinygen" / "emulator"


def test_kernels_that_do_not_compile_give_the_compiler_message(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGEN_CACHE", str(tmp_path))
    broken = tmp_path / "broken.cu"
    broken.write_text('#include "common.cuh"\n'
                      'extern "C" __global__ void broken_f64(double* y) { y[0] = undeclared; }\n')
    try:
        emulator.compiler()
    except emulator.EmulatorUnavailable as exc:
        pytest.skip(str(exc))
    with pytest.raises(emulator.EmulatorBuildError, match=r"(?s)broken\.cu.*undeclared"):
        emulator.library(KernelSources(kernel_dir(), files=[broken]))


def test_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(emulator, "CXX", "tinygen-no-such-compiler")
    with pytest.raises(emulator.EmulatorUnavailable, match="tinygen-no-such-compiler.*not on PATH"):
        emulator.compiler()


def test_launch_each_checks_once_and_launches_per_value_in_order(selftest, monkeypatch):
    from tinygen.backend.cuda_kernels.launch import launch_each

    seen = []
    run = emulator.EmulatorLibrary.run

    def spy(self, signature, grid, block, values):
        seen.append(int(values[1]))
        return run(self, signature, grid, block, values)

    monkeypatch.setattr(emulator.EmulatorLibrary, "run", spy)
    out = np.full(8, np.nan)
    launch_each("selftest_scalars", 1, 1, (out, 0, 1, 0.5, 2.0), "i", (5, -3, 9),
                sources=selftest)
    assert seen == [5, -3, 9] and out[0] == 9 and out[4] == -7
    seen.clear()
    with pytest.raises(OverflowError, match=r"argument 1 'i' \(int i\): 4294967296 does not fit"):
        launch_each("selftest_scalars", 1, 1, (out, 0, 1, 0.5, 2.0), "i", (1, 2**32),
                    sources=selftest)
    assert seen == []  # every value is checked before the first launch
    for vary, what in (("out", "an array"), ("j", "not a parameter")):
        with pytest.raises(ValueError, match=f"varies a scalar parameter; '{vary}' is {what}"):
            launch_each("selftest_scalars", 1, 1, (out, 0, 1, 0.5, 2.0), vary, (1,),
                        sources=selftest)
