"""The checked emulator (a CPU racecheck / memcheck / initcheck, kernels/emulation_check.h):
each planted bug of tests/backend/cuda/kernels/checker_selftest.cu is reported with its
source line, and its correct twin is not.  Every other kernel test runs checked too (the
default), so a finding in a real kernel fails that kernel's tests."""
import re
from pathlib import Path

import numpy as np
import pytest

from tinygen.backend.cuda_kernels import emulator
from tinygen.backend.cuda_kernels.launch import launch

SELFTEST = Path(__file__).resolve().parent / "kernels" / "checker_selftest.cu"


def _line(pattern):
    """The line number of the first line of checker_selftest.cu matching ``pattern``."""
    for number, line in enumerate(SELFTEST.read_text().splitlines(), 1):
        if re.search(pattern, line):
            return number
    raise AssertionError(pattern)


def _findings(planted, name, grid, block, args):
    """The checker's findings of one launch ([] when it passes)."""
    try:
        launch(name, grid, block, args, sources=planted)
    except emulator.EmulatorCheckError as error:
        assert error.findings and str(error).startswith(f"{name} (grid")
        return error.findings
    return []


def test_the_default_emulator_is_the_checked_one(planted):
    assert emulator.check_enabled()
    lib = emulator.library(planted)
    assert lib.checked
    # every __shared__ array of the file was found, each followed by its guard
    names = {name for name, *_ in lib.shared}
    assert {"planted_reverse_f64::tile", "planted_shared_overrun_f64::tile",
            "planted_partial_fill_f64::values", "planted_grid_sum_f64::scratch",
            "planted_last_block::last", "tg_is_last_block::last"} <= names
    assert all(guard_end > offset + size for _, offset, size, guard_end in lib.shared)


# --- missing barrier ---------------------------------------------------------------------------
def test_missing_barrier_is_a_race_with_both_lines(planted, rng):
    x = rng.standard_normal(64)
    y = np.empty(64)
    assert _findings(planted, "planted_reverse_f64", 1, 64, (x, y, 1)) == []
    np.testing.assert_array_equal(y, x[::-1])
    found = _findings(planted, "planted_reverse_f64", 1, 64, (x, y, 0))
    write, read = _line(r"tile\[threadIdx.x\] = x"), _line(r"y\[threadIdx.x\] = tile")
    races = [f for f in found if f.startswith("race:")]
    assert races, found
    assert any(f"checker_selftest.cu:{read}" in f and f"checker_selftest.cu:{write}" in f
               for f in races), races
    assert "__shared__ planted_reverse_f64::tile[" in races[0]
    assert "in the same barrier interval" in races[0]


# --- off by one ------------------------------------------------------------------------------
def test_reading_one_past_the_end_of_an_argument_is_out_of_bounds(planted, rng):
    x = rng.standard_normal(20)
    y = np.empty(20)
    assert _findings(planted, "planted_neighbour_sum_f64", 1, 32, (x, y, 20, 1)) == []
    found = _findings(planted, "planted_neighbour_sum_f64", 1, 32, (x, y, 20, 0))
    assert len(found) == 1, found
    assert found[0].startswith("out of bounds: thread (19, 0, 0) of block (0, 0, 0): read of "
                               "8 bytes 0 bytes past the end of argument x (20 elements)")
    line = _line(r"if \(i < n\) y\[i\]")
    assert f"checker_selftest.cu:{line}" in found[0]


def test_writing_past_a_shared_array_hits_its_guard(planted):
    y = np.empty(32)
    assert _findings(planted, "planted_shared_overrun_f64", 1, 33, (y, 1)) == []
    np.testing.assert_array_equal(y, np.arange(32.0))
    found = _findings(planted, "planted_shared_overrun_f64", 1, 33, (y, 0))
    assert len(found) == 1, found
    assert found[0].startswith("out of bounds: thread (32, 0, 0) of block (0, 0, 0): write of "
                               "8 bytes 0 bytes past the end of __shared__ "
                               "planted_shared_overrun_f64::tile (256 bytes)")
    line = _line(r"tile\[i\] = i;")
    assert f"checker_selftest.cu:{line}" in found[0]


# --- uninitialised shared memory --------------------------------------------------------------
def test_reading_shared_memory_no_thread_wrote_is_reported(planted, rng):
    x = rng.standard_normal(64)
    total = np.zeros(1)
    assert _findings(planted, "planted_partial_fill_f64", 1, 64, (x, total, 64, 1)) == []
    assert total[0] == pytest.approx(x.sum())
    found = _findings(planted, "planted_partial_fill_f64", 1, 64, (x, total, 60, 1))
    assert len(found) == 1, found
    assert found[0].startswith("uninitialised: thread (0, 0, 0) of block (0, 0, 0) reads "
                               "__shared__ planted_partial_fill_f64::values[60]")
    assert "(4 times)" in found[0]  # values[60..63]


def test_shared_memory_starts_uninitialised_in_every_block(planted, rng):
    # Block 1 sees block 0's values in the emulator's static array; on a GPU it would
    # see garbage: the checker resets the shadow state per block.
    x = rng.standard_normal(64)
    total = np.zeros(2)
    found = _findings(planted, "planted_partial_fill_f64", 2, 64, (x, total, 64, 1))
    assert len(found) == 1 and found[0].startswith(
        "uninitialised: thread (0, 0, 0) of block (1, 0, 0) reads __shared__ "
        "planted_partial_fill_f64::values[0]"), found
    assert total[1] == total[0]  # what the emulator computed: block 0's leftovers


