"""The NCCL backend: collectives between GPUs through ``cupy.cuda.nccl``.

One process per GPU, launched by mpiexec like the MPI backend: MPI only bootstraps (rank
0's NCCL unique id is broadcast to the others) and carries the few host-side collectives
(numpy arrays: losses, flags); every cupy array goes through NCCL.  A rank uses GPU
``local_rank % device_count`` (its index among the ranks on its machine).

NCCL work is asynchronous: a collective is queued on this communicator's own stream,
after an event that orders it behind the work already queued on the current stream (the
gradient copied into a bucket); an event recorded after it is what ``Request.wait``
polls, with the deadline.  A collective that times out aborts the NCCL communicator
(``ncclCommAbort``), the documented way to release a rank stuck on a dead peer.

Without a GPU this module is exercised against ``tinygen.testing.fake_nccl`` (a fake
cupy + NCCL over MPI).  Its one real-GPU run (session 11, an H200 with cupy 14.2) failed
at start-up: cupy 14 gives the unique id as bytes, not the tuple of ints older cupy gave.
Both forms are handled now (``pack_unique_id``) and faked in the tests; the real-GPU test
(marked ``cuda``, tests/distributed/test_nccl.py) has not run since the fix.
"""
import numpy as np

from .comm import Communicator, DistributedError, Request
from .mpi import MPICommunicator

UNIQUE_ID_BYTES = 128


def import_nccl():
    try:
        from cupy.cuda import nccl
    except ImportError as exc:
        raise DistributedError(f"the NCCL backend needs cupy built with NCCL ({exc}); "
                               "pip install 'tinygen[cuda]' (cupy wheels ship NCCL support)"
                               ) from None
    if not getattr(nccl, "available", True):
        raise DistributedError("cupy.cuda.nccl is present but libnccl was not found")
    return nccl


# cupy < 14 gives the unique id as a tuple of 128 C chars (ints in -128..127) and wants the
# same back; cupy >= 14 gives and wants ``bytes``.  Rank 0 packs it as a form tag and the
# 128 raw bytes, so every rank rebuilds the form its own cupy (the same build) accepts.
_ID_FORMS = {0: "tuple", 1: "bytes"}


def pack_unique_id(uid):
    """``[form tag, 128 bytes]`` as uint8, from what ``nccl.get_unique_id()`` returned."""
    if isinstance(uid, (bytes, bytearray)):
        form, raw = 1, np.frombuffer(bytes(uid), dtype=np.uint8)
    elif isinstance(uid, tuple):
        form, raw = 0, np.asarray(uid, dtype=np.int64).astype(np.int8).view(np.uint8)
    else:
        raise DistributedError("nccl.get_unique_id() returned a "
                               f"{type(uid).__name__}; expected bytes or a tuple of ints")
    if raw.size != UNIQUE_ID_BYTES:
        raise DistributedError(f"an NCCL unique id has {UNIQUE_ID_BYTES} bytes, "
                               f"nccl.get_unique_id() gave {raw.size}")
    return np.concatenate([[form], raw]).astype(np.uint8)


def unpack_unique_id(packed):
    """The inverse of :func:`pack_unique_id`: the id in the form cupy gave it."""
    form, raw = _ID_FORMS.get(int(packed[0])), packed[1:]
    if form is None:
        raise DistributedError(f"the broadcast NCCL unique id has an unknown form tag "
                               f"{int(packed[0])}")
    if form == "bytes":
        return raw.tobytes()
    return tuple(int(v) for v in raw.view(np.int8))


def device_pointer(array):
    """The device address of a contiguous cupy (or fake cupy) array."""
    return int(array.__cuda_array_interface__["data"][0])


