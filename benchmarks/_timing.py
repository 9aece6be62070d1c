"""Wall-clock timing shared by the CPU benchmarks."""
import statistics
import time


def time_ms(fn, repeat, warmup=3, statistic="median"):
    """Run ``fn`` ``warmup`` times, then time ``repeat`` runs; milliseconds.

    ``statistic='median'`` is the usual summary; ``'min'`` (best of) is the
    stable one on a shared machine, where the median moves with whatever else
    runs.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    summary = min(times) if statistic == "min" else statistics.median(times)
    return 1e3 * summary