# --- the fence discipline ---------------------------------------------------------------------
GRID_SUM_MODES = {
    0: None,  # tg_is_last_block
    1: "its thread did not __threadfence() between that access and its block's atomic ticket",
    2: "this block took a later ticket but did not __threadfence() after it",
    3: None,  # volatile loads after the ticket
    4: "that block took no atomic ticket after the access",
}


@pytest.mark.parametrize("mode", sorted(GRID_SUM_MODES))
def test_last_block_reduction_needs_both_fences(planted, rng, mode):
    blocks, threads = 5, 32
    x = rng.standard_normal(blocks * threads)
    partial, ticket, total = np.zeros(blocks), np.zeros(1, np.int32), np.zeros(1)
    found = _findings(planted, "planted_grid_sum_f64", blocks, threads,
                      (x, partial, ticket, total, mode))
    # the emulator runs blocks in order, so the sum is right whatever the mode: only the
    # checker tells the modes apart
    assert total[0] == pytest.approx(x.sum(), rel=1e-12)
    reason = GRID_SUM_MODES[mode]
    if reason is None:
        assert found == []
        assert ticket[0] == 0  # reset by the last block for the next launch
        return
    assert found, f"mode {mode} passed the checker"
    assert all(f.startswith("unfenced: thread (0, 0, 0) of block (4, 0, 0): read of argument "
                            "partial[") for f in found), found
    assert all(reason in f for f in found), found
    line = _line(r"partial\[blockIdx.x\] = mine")
    assert f"checker_selftest.cu:{line}" in found[0]


def test_the_old_tg_is_last_block_fails_the_checker(planted, rng):
    """Issue 13's finding, pinned: tg_is_last_block before the fix fenced before the
    ticket only (mode 2 above is that code); the fixed one passes (mode 0)."""
    x = rng.standard_normal(3 * 32)
    args = lambda mode: (x, np.zeros(3), np.zeros(1, np.int32), np.zeros(1), mode)  # noqa: E731
    assert _findings(planted, "planted_grid_sum_f64", 3, 32, args(0)) == []
    assert _findings(planted, "planted_grid_sum_f64", 3, 32, args(2))


def test_a_block_reading_what_another_block_wrote_is_unfenced(planted):
    x, y = np.arange(4.0), np.zeros(4)
    assert _findings(planted, "planted_neighbour_block_f64", 4, 32, (x, y, 0)) == []
    found = _findings(planted, "planted_neighbour_block_f64", 4, 32, (x, y, 1))
    assert found and found[0].startswith(
        "unfenced: thread (0, 0, 0) of block (1, 0, 0): read of argument x[0]")
    assert "thread (0, 0, 0) of block (0, 0, 0) wrote" in found[0]


def test_an_atomic_and_a_plain_read_of_one_word_race(planted):
    total, seen = np.zeros(1), np.zeros(1)
    assert _findings(planted, "planted_atomic_and_plain_f64", 1, 8, (total, seen, 1)) == []
    assert seen[0] == 8
    found = _findings(planted, "planted_atomic_and_plain_f64", 1, 8, (total, seen, 0))
    assert found and found[0].startswith("race: thread (1, 0, 0) of block (0, 0, 0): atomic on "
                                         "argument total[0]")


def test_outputs_are_still_written_back_when_the_checker_complains(planted, rng):
    x = rng.standard_normal(64)
    y = np.zeros(64)
    with pytest.raises(emulator.EmulatorCheckError):
        launch("planted_reverse_f64", 1, 64, (x, y, 0), sources=planted)
    assert np.count_nonzero(y) > 0


def test_checking_can_be_switched_off(planted, rng):
    x = rng.standard_normal(64)
    y = np.empty(64)
    with emulator.checking(False):
        assert not emulator.check_enabled()
        launch("planted_reverse_f64", 1, 64, (x, y, 0), sources=planted)  # no error
        assert not emulator.library(planted).checked
    assert emulator.check_enabled()


def test_launch_bounds_are_parsed_and_enforced_on_every_path(planted):
    assert planted.signature("planted_bounded_f64").max_threads == 64
    assert planted.signature("planted_reverse_f64").max_threads is None
    y = np.zeros(128)
    launch("planted_bounded_f64", 1, 64, (y,), sources=planted)
    with pytest.raises(ValueError, match=r"block \(128, 1, 1\) has 128 threads but the kernel "
                                         r"is compiled for at most 64 \(__launch_bounds__\(64\)\)"):
        launch("planted_bounded_f64", 1, 128, (y,), sources=planted)
    lib = emulator.library(planted)  # the library checks too, for any other caller
    with pytest.raises(emulator.EmulatorError, match="at most 64"):
        lib.run(planted.signature("planted_bounded_f64"), (1, 1, 1), (2, 64, 1), [y])


def test_trap_fails_the_launch_with_thread_block_and_line(planted):
    y = np.zeros(16)
    launch("planted_trap_f64", 2, 8, (y, -1), sources=planted)
    line = _line(r"__trap\(\);")
    with pytest.raises(emulator.EmulatorError,
                       match=rf"__trap\(\) in thread \(3, 0, 0\) of block \(0, 0, 0\) at "
                             rf".*checker_selftest.cu:{line}"):
        launch("planted_trap_f64", 2, 8, (y, 3), sources=planted)
    launch("planted_trap_f64", 2, 8, (y, -1), sources=planted)  # usable again
