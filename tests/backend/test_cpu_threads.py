"""tinygen's one CPU thread pool (numba_kernels/chunks.py, issue 12): no numba kernel
uses numba's own thread pool, two Python threads may run parallel kernels at once,
and a caller never waits for a helper thread that has not started its work."""
import contextlib
import importlib
import os
import pkgutil
import subprocess
import sys
import textwrap
import threading

import numba
import pytest

from tinygen.backend import numba_kernels
from tinygen.backend.numba_kernels import chunks


def test_no_numba_kernel_is_parallel():
    """numba's parallel=True kernels would start numba's thread pool beside ours (the
    pools took turns on the cores: 2 threads ran slower than 1) and, with its
    workqueue layer, abort the process when two Python threads launch at once."""
    jitted = []
    for info in pkgutil.iter_modules(numba_kernels.__path__):
        module = importlib.import_module(f"{numba_kernels.__name__}.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, numba.core.registry.CPUDispatcher) \
                    and value.py_func.__module__ == module.__name__:
                jitted.append(f"{info.name}.{name}")
                assert not value.targetoptions.get("parallel"), f"{info.name}.{name}"
    assert len(jitted) > 20  # (the search found the kernels)


@contextlib.contextmanager
def _helper_stuck_elsewhere():
    """The only helper thread held inside another call's chunk until the block ends."""
    helper_inside, release = threading.Event(), threading.Event()

    def stuck(slot, start, stop):
        if slot != 0:
            helper_inside.set()
            assert release.wait(timeout=60)
        else:
            helper_inside.wait(timeout=60)

    first = threading.Thread(target=chunks.map_chunks, args=(stuck, [(0, 1), (1, 2), (2, 3)]))
    first.start()
    try:
        assert helper_inside.wait(timeout=60)
        yield
    finally:
        release.set()
        first.join(timeout=60)


def test_a_helper_that_has_not_started_is_not_waited_for(monkeypatch):
    """The only helper thread is stuck in another call's chunk: a second call runs all
    of its chunks on the calling thread and returns, without waiting for it."""
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    with _helper_stuck_elsewhere():
        results = []
        quick = [(i, i + 1) for i in range(8)]
        second = threading.Thread(target=lambda: results.append(
            chunks.map_chunks(lambda slot, start, stop: (slot, start), quick)))
        second.start()
        second.join(timeout=20)
        assert not second.is_alive(), "the call waited for a helper that was busy elsewhere"
        assert results == [[(0, i) for i in range(8)]]


def test_parallel_range_covers_the_range_once(monkeypatch):
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    seen = []
    chunks.parallel_range(lambda lo, hi: seen.append((lo, hi)), 1000, chunks.PARALLEL_THRESHOLD * 4)
    assert len(seen) > 1
    covered = sorted(i for lo, hi in seen for i in range(lo, hi))
    assert covered == list(range(1000))
    seen.clear()
    chunks.parallel_range(lambda lo, hi: seen.append((lo, hi)), 1000, chunks.PARALLEL_THRESHOLD - 1)
    assert seen == [(0, 1000)]  # small: one call, on this thread


# Two Python threads each run a training-like step (conv, batch norm, leaky relu, pooling,
# a large matmul, gated activation, Adam) at the same time, many times, on two threads;
# every result must equal the same step run alone on one thread.
CONCURRENT = textwrap.dedent('''
    import sys, threading
    import numpy as np, numba
    import tinygen as tg
    import tinygen.nn.functional as F

    def step(seed):
        rng = np.random.default_rng(seed)
        x = tg.tensor(rng.standard_normal((16, 8, 24, 24)).astype(np.float32), requires_grad=True)
        w = tg.tensor(rng.standard_normal((16, 8, 3, 3)).astype(np.float32) * 0.2,
                      requires_grad=True)
        gamma = tg.tensor(np.ones(16, np.float32), requires_grad=True)
        beta = tg.tensor(np.zeros(16, np.float32), requires_grad=True)
        m = tg.tensor(rng.standard_normal((512, 256)).astype(np.float32) * 0.05, requires_grad=True)
        h = F.conv2d(x, w, padding=1)
        h = F.batch_norm(h, None, None, gamma, beta, training=True)
        h = F.leaky_relu(h, 0.2)
        h = F.max_pool2d(h, 2)                                   # (16, 16, 12, 12)
        h = h.reshape(16 * 9, 256) @ m.T                        # (144, 512)
        h = F.gated_activation(h)                                # (144, 256)
        loss = (h * h).sum()
        loss.backward()
        opt = tg.optim.Adam([m], lr=1e-3)
        opt.step()
        return [a.numpy().copy() for a in (loss, x.grad, w.grad, gamma.grad, m.grad, m)]

    def many_small(seed):  # short kernels back to back: launches from both threads overlap
        x = tg.tensor(np.random.default_rng(seed).standard_normal(1 << 18).astype(np.float32))
        for _ in range(50 * ROUNDS):
            y = F.leaky_relu(x, 0.2)
        return y.numpy()

    numba.set_num_threads(1)
    expected = {seed: step(seed) + [many_small(seed)] for seed in (1, 2)}
    failures = []

    def worker(seed):
        numba.set_num_threads(2)  # per Python thread
        for _ in range(ROUNDS):
            for a, b in zip(step(seed) + [many_small(seed)], expected[seed]):
                if not np.allclose(a, b, rtol=1e-4, atol=1e-5):
                    failures.append(seed)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("failures", failures)
    sys.exit(1 if failures else 0)
''')


def run_concurrent_steps(rounds=6, env=None, cwd=None):
    """The two-thread script in a subprocess (an abort fails the test, not pytest);
    (returncode, output)."""
    env = dict(os.environ if env is None else env, NUMBA_NUM_THREADS="2",
               OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", f"ROUNDS = {rounds}\n" + CONCURRENT],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


def test_two_python_threads_run_parallel_kernels_at_once():
    code, output = run_concurrent_steps()
    assert code == 0, output
    assert "failures []" in output


# --- polling instead of sleeping (_spin.py) -------------------------------------------------
def test_a_poll_sees_a_flag_another_thread_sets():
    """The poll reads the flag from memory on every iteration (a read the compiler
    hoisted out of the loop would poll a stale value until the budget runs out)."""
    import time

    import numpy as np

    from tinygen.backend.numba_kernels import _spin

    flags = np.zeros(2, dtype=np.int64)
    budget = 30_000_000 * _spin.polls_per_microsecond()        # about 30 s
    setter = threading.Timer(0.05, lambda: flags.__setitem__(1, 7))
    start = time.perf_counter()
    setter.start()
    assert _spin.wait_while_equal(flags, 1, 0, budget) == 7
    assert time.perf_counter() - start < 10
    setter.join()


def test_a_poll_gives_up_after_its_budget():
    import numpy as np

    from tinygen.backend.numba_kernels import _spin

    flags = np.array([3, 5], dtype=np.int64)
    assert _spin.wait_while_equal(flags, 1, 5, 1000) == 5
    assert _spin.wait_while_equal(flags, 0, 5, 1000) == 3     # differs already


def test_a_helper_publishes_done_and_waits_for_the_next_job():
    """publish_and_wait sets done[slot] (not for slot -1), then returns when a job is
    posted (flags[0] moves) and its caller has started (flags[1]), or after its polls."""
    import numpy as np

    from tinygen.backend.numba_kernels import _spin

    done = np.zeros(3, dtype=np.int64)
    flags = np.array([4, 4, 10], dtype=np.int64)
    job = np.zeros(_spin.JOB_WORDS, dtype=np.int64)     # (no compiled job posted)
    assert _spin.publish_and_wait(done, 2, flags, 4, 1000, job) == 4     # no job: gives up
    assert done.tolist() == [0, 0, 1]
    assert _spin.publish_and_wait(done, -1, flags, 4, 1000, job) == 4
    assert done.tolist() == [0, 0, 1]
    flags[:2] = 5
    assert _spin.publish_and_wait(done, 1, flags, 4, 10**9, job) == 5    # a job came
    assert done.tolist() == [0, 1, 1]


@pytest.mark.parametrize("helper_seconds", [0.0, 0.003])
def test_the_caller_waits_for_every_chunk_a_helper_took(monkeypatch, helper_seconds):
    """Every chunk runs once and has finished when map_chunks returns, whether the
    helper's chunk ends within the caller's polls or long after (then it sleeps)."""
    import time

    import numpy as np

    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    out = np.zeros(64, dtype=np.int64)
    slots = set()

    def work(slot, start, stop):
        slots.add(slot)
        time.sleep(helper_seconds if slot else 0.002)   # (the caller's chunks let a helper in)
        out[start:stop] += 1
        return (start, stop)

    for _ in range(40):
        out[:] = 0
        ranges = [(i, i + 16) for i in range(0, 64, 16)]
        assert chunks.map_chunks(work, ranges, blas=False) == ranges
        assert out.tolist() == [1] * 64
    assert 1 in slots   # (a helper took part)


# --- BLAS held at one thread (chunks._BlasOnOneThread) --------------------------------------------
def test_blas_hold_sets_only_a_count_that_is_not_one_and_puts_it_back(monkeypatch):
    """A library at one thread already is only read (a set call per GEMM was most of
    the hold's cost); one at another count is at one thread inside the hold and at
    its count again afterwards, nested holds included."""
    import numpy as np

    from tinygen.backend.numba_kernels import linalg

    counts = {"a": 1, "b": 3}
    sets = []

    def library(name):
        def put(n):
            sets.append((name, n))
            counts[name] = n
        return (lambda: counts[name]), put

    monkeypatch.setattr(chunks, "_blas", [library("a"), library("b")])
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    with chunks.blas_on_one_thread():
        assert counts == {"a": 1, "b": 1}
        with chunks.blas_on_one_thread():
            assert counts == {"a": 1, "b": 1}
        assert counts == {"a": 1, "b": 1}        # (the outer holder still runs)
    assert counts == {"a": 1, "b": 3}
    assert sets == [("b", 1), ("b", 3)]            # "a", at one thread, never set
    sets.clear()
    counts["b"] = 1                                 # e.g. threadpool_limits(1) by the user
    a = np.ones((8, 4), np.float32)
    np.testing.assert_array_equal(linalg.matmul(a, a.T), a @ a.T)
    assert chunks.map_chunks(lambda slot, start, stop: dict(counts), [(0, 1)]) == [counts]
    assert sets == [] and counts == {"a": 1, "b": 1}
    counts["b"] = 2                                 # and back to two threads by the user
    assert chunks.map_chunks(lambda slot, start, stop: dict(counts), [(0, 1)]) == \
        [{"a": 1, "b": 1}]
    assert counts == {"a": 1, "b": 2} and sets == [("b", 1), ("b", 2)]


def test_a_single_gemm_is_held_only_when_blas_is_not_at_one_thread(monkeypatch):
    """linalg.matmul's one BLAS call skips the hold (blas_at_one_thread) only when every
    library is at one thread and no hold runs; otherwise it holds as before."""
    import numpy as np

    from tinygen.backend.numba_kernels import linalg

    counts = {"a": 1, "b": 1}
    sets = []

    def library(name):
        def put(n):
            sets.append((name, n))
            counts[name] = n
        return (lambda: counts[name]), put

    monkeypatch.setattr(chunks, "_blas", [library("a"), library("b")])
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    seen = []
    monkeypatch.setattr(linalg.np, "matmul", lambda a, b: seen.append(dict(counts)) or a @ b)
    a = np.ones((8, 4), np.float32)
    assert chunks.blas_at_one_thread()
    with chunks.blas_on_one_thread():
        assert not chunks.blas_at_one_thread()     # (a holder may put a count back)
    linalg.matmul(a, a.T)
    assert sets == [] and seen == [{"a": 1, "b": 1}]
    counts["b"] = 3
    assert not chunks.blas_at_one_thread()
    linalg.matmul(a, a.T)
    assert seen[-1] == {"a": 1, "b": 1}              # held at one thread for the call
    assert sets == [("b", 1), ("b", 3)] and counts == {"a": 1, "b": 3}


def test_share_images_holds_blas_only_when_it_is_not_at_one_thread(monkeypatch):
    """share_images skips the hold when every library is at one thread and no hold
    runs (blas_at_one_thread); otherwise its pieces run with BLAS held at one thread."""
    import numpy as np

    counts = {"a": 1, "b": 1}
    sets = []

    def library(name):
        def put(n):
            sets.append((name, n))
            counts[name] = n
        return (lambda: counts[name]), put

    monkeypatch.setattr(chunks, "_blas", [library("a"), library("b")])
    seen = []

    def kernel(out, per, lo, hi):
        seen.append(dict(counts))
        out[lo:hi] = per

    out = np.zeros(5)
    assert chunks.share_images(kernel, 5, 1, out) == 1
    assert sets == [] and seen == [{"a": 1, "b": 1}] and out.tolist() == [5.0] * 5
    counts["b"] = 3
    assert chunks.share_images(kernel, 5, 1, out) == 1
    assert seen[-1] == {"a": 1, "b": 1}              # held at one thread for the pieces
    assert sets == [("b", 1), ("b", 3)] and counts == {"a": 1, "b": 3}


# --- compiled jobs: share_rows / share_range ---------------------------------------------------
@numba.njit(nogil=True)
def _scaled_rows(x, scale, offset, flag, out):
    """out = x * scale + offset (+ 1 where flag), rows of any rank; marks nothing else."""
    for i in range(x.shape[0]):
        out[i] = x[i] * scale + offset + (1 if flag else 0)


@numba.njit(nogil=True)
def _range_sums(x, times, lo, hi):
    """times[r] += 1 and x's row sums for rows [lo, hi) of a whole (rows, k) array."""
    for r in range(lo, hi):
        times[r] += 1
        s = 0.0
        for k in range(x.shape[1]):
            s += x[r, k]
        x[r, 0] = s


@pytest.mark.parametrize("shape", [(1000,), (999, 3), (257, 2, 5)])
def test_share_rows_gives_each_range_its_rows(monkeypatch, shape):
    """Every row computed once, by whichever thread, with scalars of each kind (a Python
    float, int and bool, a float32) rebuilt exactly: the result of one call."""
    import numpy as np

    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 0)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for scale, offset, flag in [(np.float32(1.5), 3, True), (0.25, -7, False)]:
        expected = np.empty_like(x)
        _scaled_rows(x, scale, offset, flag, expected)
        for _ in range(50):
            out = np.full_like(x, np.nan)
            chunks.share_rows(_scaled_rows, shape[0], x.size, x, scale, offset, flag, out)
            np.testing.assert_array_equal(out, expected)


def test_a_kernel_shared_out_with_other_types_in_turn_gets_its_own_wrapper(monkeypatch):
    """One kernel shared out with float32 and float64 arrays, 1-D and 2-D, and two kinds
    of scale, call after call: each call runs through the wrapper of its own argument
    types (the one last used is tried first and checked against a code compiled from
    the arguments' types), so every result is exact, and each type signature's wrapper
    is made once."""
    import numpy as np

    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 0)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    for cache in ("_made_wrappers", "_last_wrapper", "_wrapper_by_code"):
        monkeypatch.setattr(chunks, cache, {})
    made, make_wrapper = [], chunks.make_wrapper
    monkeypatch.setattr(chunks, "make_wrapper",
                        lambda kernel, *a: made.append(kernel) or make_wrapper(kernel, *a))
    rng = np.random.default_rng(2)
    cases = [(rng.standard_normal(shape).astype(dtype), scale)
             for shape in [(600,), (300, 2)] for dtype in (np.float32, np.float64)
             for scale in (np.float32(0.5), 3.0)]
    for _ in range(5):
        for x, scale in cases:
            out = np.full_like(x, np.nan)
            chunks.share_rows(_scaled_rows, x.shape[0], x.size, x, scale, 2, False, out)
            expected = np.empty_like(x)
            _scaled_rows(x, scale, 2, False, expected)
            np.testing.assert_array_equal(out, expected)
    assert made == [_scaled_rows] * len(cases)      # (eight signatures, each made once)


