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
import os
import platform

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
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


@njit(cache=True, nogil=True)
def publish_and_wait(done, slot, flags, seen, polls):
    """A pool helper between jobs (``chunks._serve``), GIL released: set ``done[slot]``
    (``slot`` >= 0: it took part in the job just run), then poll ``flags[0]`` (jobs
    posted) until it moves past ``seen`` or ``polls`` polls pass; when a job came,
    poll ``flags[1]`` until the job's caller has started its first chunk (or ``polls``
    more polls), then ``flags[2]`` polls more (a few microseconds: the caller's call
    into its kernel releasing the GIL).  Returns ``flags[0]``."""
    if slot >= 0:
        _publish(done, slot, 1)
    posted = wait_while_equal(flags, 0, seen, polls)
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
