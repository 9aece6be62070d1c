"""One framework's benchmark process (one row's, or one row's memory).

The parent sets the thread environment (OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS) before
it starts this process, so every thread pool is sized when its library loads; here
the counts are pinned once more at run time, then requests are served one at a
time from a pipe:

    ("setup", name, quick, state)  build the row's workload; returns its state
                                   (the tinygen worker's weights, for the torch one)
    ("check",)                     one step; returns its outputs (numpy arrays)
    ("time", n)                    n steps; returns each one's seconds
    ("memory",)                    one step; returns its peak memory (bytes)
    ("info",)                      versions and thread pools
    ("stop",)
"""
import ctypes
import gc
import os
import time
import traceback
import tracemalloc


def _pin_threads(framework, threads):
    if framework == "tinygen":
        import tinygen  # noqa: F401  (first, as a user would: it configures OpenBLAS's threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    else:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_rss_peak():
    """Reset the kernel's RSS high-water mark (VmHWM) to the current RSS; False where
    the kernel does not allow it (the RSS column is then left out)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _trim_heap():
    """Give the allocator's free pages back to the kernel (glibc's malloc_trim), so the
    RSS before a step is the live data and the step's own peak shows above it rather
    than hiding in pages kept from earlier steps."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _memory(step):
    """Peak memory of one step: (RSS high-water mark - RSS before, tracemalloc peak)."""
    gc.collect()
    _trim_heap()
    rss_ok = _reset_rss_peak()
    before = _status_kib("VmRSS")
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        step()
        traced = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    rss = (_status_kib("VmHWM") - before) * 1024 if rss_ok else None
    return {"rss_peak": rss, "traced_peak": traced}


def _info(framework):
    import numpy as np
    from threadpoolctl import threadpool_info

    info = {"numpy": np.__version__,
            "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
            "tinygen_malloc_tuning": os.environ.get("TINYGEN_MALLOC_TUNING"),
            "pools": [{k: p.get(k) for k in ("internal_api", "num_threads", "version",
                                             "architecture")}
                      for p in threadpool_info()]}
    if framework == "torch":
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                    torch_parallel=torch.__config__.parallel_info().splitlines()[:6])
    else:
        import numba

        import tinygen

        info.update(tinygen=tinygen.__version__, numba=numba.__version__,
                    numba_threads=numba.get_num_threads())
    return info


def serve(conn, framework, threads):
    """The worker's main loop (the target of the spawned process)."""
    _pin_threads(framework, threads)
    from .cases import CASES

    bench = None
    while True:
        request = conn.recv()
        kind = request[0]
        if kind == "stop":
            conn.send(("ok", None))
            return
        try:
            if kind == "setup":
                name, quick, state = request[1:]
                bench = None
                gc.collect()
                bench = CASES[name].build(framework, quick, state)
                reply = bench.state
            elif kind == "check":
                bench.step()
                reply = bench.outputs()
            elif kind == "time":
                times = []
                for _ in range(request[1]):
                    start = time.perf_counter()
                    bench.step()
                    times.append(time.perf_counter() - start)
                reply = times
            elif kind == "memory":
                reply = _memory(bench.step)
            elif kind == "info":
                reply = _info(framework)
            else:
                raise ValueError(f"unknown request {kind!r}")
            conn.send(("ok", reply))
        except Exception:  # reported to the parent, which marks the row and goes on
            conn.send(("error", f"[{framework}, pid {os.getpid()}] " + traceback.format_exc()))