def test_type_codes_tell_argument_types_apart():
    import numpy as np

    from tinygen.backend.numba_kernels import _spin

    x32, x64 = np.zeros(3, np.float32), np.zeros(3)
    codes = {_spin.type_code(args) for args in [
        (x32, x32), (x64, x64), (x32, x64), (x32, np.zeros((3, 1), np.float32)),
        (x32, 1.0), (x32, np.float32(1)), (x32, 1), (x32, True), (x32[::2], x32)]}
    assert len(codes) == 9 and 0 not in codes
    assert _spin.type_code((x32, 1.0)) == _spin.type_code((np.ones(5, np.float32), 2.5))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_shares_out_on_helpers_of_its_own(monkeypatch):
    """The parent's helper threads do not exist in a child made by fork: the child
    starts its own (and a job slot the parent held at the fork is free in the child),
    so its compiled jobs still run on two threads; BLAS held at one thread by one of
    the parent's threads is let go in the child (its counts put back)."""
    import time

    import numpy as np

    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 0)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    x = np.ones((4096, 64))
    chunks.share_range(_range_sums, 4096, x.size, x.copy(), np.zeros(4096, np.int64))
    assert chunks._queues, "the parent started no helper"
    read, write = os.pipe()
    put_back = []
    # (at the fork, a job of the parent's is posted and BLAS held at one thread)
    chunks._job[chunks._spin.BUSY] = 1
    monkeypatch.setattr(chunks._BlasOnOneThread, "depth", 1)
    monkeypatch.setattr(chunks._BlasOnOneThread, "saved", [(put_back.append, 4)])
    pid = None
    try:
        pid = os.fork()
    finally:
        if pid != 0:    # (the parent, or fork failed)
            chunks._job[chunks._spin.BUSY] = 0
    if pid == 0:    # the child: report how many ranges its helpers ran, then leave
        ran, status = 0, 1
        try:
            assert put_back == [4] and chunks._BlasOnOneThread.depth == 0
            deadline = time.perf_counter() + 60
            while not ran and time.perf_counter() < deadline:
                times = np.zeros(4096, dtype=np.int64)
                before = int(chunks._job[chunks._spin.HELPER_RANGES])
                chunks.share_range(_range_sums, 4096, x.size, x.copy(), times)
                ran += int((times == 1).all()) * (
                    int(chunks._job[chunks._spin.HELPER_RANGES]) - before)
            os.write(write, str(ran).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read) as pipe:
        reported = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and int(reported) > 0


