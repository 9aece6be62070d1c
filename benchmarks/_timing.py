"""Wall-clock timing shared by the CPU benchmarks."""
import os
import statistics
import sys
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


def interleaved_ms(fns, repeat, warmup, block=5):
    """Per function: (median, min) milliseconds over ``repeat`` calls, the functions
    taking turns in blocks of ``block`` calls."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    while len(times[0]) < repeat:
        for fn, ts in zip(fns, times):
            for _ in range(min(block, repeat - len(ts))):
                start = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - start)
    return [(1e3 * statistics.median(ts), 1e3 * min(ts)) for ts in times]


def pin_threads(parser, is_main):
    """Set the BLAS, OpenMP and numba thread counts from the command line's --threads.

    They are read when those libraries load, so a benchmark calls this before it
    imports numpy (``pin_threads(_parser(), __name__ == "__main__")``): numba, BLAS and
    torch then all use the same number of threads.  An explicit environment setting
    wins; imported as a module (tests), the parser's default is used.
    """
    args = parser.parse_known_args(sys.argv[1:] if is_main else [])[0]
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
