"""A fake ``cupy.cuda.nccl`` over MPI, so that the NCCL backend runs without a GPU.

    from tinygen.testing.fake_nccl import fake_nccl_cuda

    with fake_nccl_cuda(host) as nccl:           # fake cupy (fake_cuda) + streams + NCCL
        comm = NCCLCommunicator(host=host, nccl=nccl)

It mirrors the parts of cupy's API the backend uses: ``get_unique_id()``,
``NcclCommunicator(ndev, uid, rank)`` with ``allReduce``/``broadcast`` taking raw device
pointers, counts, NCCL dtype and op codes and a stream pointer, ``abort()``; and streams
and events (``Stream``, ``Event.record/done``, ``Stream.wait_event``,
``get_current_stream``).  ``host`` is a tinygen communicator (MPI, or the one-process
one) that carries the data.  Like NCCL, a collective only *starts* when called: it is the
host's non-blocking collective on the memory behind the pointer, and an event recorded
on the stream after it is ``done`` once that request completes.  So the asynchronous
structure (enqueue, record, poll with a deadline, abort) is exercised; what it cannot
prove is anything about real GPUs, cupy's exact signatures or NCCL itself.
"""
import contextlib
import ctypes
import types

import numpy as np

from .fake_cuda import fake_cuda

NCCL_CONSTANTS = {"NCCL_SUM": 0, "NCCL_PROD": 1, "NCCL_MAX": 2, "NCCL_MIN": 3,
                  "NCCL_INT8": 0, "NCCL_UINT8": 1, "NCCL_INT32": 2, "NCCL_UINT32": 3,
                  "NCCL_INT64": 4, "NCCL_UINT64": 5, "NCCL_FLOAT16": 6, "NCCL_FLOAT32": 7,
                  "NCCL_FLOAT64": 8}
_DTYPES = {0: np.int8, 1: np.uint8, 2: np.int32, 3: np.uint32, 4: np.int64, 5: np.uint64,
           6: np.float16, 7: np.float32, 8: np.float64}


def _view(ptr, count, datatype):
    dtype = np.dtype(_DTYPES[datatype])
    buffer = (ctypes.c_char * (count * dtype.itemsize)).from_address(ptr)
    return np.frombuffer(buffer, dtype=dtype, count=count)


class FakeStream:
    _next = 1

    def __init__(self, non_blocking=False):
        self.ptr = FakeStream._next
        FakeStream._next += 1
        self.pending = []  # requests queued on this stream and not known to be done

    def wait_event(self, event):
        self.pending.extend(r for r in event.requests if not r.test())

    def synchronize(self):
        for r in self.pending:
            r.wait()
        self.pending = []


class FakeEvent:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.requests = []

    def record(self, stream=None):
        if stream is not None:
            stream.pending = [r for r in stream.pending if not r.test()]
            self.requests = list(stream.pending)

    @property
    def done(self):
        return all(r.test() for r in self.requests)

    def synchronize(self):
        for r in self.requests:
            r.wait()


class FakeNcclCommunicator:
    _OPS = {0: "sum", 2: "max", 3: "min"}

    def __init__(self, ndev, commId, rank, host, streams):
        self._host, self._streams = host, streams
        if ndev != host.size or rank != host.rank:
            raise RuntimeError(f"fake NCCL: ndev {ndev} / rank {rank} do not match the job "
                               f"({host.size} ranks, this one {host.rank})")
        if len(commId) != 128:
            raise RuntimeError(f"fake NCCL: a unique id has 128 bytes, got {len(commId)}")
        host.check_same(float(hash(tuple(commId)) % 2 ** 50), "the NCCL unique id")
        self.aborted = False

    def _queue(self, stream, request):
        if self.aborted:
            raise RuntimeError("fake NCCL: communicator was aborted")
        self._streams[stream].pending.append(request)

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        recv = _view(recvbuf, count, datatype)
        if sendbuf != recvbuf:
            recv[...] = _view(sendbuf, count, datatype)
        self._queue(stream, self._host.start_allreduce(recv, self._OPS[op]))

    def broadcast(self, sendbuff, recvbuff, count, datatype, root, stream):
        recv = _view(recvbuff, count, datatype)
        if sendbuff != recvbuff and self._host.rank == root:
            recv[...] = _view(sendbuff, count, datatype)
        self._queue(stream, self._host.start_broadcast(recv, root))

    def abort(self):
        self.aborted = True


@contextlib.contextmanager
def fake_nccl_cuda(host, unique_id="bytes"):
    """Inside: tinygen sees a 'cuda' device (``fake_cuda``) whose cupy has streams and
    events; yields a fake ``cupy.cuda.nccl`` module whose communicators talk over MPI.
    ``unique_id`` is the form of cupy's NCCL id: "bytes" (cupy >= 14) or "tuple"."""
    with fake_cuda() as cupy:
        streams = {}

        def stream(non_blocking=False):
            s = FakeStream(non_blocking)
            streams[s.ptr] = s
            return s

        default = stream()
        cuda = cupy.cuda
        saved = dict(vars(cuda))
        cuda.Stream = stream
        cuda.Event = FakeEvent
        cuda.get_current_stream = lambda: default

        class Device(saved["Device"]):
            def use(self):
                pass

        cuda.Device = Device
        nccl = types.SimpleNamespace(**NCCL_CONSTANTS, available=True)
        raw = np.random.default_rng().integers(0, 256, 128).astype(np.uint8)
        if unique_id == "bytes":      # cupy >= 14
            nccl.get_unique_id = lambda: raw.tobytes()
        elif unique_id == "tuple":    # cupy < 14: 128 C chars as ints
            nccl.get_unique_id = lambda: tuple(int(v) for v in raw.view(np.int8))
        else:
            raise ValueError(f"unique_id must be 'bytes' or 'tuple', got {unique_id!r}")
        id_type = type(nccl.get_unique_id())

        def communicator(ndev, uid, rank):
            # cupy types the argument (``bytes commId`` in 14, ``tuple commId`` before)
            if type(uid) is not id_type:
                raise TypeError(f"fake NCCL: this cupy takes the unique id as "
                                f"{id_type.__name__}, got {type(uid).__name__}")
            return FakeNcclCommunicator(ndev, uid, rank, host, streams)

        nccl.NcclCommunicator = communicator
        try:
            yield nccl
        finally:
            for name in ("Stream", "Event", "get_current_stream"):
                vars(cuda).pop(name, None)
            cuda.Device = saved["Device"]
