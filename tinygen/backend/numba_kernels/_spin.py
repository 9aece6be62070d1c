"""Short waits that keep a thread on its core instead of sleeping (``chunks.py``'s pool).

On the machines tinygen targets (virtual machines with a few cores) putting a thread
to sleep and waking it costs tens of microseconds of latency and CPU each way (a
futex wait, the idle vCPU halted, an inter-processor interrupt to wake it), several
times per shared-out kernel.  A thread that expects work within a fraction of a
millisecond instead polls a flag in memory, in compiled code with the GIL released
(``nogil``: the other threads keep running Python), and sleeps only when nothing
came within its budget of polls.

The flags are int64 numpy arrays written by Python code.  The poll is an atomic
load (acquire: read from memory every time, never hoisted out of the loop by the
compiler) followed, on x86, by the CPU's spin-wait hint (``pause``).

Every YIELD_EVERY polls (a few microseconds) the poller calls ``sched_yield``: on a
busy machine the thread it waits for may be queued on the poller's own core (or, with
Linux's autogroup scheduling, share one time budget with it), and a poll that never
lets go would hold it off.  Polling every core while other work waits made a
shared-out ReLU 2.4x slower than sleeping (load 4 on 2 cores); yielding gives the
core back after each short stretch.
"""
import hashlib
import os
import platform

import numpy as np
from numba import literal_unroll, njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from llvmlite import ir

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
_YIELDS = hasattr(os, "sched_yield")      # (POSIX)
YIELD_EVERY = 256


@intrinsic
def _yield(typingctx):
    """``sched_yield()`` where the platform has it: let another thread queued on this
    core run first."""
    def codegen(context, builder, signature, args):
        if _YIELDS:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _poll(typingctx, flags, index):
    """``flags[index]`` (a 1-D int64 array) read with an atomic acquire load, then the
    spin-wait hint."""
    if not (isinstance(flags, types.Array) and flags.dtype == types.int64 and flags.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        array_type, _ = signature.args
        array = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])
        value = builder.load_atomic(pointer, "acquire", 8)
        if _X86:
            pause = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(pause, [])
        return value

    return types.int64(flags, types.intp), codegen


@njit(cache=True, nogil=True)
def wait_while_equal(flags, index, value, polls):
    """Poll ``flags[index]`` until it differs from ``value`` or ``polls`` polls have
    passed; returns its last value (GIL released meanwhile)."""
    current = _poll(flags, index)
    for i in range(polls):
        if current != value:
            break
        if i % YIELD_EVERY == YIELD_EVERY - 1:
            _yield()
        current = _poll(flags, index)
    return current


@intrinsic
def _publish(typingctx, flags, index, value):
    """``flags[index] = value`` (a 1-D int64 array) with an atomic release store: every
    write before it is visible to a thread that reads the new value."""
    if not (isinstance(flags, types.Array) and flags.dtype == types.int64 and flags.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])
        builder.store_atomic(context.cast(builder, args[2], signature.args[2], types.int64),
                             pointer, "release", 8)
        return context.get_dummy_value()

    return types.void(flags, types.intp, value), codegen


# --- compiled jobs: kernels shared out with no Python (and no GIL) in between ------------------
# A job of ``chunks.share_rows`` / ``share_range``: one numba kernel on consecutive
# ranges, called through a C function pointer (a ``cfunc`` wrapper that rebuilds the
# kernel's arguments from a block of int64 words, and returns 0, or 1 when the kernel
# raised) by whichever thread claims a range
# next: the caller, in ``launch``, and every helper polling between jobs, in
# ``publish_and_wait``.  Nothing on the way takes the GIL, so a range costs an atomic
# compare-and-swap, not a GIL hand-over (a sleep and a wake-up: ~45 us per shared-out
# kernel before, 1-2 us now).
#
# JOB holds, by index:
CLAIM = 0       # (sequence << 32) | (ranges << 16) | next range: one word, claimed by CAS
FUNCTION = 1    # the wrapper's address: int64 f(int64 *block, int64 lo, int64 hi)
BLOCK = 2       # the address of the block of argument words
LENGTH = 3      # n: the ranges cover [0, n)
PER = 4         # elements per range (the last one shorter)
DONE = 5        # ranges finished (atomic add)
HELPER_RANGES = 6   # ranges the helpers have run, all jobs together (for tests)
FAILED = 7      # 0, or 1 + the start of the first range whose kernel raised (CAS from 0)
BUSY = 8        # 1 while a caller's job is posted (CAS from 0: one job at a time)
SEQUENCE = 9    # the last job's sequence number (written by the caller holding BUSY)
JOB_WORDS = 10
MAX_RANGES = 0xFFFF
_I64 = ir.IntType(64)