def test_share_rows_takes_python_calls_for_strided_arrays(monkeypatch):
    import numpy as np

    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 0)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    x = np.arange(4000, dtype=np.float64)[::2]              # not contiguous
    out = np.zeros(1000, dtype=np.float64)[::-1]
    chunks.share_rows(_scaled_rows, 2000, x.size, x, 2.0, 1, False, np.zeros(2000)[:2000])
    chunks.share_rows(_scaled_rows, 1000, 1000, x[:1000], 2.0, 1, False, out)
    np.testing.assert_array_equal(out, x[:1000] * 2.0 + 1)


def test_share_range_covers_the_range_once_with_whole_arrays(monkeypatch):
    import numpy as np

    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 0)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    x = np.random.default_rng(1).standard_normal((3001, 4))
    for _ in range(50):
        y, times = x.copy(), np.zeros(3001, dtype=np.int64)
        chunks.share_range(_range_sums, 3001, y.size, y, times)
        assert (times == 1).all()
        np.testing.assert_array_equal(y[:, 0], x.sum(axis=1))
    small = np.zeros(10, dtype=np.int64)
    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 1 << 15)
    chunks.share_range(_range_sums, 10, 40, x[:10].copy(), small)     # small: one call
    assert (small == 1).all()


@numba.njit(nogil=True)
def _mark_range(times, log, lo, hi):
    """times[lo:hi] += 1; log[lo] = hi (each range's end, at its start)."""
    for r in range(lo, hi):
        times[r] += 1
    if lo < hi:
        log[lo] = hi


