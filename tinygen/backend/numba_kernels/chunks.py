"""tinygen's one CPU thread pool: work cut into chunks, the chunks shared out among
threads, BLAS and every numba kernel run on one thread inside each chunk.

Why one pool of our own, and not numba's ``prange`` or OpenBLAS's threads: a training
step is a long sequence of small pieces (a GEMM, a batch norm pass, an activation, an
unfold, ...).  Threading each piece inside its library puts a fork and a barrier after
every one, in three pools that take turns (numba's OpenMP team, OpenBLAS's threads,
these), and a barrier waits for every thread of its team, including one the kernel has
not yet put on a core.  On the 2-core machine that made model steps slower at 2
threads than at 1 (WaveNet 132 -> 192 ms quiet), and on a busy machine far slower: a
128x784x512 GEMM took 3 ms on one OpenBLAS thread and 53 ms on two, a gated
activation 1.5 ms on one numba thread and 8 ms on two.

Here the calling thread always takes part, chunks are claimed one at a time by
whichever thread asks next, and the caller waits only for chunks that another thread
has already started: a helper that is not running when the work runs out is not waited
for (it finds nothing left when it wakes).  So two threads cost at most one chunk more
than one thread, even when the second core is busy.  numpy's GEMMs release the GIL and
the numba kernels are ``nogil``, so the chunks really run side by side.

Handing a chunk to another thread is cheap only if nobody sleeps: on the virtual
machines this runs on, a thread that sleeps (on a queue, a lock, or the GIL while
another thread holds it) and is woken again costs tens of microseconds of latency and
CPU time (the idle vCPU halts; waking it takes an interrupt through the hypervisor).
Shared out that way a 200 us kernel took 163-176 us on two threads, a 20 us one
78-103 us.  So between jobs a helper polls (``_spin.py``, GIL released) for a short
while instead of sleeping; when a job comes it waits until the caller has started its
own first chunk and so released the GIL, and the caller waits for the helpers' last
chunks by polling too: 120 us and 29 us for the same kernels.

Chunks given as Python calls (``map_chunks``, ``parallel_range``: BLAS, closures)
still make each thread take the GIL once per chunk.  A numba kernel on ranges
(``share_rows``, ``share_range``, below) goes further: the job is posted in memory and
its ranges are run through a C wrapper of the kernel by the caller and by the helpers
while they poll, so no thread takes the GIL between the caller's call and its return.

The thread count is numba's (``numba.set_num_threads``, ``NUMBA_NUM_THREADS``), the
one number tinygen's CPU kernels use; numba's own thread pool is never started (no
kernel is ``parallel=True``).  While chunks that call BLAS run, OpenBLAS is held at one
thread and set back afterwards.
"""
import contextlib
import os
import queue
import threading

import numba
import numpy as np

from . import _spin
from ._wrappers import make_wrapper

_lock = threading.Lock()
_queues = []            # the job queue of each helper thread (slot 1, 2, ...)
_sleeping = set()       # the slots of helpers asleep on their queue (or about to be)
_blas = None            # OpenBLAS's (get, set) thread-count functions, looked up once

# Below this many elements touched, a kernel runs on the calling thread only: handing
# work to another thread costs tens of microseconds (a wake-up, the GIL), more than a
# pass over this much memory takes.
PARALLEL_THRESHOLD = 1 << 17


_get_num_threads = []
_numba_get_num_threads = numba.get_num_threads


def thread_count():
    """numba's thread count, read on every shared-out call: ``numba.get_num_threads()``
    costs 0.8 us, numba's own ctypes getter behind it 0.1 us once numba's threading
    layer is up (numba.get_num_threads replaced, as tests do: that one)."""
    if numba.get_num_threads is not _numba_get_num_threads:
        return numba.get_num_threads()
    if not _get_num_threads:
        threads = numba.get_num_threads()       # (starts numba's threading layer)
        getter = getattr(getattr(numba.np.ufunc, "parallel", None), "_get_num_threads", None)
        _get_num_threads.append(getter if getter is not None else numba.get_num_threads)
        return threads
    return _get_num_threads[0]()