@intrinsic
def _load(typingctx, flags, index):
    """``flags[index]`` with an atomic acquire load (no spin hint)."""
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])
        return builder.load_atomic(pointer, "acquire", 8)

    return types.int64(flags, types.intp), codegen


@intrinsic
def _compare_and_swap(typingctx, flags, index, expected, new):
    """``flags[index] = new`` if it still holds ``expected``, atomically; True if it did."""
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])
        result = builder.cmpxchg(pointer, args[2], args[3], "acq_rel", "acquire")
        return builder.extract_value(result, 1)

    return types.boolean(flags, types.intp, types.int64, types.int64), codegen


@intrinsic
def _fetch_add(typingctx, flags, index, value):
    """``flags[index] += value`` atomically (release: the range's writes are visible to
    whoever reads the new count); returns the old value."""
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])
        return builder.atomic_rmw("add", pointer, args[2], "acq_rel")

    return types.int64(flags, types.intp, types.int64), codegen


@intrinsic
def _call(typingctx, function, block, lo, hi):
    """``function(block, lo, hi)``: a wrapper's address called as a C function; returns
    its status (non-zero: the kernel raised)."""
    def codegen(context, builder, signature, args):
        kind = ir.FunctionType(_I64, [_I64.as_pointer(), _I64, _I64])
        callee = builder.inttoptr(args[0], kind.as_pointer())
        return builder.call(callee, [builder.inttoptr(args[1], _I64.as_pointer()), args[2],
                                     args[3]])

    return types.int64(types.int64, types.int64, types.int64, types.int64), codegen


@njit(cache=True, nogil=True)
def run_ranges(job, sequence):
    """Claim and run ranges of job ``sequence`` until none is left (or another job has
    replaced it); returns how many this thread ran.  The fields are read after the
    claim word and trusted only once the CAS on that word succeeds: the job could not
    end (and be replaced) while one of its ranges was unclaimed."""
    ran = 0
    while True:
        word = _load(job, CLAIM)
        index, ranges = word & 0xFFFF, (word >> 16) & 0xFFFF
        if (word >> 32) != sequence or index >= ranges:
            return ran
        function, block, n, per = _load(job, FUNCTION), _load(job, BLOCK), \
            _load(job, LENGTH), _load(job, PER)
        if _compare_and_swap(job, CLAIM, word, word + 1):
            lo = index * per
            if _call(function, block, lo, min(n, lo + per)) != 0:
                _compare_and_swap(job, FAILED, 0, lo + 1)
            _fetch_add(job, DONE, 1)
            ran += 1