@numba.njit(nogil=True)
def _count_empty_ranges(times, empty, lo, hi):
    """times[lo:hi] += 1; empty[0] += 1 for a range that is empty or runs backwards."""
    if hi <= lo:
        empty[0] += 1
    for r in range(lo, hi):
        times[r] += 1


@pytest.mark.parametrize("n, ranges", [(8, 6), (10, 8), (100, 7), (7, 7)])
def test_a_compiled_job_posts_no_range_past_its_end(monkeypatch, n, ranges):
    """8 elements in 6 ranges are ceil(8 / 6) = 2 each, so 4 ranges cover them; the two
    more asked for would start at 8 and 10, past the end (a conv bias' gradient over 8
    channels met this: its kernel's buffer of hi - lo elements raised inside the C
    callback, where the error is printed and ignored)."""
    import numpy as np

    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    for _ in range(20):
        times, empty = np.zeros(n, dtype=np.int64), np.zeros(1, dtype=np.int64)
        chunks.share_pieces(_count_empty_ranges, n, ranges, times, empty)
        assert (times == 1).all() and empty[0] == 0


@numba.njit(nogil=True)
def _fail_at(x, bad, lo, hi):
    """x[lo:hi] = 1, raising on element ``bad`` (a kernel's own check of its input)."""
    for r in range(lo, hi):
        if r == bad:
            raise ValueError("element is bad")
        x[r] = 1


