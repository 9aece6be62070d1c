"""benchmarks.cpu_suite's own logic, without torch: the table's misses (time and memory),
the medians of repeated passes, and the environment a memory worker gets."""
import pytest


def test_table_flags_time_and_memory_misses():
    from benchmarks.cpu_suite.__main__ import _table, memory_ratio

    row = {"name": "w", "ours_ms": 1.0, "torch_ms": 1.0, "ratio": 1.0, "goal": 1.0,
           "ours_rss": 3 << 20, "ours_traced": 5 << 20, "torch_rss": 4 << 20, "steps": 5,
           "check": "same outputs"}
    # RSS against RSS (tracemalloc sees only numpy's buffers, so it is not compared)
    assert memory_ratio(row) == 0.75
    assert "miss" not in _table([row], 1)
    over = dict(row, ours_rss=5 << 20)
    assert memory_ratio(over) == 1.25
    assert "| 1.25 **miss** |" in _table([over], 1)
    slower = dict(row, ratio=1.1, ours_ms=1.1)
    assert "| 1.10 **miss** |" in _table([slower], 1)
    unmeasured = {k: v for k, v in row.items() if k not in ("ours_rss", "ours_traced", "torch_rss")}
    assert memory_ratio(unmeasured) is None
    assert "| - / - | - | - |" in _table([unmeasured], 2)


def test_worker_environment_reaches_the_child_and_is_undone_here(monkeypatch):
    import os

    pytest.importorskip("threadpoolctl")    # (the worker pins its threads with it)
    from benchmarks.cpu_suite.__main__ import FRESH_PAGES, Worker

    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("TINYGEN_MALLOC_TUNING", raising=False)
    worker = Worker("tinygen", 1, FRESH_PAGES)
    try:
        info = worker.ask("info")
        assert info["malloc_mmap_threshold"] == "65536"
        assert info["tinygen_malloc_tuning"] == "0"
    finally:
        worker.stop()
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ
    assert "TINYGEN_MALLOC_TUNING" not in os.environ


def test_repeats_combine_to_medians_and_keep_each_ratio():
    from benchmarks.cpu_suite.__main__ import _table, combine_repeats

    def row(ours, torch, steps=10):
        return {"name": "w", "ours_ms": ours, "torch_ms": torch, "ratio": ours / torch,
                "ours_best_ms": ours, "torch_best_ms": torch, "steps": steps, "goal": 1.0,
                "check": "same outputs"}

    passes = [[row(1.0, 1.0), row(2.0, 1.0)], [row(3.0, 2.0), row(1.0, 1.0)],
              [row(0.9, 1.0), row(3.0, 1.0)]]
    first, second = combine_repeats(passes)
    assert first["ratios"] == [1.0, 1.5, 0.9] and first["ratio"] == 1.0
    assert first["ours_ms"] == 1.0 and first["torch_ms"] == 1.0 and first["steps"] == 30
    assert second["ratio"] == 2.0
    assert "| 1.00 (0.90-1.50) |" in _table([first], 1)
    assert "| 2.00 **miss** (1.00-3.00) |" in _table([second], 1)
    # a row that failed (or disagreed) in any pass is reported as that pass's row
    bad = dict(row(1.0, 1.0), check="dx: 3 of 4 differ")
    assert combine_repeats([[row(1.0, 1.0)], [bad]]) == [bad]


def test_a_miss_is_judged_to_the_precision_shown():
    from benchmarks.cpu_suite.__main__ import _table

    row = {"name": "w", "ours_ms": 1.004, "torch_ms": 1.0, "ratio": 1.004, "goal": 1.0,
           "ours_rss": 1004, "ours_traced": 0, "torch_rss": 1000, "steps": 5,
           "check": "same outputs"}
    assert "miss" not in _table([row], 1)
    assert _table([dict(row, ratio=1.006, ours_rss=1006)], 1).count("**miss**") == 2