@njit(cache=True, nogil=True)
def launch(job, function, block, n, ranges, sequence):
    """Post job ``sequence`` (``ranges`` ranges over [0, n)), run ranges until none is
    left, then wait (polling) for the ranges other threads have claimed: a helper
    that has not claimed one is not waited for.  Returns 0, or 1 + the start of the
    first range whose kernel raised (the error itself cannot cross the C call: the
    caller runs that range again to raise it)."""
    per = -(-n // ranges)
    # Only the ranges that start inside [0, n): ceil(n / per), fewer than asked when that
    # covers n sooner (8 in 6 ranges of 2 are 4).  A range past n would start beyond
    # its end, and a kernel's np.empty(hi - lo) then raises inside a C callback, where
    # the error can only be printed and ignored.
    ranges = -(-n // per)
    job[FUNCTION] = function
    job[BLOCK] = block
    job[LENGTH] = n
    job[PER] = per
    job[DONE] = 0
    job[FAILED] = 0
    _publish(job, CLAIM, (sequence << 32) | (ranges << 16))
    run_ranges(job, sequence)
    i = 0
    while _load(job, DONE) != ranges:
        _poll(job, DONE)
        i += 1
        if i % YIELD_EVERY == 0:
            _yield()
    return _load(job, FAILED)


@njit(cache=True, nogil=True)
def _open_ranges(job, seen):
    """The sequence of the posted job when it still has unclaimed ranges and is not
    ``seen`` (this thread ran out of it already), else 0."""
    word = _load(job, CLAIM)
    sequence = word >> 32
    if sequence != seen and (word & 0xFFFF) < ((word >> 16) & 0xFFFF):
        return sequence
    return 0


@njit(cache=True, nogil=True)
def run_posted(job):
    """Run ranges of whatever job is posted (a helper woken by ``chunks``)."""
    sequence = _open_ranges(job, -1)
    if sequence:
        run_ranges(job, sequence)


@njit(cache=True, nogil=True)
def publish_and_wait(done, slot, flags, seen, polls, job):
    """A pool helper between jobs (``chunks._serve``), GIL released: set ``done[slot]``
    (``slot`` >= 0: it took part in the job just run), then poll ``flags[0]`` (jobs
    posted) until it moves past ``seen`` or ``polls`` polls pass without work, running
    ranges of compiled jobs (``job``) as they come; when a job came, poll ``flags[1]``
    until the job's caller has started its first chunk (or ``polls`` more polls), then
    ``flags[2]`` polls more (a few microseconds: the caller's call into its kernel
    releasing the GIL).  Returns ``flags[0]``."""
    if slot >= 0:
        _publish(done, slot, 1)
    posted = seen
    ran = 0
    i = 0
    while i < polls:
        posted = _poll(flags, 0)
        if posted != seen:
            break
        sequence = _open_ranges(job, ran)
        if sequence:
            _fetch_add(job, HELPER_RANGES, run_ranges(job, sequence))
            ran = sequence
            i = 0               # (work came: the budget of polls starts again)
            continue
        i += 1
        if i % YIELD_EVERY == 0:
            _yield()
    if posted != seen:
        for i in range(polls):
            if _poll(flags, 1) >= posted:
                break
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                _yield()
        for _ in range(_poll(flags, 2)):
            _poll(flags, 1)
    return posted


_calibrated = []


def polls_per_microsecond():
    """How many polls of ``wait_while_equal`` take a microsecond here (measured once)."""
    if not _calibrated:
        import time

        flag = np.zeros(1, dtype=np.int64)
        wait_while_equal(flag, 0, 0, 10)            # (compiled or loaded from the cache)
        best = None
        for _ in range(3):
            start = time.perf_counter()
            wait_while_equal(flag, 0, 0, 20000)
            took = time.perf_counter() - start
            best = took if best is None else min(best, took)
        _calibrated.append(max(1, int(20000 / max(best * 1e6, 1e-3))))
    return _calibrated[0]


# --- the argument block of a compiled job ------------------------------------------------------
BLOCK_WORDS = 64


@intrinsic
def _bits(typingctx, value):
    """A scalar as one int64 word: a float's float64 bit pattern, an integer widened."""
    if isinstance(value, types.Float):
        def codegen(context, builder, signature, args):
            double = args[0] if value.bitwidth == 64 else builder.fpext(args[0], ir.DoubleType())
            return builder.bitcast(double, _I64)
    elif isinstance(value, (types.Integer, types.Boolean)):
        def codegen(context, builder, signature, args):
            width = args[0].type.width
            if width == 64:
                return args[0]
            signed = isinstance(value, types.Integer) and value.signed
            return builder.sext(args[0], _I64) if signed else builder.zext(args[0], _I64)
    else:
        return None
    return types.int64(value), codegen


@intrinsic
def from_bits(typingctx, word, like):
    """The inverse of ``_bits``: the scalar of ``like``'s type stored in ``word``."""
    if isinstance(like, types.Float):
        def codegen(context, builder, signature, args):
            double = builder.bitcast(args[0], ir.DoubleType())
            if like.bitwidth == 64:
                return double
            return builder.fptrunc(double, context.get_value_type(like))
    elif isinstance(like, (types.Integer, types.Boolean)):
        def codegen(context, builder, signature, args):
            target = context.get_value_type(like)
            return args[0] if target.width == 64 else builder.trunc(args[0], target)
    else:
        return None
    return like(types.int64, like), codegen


@intrinsic
def pointer(typingctx, address, like):
    """``address`` as a pointer to elements of ``like``'s dtype (``like``: an array)."""
    if not isinstance(like, types.Array):
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(like.dtype).as_pointer())

    return types.CPointer(like.dtype)(types.int64, like), codegen


def _put(block, at, value):
    """Write ``value``'s words into ``block`` from ``at``; the next free index."""


@overload(_put)
def _put_impl(block, at, value):
    if isinstance(value, types.Array):
        ndim = value.ndim

        def put_array(block, at, value):
            block[at] = value.ctypes.data
            for d in range(ndim):
                block[at + 1 + d] = value.shape[d]
            return at + 1 + ndim
        return put_array

    def put_scalar(block, at, value):
        block[at] = _bits(value)
        return at + 1
    return put_scalar


def _fits(value, rows, n):
    """Whether ``value`` can go into a block: an array must be C-contiguous (known from
    its type) and, for ``rows``, ``n`` rows long; a scalar always can."""


@overload(_fits)
def _fits_impl(value, rows, n):
    if isinstance(value, types.Array):
        if value.layout != "C":
            return lambda value, rows, n: False
        return lambda value, rows, n: not rows or (value.ndim > 0 and value.shape[0] == n)
    return lambda value, rows, n: True


# launch_with's statuses that ran nothing, besides launch's (0, or 1 + a failed range):
DOES_NOT_FIT = -1       # an array not C-contiguous, or not n rows long (rows)
ANOTHER_JOB = -2        # another Python thread's job is posted (BUSY held)
OTHER_TYPES = -3        # the wrapper passed was made for other argument types


def _type_code(args):
    """The code of the argument types (a compile-time constant: ``type_code``)."""


@overload(_type_code)
def _type_code_impl(args):
    code = code_of_types(args)
    return lambda args: code


def code_of_types(numba_type):
    """A non-zero 63-bit code of a numba type (the arguments' tuple): what a wrapper
    depends on (each array's dtype and ndim, each scalar's type) and more (layouts,
    read-only flags), so equal codes mean one wrapper fits."""
    digest = hashlib.blake2b(str(numba_type).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") & 0x7FFFFFFFFFFFFFFF) | 1


@njit(cache=True, nogil=True)
def type_code(args):
    """``code_of_types`` of ``args``' numba type, as ``launch_with`` sees it."""
    return _type_code(args)


@njit(cache=True, nogil=True)
def range_count(n, pieces, size, threshold, threads):
    """How many ranges ``launch_with`` asks ``launch`` for: ``pieces`` when given (> 0),
    else one per ``threshold`` elements of ``size``, at least one and at most four per
    thread; never more than ``n`` or MAX_RANGES."""
    if pieces > 0:
        return min(n, MAX_RANGES, pieces)
    return min(n, MAX_RANGES, 4 * threads, max(threads, size // max(1, threshold)))


@njit(cache=True, nogil=True)
def launch_with(job, function, code, n, pieces, size, threshold, threads, rows, args):
    """``launch`` with the arguments' words (``chunks``' block layout: an array's
    address then its shape, a scalar's bits) written into a block first, in
    ``range_count`` ranges (``pieces``, or with ``pieces`` 0 one per ``threshold``
    elements of ``size``, the elements the kernel touches).  The checks come first and run nothing when they fail: OTHER_TYPES when
    ``code`` is not ``type_code(args)`` (``function`` was made for other argument
    types), DOES_NOT_FIT when an array does not fit (``_fits``), ANOTHER_JOB when
    another caller's job is posted.  Else ``launch``'s status.

    All of a shared-out call's bookkeeping is here rather than in Python: done there
    (a lock, the wrapper looked up by the arguments' dtypes, the sequence number, the
    count of ranges) it cost ~2 us a call, as much as an 8 us kernel's half saves
    (chunks.SHARE_THRESHOLD)."""
    if _type_code(args) != code:
        return OTHER_TYPES
    for value in literal_unroll(args):
        if not _fits(value, rows, n):
            return DOES_NOT_FIT
    ranges = range_count(n, pieces, size, threshold, threads)
    block = np.empty(BLOCK_WORDS, dtype=np.int64)
    at = 0
    for value in literal_unroll(args):
        at = _put(block, at, value)
    if not _compare_and_swap(job, BUSY, 0, 1):
        return ANOTHER_JOB
    sequence = job[SEQUENCE] % 0x7FFFFFFF + 1
    job[SEQUENCE] = sequence
    status = launch(job, function, block.ctypes.data, n, ranges, sequence)
    _publish(job, BUSY, 0)
    return status