@numba.njit(nogil=True)
def _fail_on_rows(x, bad):
    """share_rows' kernel: x[:] = 1, raising when ``bad`` is among x's values."""
    for r in range(x.shape[0]):
        if x[r] == bad:
            raise ValueError("row is bad")
        x[r] = 1


@pytest.mark.parametrize("share", ["share_range", "share_pieces", "share_rows"])
@pytest.mark.parametrize("bad", [0, 57, 99])
def test_a_kernel_that_raises_in_a_compiled_job_raises_to_the_caller(monkeypatch, share, bad):
    """The exception cannot cross the C call that runs a range (numba prints it there and
    goes on): the job reports the failed range, and the caller reruns it to raise."""
    import numpy as np

    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 0)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    for _ in range(5):
        x = np.zeros(100)
        with pytest.raises(ValueError, match="is bad"):
            if share == "share_range":
                chunks.share_range(_fail_at, 100, 100, x, bad)
            elif share == "share_pieces":
                chunks.share_pieces(_fail_at, 100, 7, x, bad)
            else:
                x[:] = np.arange(100) + 1.0
                chunks.share_rows(_fail_on_rows, 100, 100, x, bad + 1.0)
    x = np.zeros(100)       # and the next job runs as before
    chunks.share_range(_fail_at, 100, 100, x, -1)
    assert (x == 1).all()


