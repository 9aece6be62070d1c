"""tinygen against PyTorch CPU, every row of issue 12 in one run, measured fairly.

    python -m benchmarks.cpu_suite [--threads 1 2] [--quick] [--repeat N] [--only NAME ...]
    python -m benchmarks.cpu_suite --grid [...]     # layer shapes beyond the rows

Each framework runs in its own worker process (``worker.py``), so that PyTorch's
OpenMP runtime never shares a process with numba's and OpenBLAS's thread pools; the
two workers are started afresh for every row, so that no row runs in a process that
earlier rows have left behind.  Each worker pins its threads (environment before any
import, then threadpoolctl, ``numba.set_num_threads`` / ``torch.set_num_threads``).
For every row (``cases.py``, ``models.py``, ``torch_twins.py``) the tinygen worker
builds the workload from fixed seeds and hands its weights to the torch worker; both
take one step and their outputs (loss, gradients) must agree before anything is timed.
Then the two workers take steps in alternating blocks (interleaved, so load from
other processes falls on both alike) and the table reports medians and their ratio
ours / torch (``--repeat N``: N such passes, the medians over them and the spread).
A second pair of workers, whose malloc maps every large block afresh
(``__main__.FRESH_PAGES``), measures each step's peak memory: the RSS high-water
mark over the resident size before the step, for both, and tracemalloc's peak for
ours.  Results go to ``benchmarks/results/cpu-2core.md`` and ``.json``.

``--grid`` runs instead a grid of layer shapes the models do not have (convs: narrowing,
widening, depthwise, grouped, dilated, wide-kernel, strided, transposed, 1-D; pools with
overlapping windows), with the same workers and checks, and only prints it: where a
path rule calibrated on the models' layers may send a layer the slow way.
"""
