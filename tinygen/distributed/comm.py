"""The communicator interface every backend implements, and the one-process stand-in.

A communicator moves raw arrays (numpy, or cupy for the NCCL backend) between the
ranks of a job; autograd never sees it (``tinygen.ops.collective`` wraps it into a
differentiable op).  Every collective is *non-blocking underneath*: a backend starts it
and returns a ``Request``; ``Request.wait()`` polls it until it completes or the
communicator's ``timeout`` passes, and then raises ``CollectiveTimeout`` naming the
collective.  So a rank whose partner died or hangs stops with a clear error instead of
waiting forever inside MPI or NCCL.

All ranks must call the same collectives in the same order (as with MPI itself); the
blocking helpers (``allreduce_``, ``broadcast_``, ``barrier``) are ``start().wait()``.
"""
import json
import os
import time

import numpy as np

# Seconds a collective may wait for the other ranks before the job is declared broken.
# Generous: a rank may be compiling numba kernels or evaluating while others wait.
DEFAULT_TIMEOUT = 1800.0
TIMEOUT_ENV = "TINYGEN_DIST_TIMEOUT"


class DistributedError(RuntimeError):
    """The distributed job cannot go on (a missing library, ranks that disagree...)."""


class CollectiveTimeout(DistributedError):
    """A collective did not complete in time: another rank died, hangs or diverged."""

    def __init__(self, message, request=None):
        super().__init__(message)
        self.request = request  # still pending; waiting on it again is allowed


def default_timeout():
    value = os.environ.get(TIMEOUT_ENV)
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        raise DistributedError(f"{TIMEOUT_ENV}={value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise DistributedError(f"{TIMEOUT_ENV} must be positive, got {value!r}")
    return seconds


def poll_until(test, deadline, on_timeout):
    """Call ``test()`` until it returns True; ``on_timeout()`` (which raises) after
    ``deadline`` (time.monotonic()).  Spins briefly, then sleeps with a growing delay
    capped at 1 ms: MPI progresses non-blocking collectives only inside MPI calls, so
    polling must go on, but a waiting rank should not steal a core from busy ones."""
    spins, delay = 0, 0.0
    while not test():
        spins += 1
        if spins < 64:
            continue
        if time.monotonic() > deadline:
            on_timeout()
        delay = min(max(delay * 2.0, 1e-5), 1e-3)
        time.sleep(delay)


class Request:
    """A started collective. ``wait()`` returns its array once every rank took part."""

    def __init__(self, comm, what, test, array=None, finish=None, cancel=None):
        self.comm, self.what = comm, what
        self._test, self._finish, self._cancel = test, finish, cancel
        self.array = array  # kept alive (the backend writes into it) until completion
        self.done = False

    def test(self):
        if not self.done and self._test():
            self.done = True
            if self._finish is not None:
                self._finish()
        return self.done

    def wait(self, timeout=None):
        timeout = self.comm.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + timeout
        poll_until(self.test, deadline, lambda: self._timed_out(timeout))
        return self.array

    def _timed_out(self, timeout):
        if self._cancel is not None:
            self._cancel()
        c = self.comm
        raise CollectiveTimeout(
            f"{self.what} on rank {c.rank} of {c.size} did not complete within {timeout:g} s: "
            f"another rank has died, hangs, or is running different code (if a step "
            f"legitimately takes longer, raise {TIMEOUT_ENV})", request=self)


def _completed(comm, what, array=None):
    return Request(comm, what, lambda: True, array)


OPS = ("sum", "max", "min")


class Communicator:
    """Base class. ``rank``/``size``/``timeout``; backends implement the ``start_*``."""

    rank = 0
    size = 1
    backend = None
    timeout = DEFAULT_TIMEOUT

    # --- what backends implement -------------------------------------------------------
    def start_allreduce(self, array, op="sum"):
        """Start reducing ``array`` (contiguous) in place over all ranks."""
        raise NotImplementedError

    def start_broadcast(self, array, root=0):
        """Start overwriting ``array`` (contiguous) with rank ``root``'s."""
        raise NotImplementedError

    def start_barrier(self):
        raise NotImplementedError

    def abort(self, code=1):
        """End every rank of the job now (after an error that leaves the others stuck)."""
        raise SystemExit(code)

    # --- blocking helpers (with the timeout) -------------------------------------------
    def allreduce_(self, array, op="sum", timeout=None):
        return self.start_allreduce(array, op).wait(timeout)

    def broadcast_(self, array, root=0, timeout=None):
        return self.start_broadcast(array, root).wait(timeout)

    def barrier(self, timeout=None):
        self.start_barrier().wait(timeout)

    def broadcast_json(self, obj, root=0, timeout=None):
        """A small JSON-serialisable object from ``root`` (metrics; never tensors)."""
        payload = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8).copy() \
            if self.rank == root else np.zeros(0, np.uint8)
        length = self.broadcast_(np.array([payload.size], np.int64), root, timeout)
        if self.rank != root:
            payload = np.zeros(int(length[0]), np.uint8)
        payload = self.broadcast_(payload, root, timeout)
        return json.loads(payload.tobytes().decode())

    def check_same(self, value, what):
        """Raise DistributedError unless every rank passes the same float ``value``."""
        both = np.array([value, -value], dtype=np.float64)
        self.allreduce_(both, "max")
        if both[0] != -both[1]:
            raise DistributedError(f"the ranks disagree on {what}: from {-both[1]!r} to "
                                   f"{both[0]!r} (rank {self.rank} has {value!r})")

    def _check_op(self, op):
        if op not in OPS:
            raise ValueError(f"unknown reduction {op!r}; choose one of {', '.join(OPS)}")

    def __repr__(self):
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class LocalCommunicator(Communicator):
    """One process, no library: every collective is the identity (tests, 1-rank runs)."""

    backend = "local"

    def __init__(self, timeout=None):
        self.timeout = default_timeout() if timeout is None else float(timeout)

    def start_allreduce(self, array, op="sum"):
        self._check_op(op)
        return _completed(self, f"allreduce({op})", array)

    def start_broadcast(self, array, root=0):
        if root != 0:
            raise ValueError(f"root {root} is not a rank of a 1-process communicator")
        return _completed(self, "broadcast", array)

    def start_barrier(self):
        return _completed(self, "barrier")

    def local_rank(self):
        return 0