def test_a_range_that_fails_only_in_the_pool_is_named(monkeypatch):
    import numpy as np

    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 0)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    monkeypatch.setattr(chunks._spin, "launch_with", lambda *a: 1 + 50)
    with pytest.raises(RuntimeError, match=r"_fail_at raised on the range \[50, 63\) of 100"):
        chunks.share_pieces(_fail_at, 100, 8, np.zeros(100), -1)


@pytest.mark.parametrize("n, pieces", [(100, 2), (100, 7), (5, 8), (3001, 1), (64, 64)])
@pytest.mark.parametrize("how", ["shared", "one thread", "another job posted"])
def test_share_pieces_runs_the_same_ranges_shared_out_or_not(monkeypatch, another_job_posted, n,
                                                            pieces, how):
    """share_pieces ignores the size threshold and runs ``pieces`` ranges of
    ceil(n / pieces) (at most n of them), each once, whether shared out, on one
    thread, or alone because another Python thread's job is posted: the same ranges
    every way (a GEMM's pieces round the same)."""
    import numpy as np

    monkeypatch.setattr(numba, "get_num_threads", lambda: 1 if how == "one thread" else 2)
    per = -(-n // min(n, pieces))
    expected = [(lo, min(n, lo + per)) for lo in range(0, n, per)]
    chunks.share_pieces(_mark_range, 2, 2, np.zeros(2, np.int64), np.zeros(2, np.int64))
    held = another_job_posted() if how == "another job posted" else contextlib.nullcontext()
    with held:
        for _ in range(20):
            times, log = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
            chunks.share_pieces(_mark_range, n, pieces, times, log)
            assert (times == 1).all()
            starts = np.flatnonzero(log).tolist()
            assert [(lo, int(log[lo])) for lo in starts] == expected


def test_a_compiled_job_runs_on_a_helper_and_a_busy_helper_is_not_waited_for(monkeypatch):
    """A helper polling between jobs runs ranges of a compiled job; a helper stuck in a
    Python chunk is not waited for (the caller runs every range itself)."""
    import time

    import numpy as np

    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 0)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    x = np.ones((4096, 64))      # (~0.1 ms a call: time for a sleeping helper to wake)
    ran_on_helper, calls, deadline = 0, 0, time.perf_counter() + 60
    # Until the helper has run a range: quiet, the first calls wake it and it joins
    # within a few; with another process on the second core the caller runs every range
    # until the scheduler gives the helper a turn (by design), which can take many calls.
    while (calls < 200 or not ran_on_helper) and time.perf_counter() < deadline:
        times = np.zeros(4096, dtype=np.int64)
        before = int(chunks._job[_spin_stats_index()])
        chunks.share_range(_range_sums, 4096, x.size, x.copy(), times)
        assert (times == 1).all()
        ran_on_helper += int(chunks._job[_spin_stats_index()]) - before
        calls += 1
    assert ran_on_helper > 0

    with _helper_stuck_elsewhere():
        start = time.perf_counter()
        times = np.zeros(4096, dtype=np.int64)
        chunks.share_range(_range_sums, 4096, x.size, x.copy(), times)
        assert (times == 1).all() and time.perf_counter() - start < 10


def _spin_stats_index():
    from tinygen.backend.numba_kernels import _spin

    return _spin.HELPER_RANGES
