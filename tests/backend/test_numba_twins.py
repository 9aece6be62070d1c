"""``serial_and_parallel``: one Python function, two cached numba dispatchers that keep
their own machine code (numba's cache does not key its entries by the jit options)."""
import os
import subprocess
import sys
import textwrap

MODULE = textwrap.dedent('''
    from numba import prange

    from tinygen.backend.numba_kernels import serial_and_parallel


    def total(x):
        s = 0.0
        for i in prange(x.shape[0]):
            s += x[i]
        return s


    total_serial, total_parallel = serial_and_parallel(total)
''')

# Which code ran shows in the rounding: in order, every 0.5 is lost against 1e16 and the
# sum is 0; split over two threads, the second thread's 0.5s add up before they meet
# -1e16 and survive.
RUN = textwrap.dedent('''
    import numpy as np
    import twins

    x = np.full(64, 0.5)
    x[0], x[-1] = 1e16, -1e16
    for kernel in (twins.total_serial, twins.total_parallel):
        print(kernel.__name__, kernel(x) != 0, sum(kernel.stats.cache_hits.values()))
''')


def _run(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMBA_NUM_THREADS="2",
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")[:2]


def test_twins_run_serial_and_parallel_and_each_loads_its_own_cache(tmp_path):
    (tmp_path / "twins.py").write_text(MODULE)
    compiled = _run(tmp_path)  # compiles both and writes the cache
    assert compiled == ["total_serial False 0", "total_parallel True 0"]
    loaded = _run(tmp_path)  # a new process: both from the cache, each its own code
    assert loaded == ["total_serial False 1", "total_parallel True 1"]