def chunk_ranges(n_img, bytes_per_image, budget, threads=None):
    """[(start, stop)] image ranges of about ``budget`` bytes each (at least one image),
    and at least as many chunks as threads when the batch allows."""
    threads = numba.get_num_threads() if threads is None else threads
    per = max(1, budget // max(1, bytes_per_image))
    per = max(1, min(per, -(-n_img // max(1, threads))))
    return [(start, min(n_img, start + per)) for start in range(0, n_img, per)]


# --- BLAS on one thread ------------------------------------------------------------------------
def _blas_functions():
    """[(get_num_threads, set_num_threads)] of each OpenBLAS loaded (ctypes functions,
    found through threadpoolctl when it is installed; none without it)."""
    global _blas
    if _blas is None:
        found = []
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # BLAS then keeps its own thread count (correct, slower)
            pass
        else:
            for c in ThreadpoolController().select(internal_api="openblas").lib_controllers:
                # (threadpoolctl's own set_num_threads lets only one Python thread
                # change OpenBLAS's count; two of ours may each run a conv)
                get, put = (c._get_symbol(f"openblas_{verb}_num_threads")
                            for verb in ("get", "set"))
                if get is not None and put is not None:
                    found.append((get, put))
        _blas = found
    return _blas


class _BlasOnOneThread:
    """Holds BLAS at one thread while any holder runs: the first to enter saves the
    counts of the libraries not at one thread already and sets them to one, the last
    to leave puts those back (two Python threads may each run a conv at once).  A
    library already at one thread (``OPENBLAS_NUM_THREADS=1``, threadpoolctl, the usual
    case at one thread) is only read, never set: one ctypes call of ~0.1 us."""
    __slots__ = ()
    depth = 0
    saved = ()      # [(set_num_threads, count to put back)] while held

    def __enter__(self):
        blas = _blas if _blas is not None else _blas_functions()
        with _lock:
            cls = _BlasOnOneThread
            if cls.depth == 0:
                cls.saved = saved = [(put, n) for get, put in blas if (n := get()) != 1]
                for put, _ in saved:
                    put(1)
            cls.depth += 1

    def __exit__(self, *exc):
        with _lock:
            cls = _BlasOnOneThread
            cls.depth -= 1
            if cls.depth == 0:
                for put, n in cls.saved:
                    put(n)
                cls.saved = ()


blas_on_one_thread = _BlasOnOneThread
_NOTHING_HELD = contextlib.nullcontext()


def blas_held():
    """``blas_on_one_thread()``, or nothing to hold when BLAS runs on one thread already
    and nobody holds it (``blas_at_one_thread``): the hold's lock and class state cost
    ~1-2.6 us, much of a small op's time."""
    return _NOTHING_HELD if blas_at_one_thread() else _BlasOnOneThread()


def blas_at_one_thread():
    """Whether BLAS runs on one thread already with nobody holding it (every OpenBLAS
    at one thread: the usual case at one thread), so that a single BLAS call needs no
    hold: the hold's lock, class state and context manager cost ~1 us per GEMM, a
    few times the ctypes reads here."""
    if _BlasOnOneThread.depth:
        return False
    for get, _ in _blas if _blas is not None else _blas_functions():
        if get() != 1:
            return False
    return True


# --- the pool ----------------------------------------------------------------------------------
class _Job:
    """One ``map_chunks`` call: its chunks, claimed one at a time under the job's lock
    by whichever thread asks next, and how many are running.  ``done[slot]`` is set
    by a helper that took part, once it has left Python (GIL released): what the
    caller polls for before it would sleep."""

    def __init__(self, work, chunks, slots):
        self.work, self.chunks = work, chunks
        self.results = [None] * len(chunks)
        self.next = 0           # the first chunk nobody has claimed
        self.running = 0        # chunks claimed and not finished
        self.joined = []        # the helper slots that claimed a chunk
        self.done = np.zeros(slots, dtype=np.int64)
        self.posted = 0
        self.error = None
        self.cond = threading.Condition(threading.Lock())

    def run(self, slot):
        """Claim and run chunks until none is left; True when this thread ran one."""
        work, chunks, cond, n = self.work, self.chunks, self.cond, len(self.chunks)
        took_part = False
        while True:
            with cond:
                index = self.next
                if index >= n or self.error is not None:
                    return took_part
                self.next = index + 1
                self.running += 1
                if not took_part and slot:
                    self.joined.append(slot)
            took_part = True
            if slot == 0 and _flags[1] < self.posted:
                _flags[1] = self.posted     # (the caller's first chunk: see _serve)
            try:
                self.results[index] = work(slot, *chunks[index])
            except BaseException as error:  # re-raised by the caller, in finish()
                self.error = error
            finally:
                with cond:
                    self.running -= 1
                    if self.running == 0:
                        cond.notify_all()

    def finish(self):
        """Close the job (a helper that starts late finds nothing left) and wait for
        the chunks that are running; the results, or the first chunk's error.  A
        helper's chunk still running is usually near its end: first poll for its
        ``done`` flag (GIL released), then sleep."""
        with self.cond:
            self.next = len(self.chunks)
            joined = list(self.joined)
        polls = _spin_polls()
        for slot in joined:
            if not _spin.wait_while_equal(self.done, slot, 0, polls):
                break
        with self.cond:
            while self.running:
                self.cond.wait()
        if self.error is not None:
            raise self.error
        return self.results


# Spinning instead of sleeping (_spin.py: each sleep and wake-up costs tens of
# microseconds on a virtual machine's cores).  _flags[0] counts the jobs posted;
# _flags[1] is the newest job whose caller has started its first chunk (its kernel
# about to release the GIL), _flags[2] how many polls a helper allows for that.  A
# helper that has finished a job polls _flags[0] for up to SPIN_MICROSECONDS (GIL
# released) before it sleeps on its queue.  1 ms spanned the gap between two training
# steps of the MLP rows (whose products then took 10% less time than with 300 us); 5 ms
# made the VAE steps at 2 threads ~10% faster again (one process, interleaved blocks:
# VAE MLP 8.33 -> 7.54 ms, conv VAE 35.2 -> 30.9 ms; MLP, chain, tanh and DCGAN within
# 1%).  The poll yields its core every few microseconds (_spin.py), so the longer
# budget costs a busy machine little.
# When a job comes, it waits (still polling) for the caller to reach its first chunk,
# so that it asks for the GIL once the caller has let go of it: two threads asking
# for the GIL at once cost a sleep and a wake-up.
_flags = np.zeros(3, dtype=np.int64)
SPIN_MICROSECONDS = 5000
# How long a woken helper keeps polling after the caller has started its first chunk,
# by whether the chunks call BLAS: the caller's call into a numba kernel takes a few
# microseconds to release the GIL (a 20 us kernel shared out: 78-103 us with no
# settling, 29 us with 3), numpy's matmul more (the helper's half of the MLP row's
# 128x784x256 product started 76 us after the job was posted with 3, 33 us with 6).
SETTLE_MICROSECONDS = {False: 3, True: 8}
_polls = []


def _spin_polls():
    if not _polls:
        _polls.append(max(1, int(SPIN_MICROSECONDS * _spin.polls_per_microsecond())))
    return _polls[0]


def _serve(jobs, slot):
    while True:
        if jobs.empty():
            _sleeping.add(slot)     # (about to sleep: the next compiled job wakes it)
        job = jobs.get()
        _sleeping.discard(slot)
        if job is _WAKE:            # woken for a compiled job: its ranges, then poll
            _spin.run_posted(_job)
            done, seen, took_part = None, int(_flags[0]), False
        else:
            took_part = job.run(slot)
            done, seen = job.done, job.posted
        if jobs.empty():  # publish done[slot] once the GIL is released, then poll
            _spin.publish_and_wait(done if took_part else _flags, slot if took_part else -1,
                                   _flags, seen, _spin_polls(), _job)
        elif took_part:
            done[slot] = 1


def _helper_queues(count):
    """The job queues of ``count`` helper threads (started on first use)."""
    with _lock:
        while len(_queues) < count:
            jobs = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(jobs, len(_queues) + 1),
                             name=f"tinygen-cpu-{len(_queues) + 1}", daemon=True).start()
            _queues.append(jobs)
        return _queues[:count]


def _wake_helpers(threads):
    """Start the helpers of slots 1 .. threads-1 not started yet, and wake those asleep
    (a compiled job's ranges are claimed by helpers polling between jobs)."""
    queues = _helper_queues(threads - 1)
    for slot in range(1, threads):
        if slot in _sleeping:
            _sleeping.discard(slot)
            queues[slot - 1].put(_WAKE)


def _forget_helpers():
    """In a forked child: the parent's helper threads do not exist here, and a lock or
    a job that one of its other threads held is nobody's now."""
    global _lock
    _lock = threading.Lock()
    _queues.clear()
    _sleeping.clear()
    _job[_spin.BUSY] = 0
    for put, n in _BlasOnOneThread.saved:   # (held by a thread that is not here: let go)
        put(n)
    _BlasOnOneThread.depth, _BlasOnOneThread.saved = 0, ()


if hasattr(os, "register_at_fork"):     # (POSIX)
    os.register_at_fork(after_in_child=_forget_helpers)


def map_chunks(work, chunks, blas=True):
    """[work(slot, start, stop) for (start, stop) in chunks], run on up to numba's thread
    count of threads; ``slot`` (0 .. threads-1) names the thread, for its own buffers
    (0 is the calling thread).  ``blas``: the work calls BLAS (held at one thread
    meanwhile)."""
    threads = min(numba.get_num_threads(), len(chunks))
    if threads <= 1:
        if not blas:
            return [work(0, start, stop) for start, stop in chunks]
        with _BlasOnOneThread():
            return [work(0, start, stop) for start, stop in chunks]
    job = _Job(work, chunks, threads)
    with _BlasOnOneThread() if blas else _NoHold():
        queues = _helper_queues(threads - 1)
        with _lock:
            job.posted = int(_flags[0]) + 1
            _flags[2] = SETTLE_MICROSECONDS[bool(blas)] * _spin.polls_per_microsecond()
            for jobs in queues:
                jobs.put(job)
            _flags[0] = job.posted      # (after the puts: a polling helper finds the job)
        job.run(0)
        return job.finish()


class _NoHold:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def parallel_range(work, n, size):
    """``work(start, stop)`` on consecutive ranges that cover ``range(n)``: one call on
    this thread when ``size`` (elements touched) is below PARALLEL_THRESHOLD or there
    is one thread, else shared out among the threads in pieces of at least
    PARALLEL_THRESHOLD elements, up to two per thread (so that a late thread leaves
    less to wait for; more pieces cost more than they save: each is a call from
    Python).  For numba kernels (no BLAS inside)."""
    threads = numba.get_num_threads()
    if size < PARALLEL_THRESHOLD or n <= 1 or threads <= 1:
        work(0, n)
        return
    pieces = int(min(n, 2 * threads, max(threads, size // max(1, PARALLEL_THRESHOLD))))
    per = -(-n // pieces)
    map_chunks(lambda slot, start, stop: work(start, stop),
               [(start, min(n, start + per)) for start in range(0, n, per)], blas=False)


# --- compiled jobs: numba kernels shared out without the GIL ----------------------------------
# parallel_range hands each range to a thread as a Python call: the helper takes the
# GIL to make it, and whichever thread wants the GIL back while the other holds it
# sleeps and is woken (tens of microseconds here, several times per kernel).  Measured
# quiet on 2 threads: a 64K-element ReLU took 52 us shared out against 7 us on one
# thread, a 1M-element one 184 us against 294 us (two 8 MB copies side by side: 322 us
# against 575 us).  share_rows and share_range run a numba kernel's ranges from
# compiled code instead (_spin.launch / publish_and_wait): the helpers poll between
# jobs with the GIL released and call the kernel through a C wrapper made once per
# kernel and argument types (``_wrappers.py``, cached on disk), so no thread takes the
# GIL between the caller's call and its return (the same 64K ReLU: 5 us, the 1M one:
# 137 us).  share_pieces does the same with the caller's count of ranges and no size
# threshold: a matrix product (linalg.py, one cblas call per range) decides both itself.

# Below this many elements touched, share_rows and share_range run on the calling
# thread.  A shared-out call costs ~1.5 us more than calling the kernel (a 4K-element
# sigmoid: 3.3-4.5 us against 2.0; session 20, after the Python below was cut from ~3
# us to ~0.8: launch_with checks the wrapper's types, takes the one job slot and counts
# the ranges in compiled code).  From 64K elements (torch's elementwise ops split from
# 32K) sharing pays, but only when the NEIGHBOURING ops are shared too: an op shared
# out leaves half its output in the other core's cache, and an unshared op that reads
# it next pays for the transfer.  Measured quiet at 2 threads on the 100-op chain
# (256x256: a product and a sum with a number, tanh, sigmoid; one process, alternated):
# sharing sigmoid and its backward alone, 1.05x the time of sharing nothing; every op
# of the chain shared (elementwise.py, the activations), 0.84x.  The models' steps at
# 2 threads were the same at 64K and 128K (VAEs, GANs, WaveNet within 3%, noise).
SHARE_THRESHOLD = 1 << 16
_job = np.zeros(_spin.JOB_WORDS, dtype=np.int64)
_WAKE = object()        # put on a sleeping helper's queue: run the posted job's ranges
_made_wrappers = {}     # (kernel, rows?, argument types) -> cfunc (_wrappers.py)
# (kernel, rows?) -> (type code, wrapper address) of the argument types it was last
# shared out with, and (kernel, rows?, type code) -> the wrapper: see _share_out.
_last_wrapper = {}
_wrapper_by_code = {}


def share_rows(kernel, n, size, *args):
    """``kernel(*[a[lo:hi] for each array a, scalars whole])`` on consecutive ranges of
    rows that cover ``range(n)`` (every array's axis 0 has length ``n``), shared out
    among the threads when ``size`` (elements touched) reaches SHARE_THRESHOLD, else
    one call.  ``kernel``: a numba function (``nogil``) returning nothing."""
    if size < SHARE_THRESHOLD or n <= 1:    # (most calls: checked before any other)
        kernel(*args)
    else:
        _share_out(kernel, True, n, size, args)


def share_range(kernel, n, size, *args):
    """``kernel(*args, lo, hi)`` on consecutive ranges ``[lo, hi)`` that cover
    ``range(n)``, shared out as ``share_rows`` does (the arrays passed whole)."""
    if size < SHARE_THRESHOLD or n <= 1:
        kernel(*args, 0, n)
    else:
        _share_out(kernel, False, n, size, args)


def share_pieces(kernel, n, pieces, *args):
    """``kernel(*args, lo, hi)`` on ``pieces`` consecutive ranges of ceil(n / pieces)
    (the last shorter; fewer ranges when that covers ``n`` sooner) that cover
    ``range(n)``, shared out among the threads whatever the size: for a caller that
    has decided that sharing pays and how finely (a GEMM: each piece re-packs an
    operand).  The ranges depend only on ``n`` and ``pieces``, not on which thread
    runs which nor on whether they could be shared out (one thread, another Python
    thread's job posted: the same ranges in turn), so the results are the same run
    to run."""
    _share_out(kernel, False, n, 0, args, pieces)


# Batches of fewer multiply-adds than this run as one piece on the calling thread (as
# linalg's MIN_MULTIPLY_ADDS: sharing out costs a few microseconds).
MIN_SHARED_MULTIPLY_ADDS = 1 << 20


def image_pieces(n, multiply_adds):
    """How many pieces to cut a batch of ``n`` images into for ``share_images``: one per
    thread, or one in all below MIN_SHARED_MULTIPLY_ADDS (the compiled convs'
    choice; they look it up as their module's ``_pieces``, which tests replace)."""
    threads = thread_count()
    if threads <= 1 or multiply_adds < MIN_SHARED_MULTIPLY_ADDS:
        return 1
    return max(1, min(n, threads))


def share_images(kernel, n, pieces, *args):
    """``kernel(*args, per, lo, hi)`` on ``pieces`` pieces of a batch of ``n`` images
    (``per`` images each, the last shorter, as share_pieces cuts them: a piece's index
    is lo // per, which a kernel uses to find its part of per-piece buffers), with BLAS
    held at one thread (``blas_held``: unless it is there already); returns how many
    pieces that made (ceil(n / per): fewer than asked when that covers ``n`` sooner,
    e.g. 5 images in 4 pieces are 3 of 2)."""
    if n == 0:
        return 0
    per = -(-n // pieces)
    with blas_held():   # (the hold costs ~2.6 us, a third of a small conv op's sharing out)
        share_pieces(kernel, n, pieces, *args, per)
    return -(-n // per)


def _share_out(kernel, rows, n, size, args, pieces=None):
    threads = thread_count()
    if pieces is not None:      # (share_pieces: always these ranges, shared out or not)
        pieces = int(max(1, min(n, _spin.MAX_RANGES, pieces)))
        if pieces <= 1 or threads <= 1:
            _in_turn(kernel, n, pieces, args)
            return
    elif threads <= 1:      # (the size share_rows / share_range have checked)
        if rows:
            kernel(*args)
        else:
            kernel(*args, 0, n)
        return
    # The Python here is the least a shared-out call can be (each 0.1-0.5 us statement
    # was measurable against a 64K-element kernel): the wrapper is the one of the types
    # this kernel was last shared out with, which launch_with checks against the
    # arguments' (a compile-time code) before it runs anything; the rest of the
    # bookkeeping (one job at a time, its sequence, the count of ranges) is compiled.
    if _sleeping or len(_queues) < threads - 1:
        _wake_helpers(threads)
    code, address = _last_wrapper.get((kernel, rows), (0, 0))
    status = _spin.launch_with(_job, address, code, n, pieces or 0, size, SHARE_THRESHOLD,
                               threads, rows, args)
    if status == _spin.OTHER_TYPES:
        code, address = _last_wrapper[kernel, rows] = _wrapper_for(kernel, rows, args)
        status = _spin.launch_with(_job, address, code, n, pieces or 0, size,
                                   SHARE_THRESHOLD, threads, rows, args)
    if status == 0:
        return
    if status == _spin.ANOTHER_JOB:     # (another Python thread's: this one alone)
        if pieces is not None:
            _in_turn(kernel, n, pieces, args)
        elif rows:
            kernel(*args)
        else:
            kernel(*args, 0, n)
    elif status == _spin.DOES_NOT_FIT:  # (an array not C-contiguous, or not n rows)
        if pieces is not None:
            _in_turn(kernel, n, pieces, args)
        else:
            _by_python(kernel, rows, n, size, args)
    elif status > 0:                    # (1 + the start of a range whose kernel raised)
        ranges = _spin.range_count(n, pieces or 0, size, SHARE_THRESHOLD, threads)
        _raise_failed_range(kernel, rows, n, ranges, status - 1, args)
    else:   # (OTHER_TYPES again: the code launch_with compiled is not type_code's)
        raise RuntimeError(f"{getattr(kernel, '__name__', kernel)}: the pool's launch "
                           f"returned status {status} for a wrapper made for its arguments")


def _wrapper_for(kernel, rows, args):
    """(type code of ``args``, the address of the wrapper that runs ``kernel`` on them),
    the wrapper made on first use (``_wrappers.py``)."""
    code = _spin.type_code(args)
    wrapper = _wrapper_by_code.get((kernel, rows, code))
    if wrapper is None:
        key = (kernel, rows, tuple([(a.dtype, a.ndim) if type(a) is np.ndarray else type(a)
                                    for a in args]))
        wrapper = _made_wrappers.get(key)
        if wrapper is None:
            wrapper = _made_wrappers[key] = make_wrapper(kernel, rows, args)
        _wrapper_by_code[kernel, rows, code] = wrapper
    return code, wrapper.address


def _raise_failed_range(kernel, rows, n, ranges, lo, args):
    """A kernel raised inside a compiled job, where the exception could not leave the C
    call: run its range again here, as a plain call, so that it raises to the caller
    with its own message; if it does not fail twice, say where it failed."""
    hi = min(n, lo + -(-n // ranges))
    if rows:
        kernel(*[a[lo:hi] if isinstance(a, np.ndarray) else a for a in args])
    else:
        kernel(*args, lo, hi)
    raise RuntimeError(f"{getattr(kernel, '__name__', kernel)} raised on the range "
                       f"[{lo}, {hi}) of {n} in a pool thread, but not when run again "
                       f"on the calling thread; its outputs are not to be trusted")


def _in_turn(kernel, n, ranges, args):
    """share_pieces' ranges (``_spin.launch``'s: ceil(n / ranges) long) run one after
    another on this thread: the same ranges as when shared out, so the same results
    (a GEMM cut in two may round differently from one call over the whole)."""
    per = -(-n // ranges)
    for lo in range(0, n, per):
        kernel(*args, lo, min(n, lo + per))


def _by_python(kernel, rows, n, size, args):
    if rows:
        parallel_range(lambda lo, hi: kernel(*[a[lo:hi] if isinstance(a, np.ndarray) else a
                                               for a in args]), n, size)
    else:
        parallel_range(lambda lo, hi: kernel(*args, lo, hi), n, size)


# --- sums over chunks, in chunk order ----------------------------------------------------------
# How many partials, per thread, may wait for their turn (see sum_chunks) before a thread
# whose turn has not come waits for it instead (polling, GIL released).  0 (a turnstile),
# 1 and 100 ran the DCGAN, PixelCNN, WaveNet and GAN D rows at 2 threads within 3% of
# each other (noise), quiet; 1 bounds the memory (GAN D's conv_phase: one 164 KB part
# per thread) and still lets a thread whose neighbour was descheduled mid-chunk finish
# its own.
KEPT_PER_THREAD = 1


def sum_chunks(work, chunks, totals, blas=True):
    """``map_chunks`` for a reduction: ``work(slot, start, stop, add)`` per chunk, where
    ``add(k, partial)`` adds the array ``partial`` into ``totals[k]`` (in place).  Each
    total receives its chunks' partials in chunk order, totals[k] + p_0 + p_1 + ...,
    whichever thread ran which chunk and whenever it finished, so the sums are the
    same bit for bit from run to run (``--resume`` repeats a straight run).  A sum per
    thread, added up afterwards, is not: which chunks a thread claims changes with
    timing, and float addition is not associative.  The chunks themselves depend on
    the thread count (``chunk_ranges`` makes at least one per thread), so results at
    1 and 2 threads may differ in the last bits (as PyTorch's CPU kernels' do).

    One accumulator per total whatever the thread count (a sum per thread held 0.8 MB
    more per thread for GAN D's conv_phase).  A partial ready before its turn (the
    chunk before it has not added its own yet) is kept, not copied, and added by the
    thread that adds the one before it, so that a thread whose neighbour is slow or
    descheduled goes on with its next chunk; up to KEPT_PER_THREAD partials per
    thread are kept at once, beyond that a thread waits for its turn (polling):
    memory stays bounded.  ``add`` returns True when ``partial`` has been added (its
    buffer may be written again), False when it was kept (leave it alone; it is
    added before ``sum_chunks`` returns).  A chunk adds to each total at most once;
    a total it does not add to is passed over when its work returns (or raises)."""
    threads = numba.get_num_threads()
    if min(threads, len(chunks)) <= 1:     # (one thread: every partial comes at its turn)
        def add_now(k, partial):
            np.add(totals[k], partial, out=totals[k])
            return True

        map_chunks(lambda slot, start, stop: work(slot, start, stop, add_now), chunks, blas)
        return totals
    order = {start: index for index, (start, _) in enumerate(chunks)}   # (chunks' order)
    if len(order) != len(chunks):
        raise ValueError(f"sum_chunks: chunks {chunks} do not start at distinct places")
    sums, count = _OrderedSums(totals, KEPT_PER_THREAD * threads), len(totals)

    def run(slot, start, stop):
        index, added = order[start], [False] * count

        def add(k, partial):
            if added[k]:
                raise ValueError(f"sum_chunks: chunk {index} added to total {k} twice")
            added[k] = True
            return sums.add(k, index, partial)

        try:
            work(slot, start, stop, add)
        finally:  # (a later chunk may be waiting for this one's turn to pass)
            if not all(added):
                for k in range(count):
                    if not added[k]:
                        sums.add(k, index, None)

    map_chunks(run, chunks, blas=blas)
    assert not any(sums.kept), "sum_chunks: partials left unadded"
    return totals


class _OrderedSums:
    """totals[k] += each chunk's partial in chunk order: ``turn[k]`` is the first chunk
    whose partial for k is not added yet (``polled``: the same, for a thread waiting
    for its turn), ``kept[k]`` {chunk: partial (None: nothing to add)} those that came
    before their turn, at most ``limit`` arrays in all.  Only the thread whose turn it
    is adds to totals[k] (outside the lock: numpy releases the GIL), then the kept
    partials that follow.  No wait can deadlock: the first chunk still running is
    always at its turn."""

    def __init__(self, totals, limit):
        self.totals, self.limit, self.count = totals, limit, 0
        self.turn = [0] * len(totals)
        self.polled = np.zeros(len(totals), dtype=np.int64)
        self.kept = [{} for _ in totals]
        self.lock = threading.Lock()

    def add(self, k, index, partial):
        kept = self.kept[k]
        # (read without the lock: only the thread adding chunk index - 1 makes it index)
        if self.turn[k] != index:
            with self.lock:
                if self.turn[k] != index:
                    if partial is None or self.count < self.limit:
                        kept[index] = partial
                        self.count += partial is not None
                        return False
            polls = _spin_polls()
            turn = int(self.polled[k])
            while turn != index:
                turn = _spin.wait_while_equal(self.polled, k, turn, polls)
        total = self.totals[k]
        while True:
            if partial is not None:
                np.add(total, partial, out=total)
            with self.lock:
                index += 1
                self.turn[k] = self.polled[k] = index
                if index not in kept:
                    return True
                partial = kept.pop(index)
                self.count -= partial is not None