class NCCLCommunicator(Communicator):
    backend = "nccl"

    def __init__(self, timeout=None, host=None, nccl=None):
        from ..backend import cuda

        if not cuda.is_available():
            raise DistributedError("the NCCL backend needs a GPU and cupy: "
                                   f"{cuda._import_error}")
        self._cupy = cuda.cupy
        self.host = host if host is not None else MPICommunicator(timeout=timeout)
        self.rank, self.size = self.host.rank, self.host.size
        self.timeout = self.host.timeout if timeout is None else float(timeout)
        nccl = import_nccl() if nccl is None else nccl
        self._nccl = nccl
        count = self._cupy.cuda.runtime.getDeviceCount()
        self.device = self.host.local_rank() % count
        self._cupy.cuda.Device(self.device).use()
        packed = np.zeros(1 + UNIQUE_ID_BYTES, dtype=np.uint8)
        if self.rank == 0:
            packed[:] = pack_unique_id(nccl.get_unique_id())
        self.host.broadcast_(packed, 0)
        self._comm = nccl.NcclCommunicator(self.size, unpack_unique_id(packed), self.rank)
        self._stream = self._cupy.cuda.Stream(non_blocking=True)
        self._dtypes = {np.dtype(np.float16): nccl.NCCL_FLOAT16,
                        np.dtype(np.float32): nccl.NCCL_FLOAT32,
                        np.dtype(np.float64): nccl.NCCL_FLOAT64,
                        np.dtype(np.int32): nccl.NCCL_INT32,
                        np.dtype(np.int64): nccl.NCCL_INT64,
                        np.dtype(np.uint8): nccl.NCCL_UINT8,
                        np.dtype(np.int8): nccl.NCCL_INT8}
        self._ops = {"sum": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}

    # --- collectives ------------------------------------------------------------------------
    def start_allreduce(self, array, op="sum"):
        self._check_op(op)
        if type(array) is np.ndarray:
            return self.host.start_allreduce(array, op)
        dtype = self._check(array, "allreduce")
        ptr = device_pointer(array)
        return self._enqueue(
            lambda s: self._comm.allReduce(ptr, ptr, array.size, dtype, self._ops[op], s),
            f"NCCL allreduce({op}) of {array.size} x {array.dtype}", array)

    def start_broadcast(self, array, root=0):
        if not 0 <= root < self.size:
            raise ValueError(f"root {root} is not a rank of a {self.size}-process job")
        if type(array) is np.ndarray:
            return self.host.start_broadcast(array, root)
        dtype = self._check(array, "broadcast")
        ptr = device_pointer(array)
        return self._enqueue(
            lambda s: self._comm.broadcast(ptr, ptr, array.size, dtype, root, s),
            f"NCCL broadcast of {array.size} x {array.dtype} from rank {root}", array)

    def start_barrier(self):
        self._cupy.cuda.get_current_stream().synchronize()
        return self.host.start_barrier()

    def abort(self, code=1):
        self._comm.abort()
        self.host.abort(code)

    # --- plumbing -----------------------------------------------------------------------------
    def _check(self, array, what):
        if not isinstance(array, self._cupy.ndarray):
            raise TypeError(f"NCCL {what}: expected a cupy or numpy array, got "
                            f"{type(array).__name__}")
        if not array.flags.c_contiguous:
            raise ValueError(f"NCCL {what}: the array must be C-contiguous (shape "
                             f"{array.shape}, strides {array.strides})")
        try:
            return self._dtypes[np.dtype(array.dtype)]
        except KeyError:
            raise TypeError(f"NCCL {what}: dtype {array.dtype} is not supported") from None

    def _enqueue(self, launch, what, array):
        cuda = self._cupy.cuda
        current = cuda.get_current_stream()
        ready = cuda.Event(disable_timing=True)
        ready.record(current)
        self._stream.wait_event(ready)  # after the work that filled ``array``
        launch(self._stream.ptr)
        done = cuda.Event(disable_timing=True)
        done.record(self._stream)
        # later work on the current stream must see the result
        return Request(self, what, lambda: done.done, array,
                       finish=lambda: current.wait_event(done), cancel=self._comm.abort)
