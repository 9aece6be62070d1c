"""The MPI backend: collectives of Open MPI (or any MPI) through mpi4py.

Buffers are passed to MPI as numpy arrays (the buffer protocol: no pickling, no copy);
every collective is MPI's non-blocking one (``Iallreduce``, ``Ibcast``, ``Ibarrier``)
polled with a deadline by ``Request.wait``.  Arrays on a GPU are staged through host
memory (correct, slow: the NCCL backend is the GPU path).

Launch with ``mpiexec -n R ...``; run as root only with Open MPI's
``--allow-run-as-root`` (or ``OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1``).
"""
import numpy as np

from .comm import Communicator, DistributedError, Request, default_timeout

INSTALL_HINT = ("install an MPI library and mpi4py: apt-get install openmpi-bin "
                "libopenmpi-dev, then pip install 'tinygen[mpi]'")


def import_mpi():
    """mpi4py's MPI module, or a DistributedError saying how to get it."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as exc:  # mpi4py missing, or no libmpi
        raise DistributedError(f"distributed training needs MPI ({exc}); {INSTALL_HINT}") \
            from None
    return MPI


def mpi_available():
    try:
        import_mpi()
    except DistributedError:
        return False
    return True


class MPICommunicator(Communicator):
    """All processes of ``comm`` (default MPI.COMM_WORLD, duplicated so that tinygen's
    messages never match a user's)."""

    backend = "mpi"

    def __init__(self, comm=None, timeout=None):
        MPI = import_mpi()
        self._MPI = MPI
        self._comm = (MPI.COMM_WORLD if comm is None else comm).Dup()
        self.rank, self.size = self._comm.Get_rank(), self._comm.Get_size()
        self.timeout = default_timeout() if timeout is None else float(timeout)
        self._ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    def local_rank(self):
        """This process's index among the ranks on its own machine (GPU selection)."""
        return self._node()[0]

    def local_size(self):
        """How many ranks run on this process's machine."""
        return self._node()[1]

    def _node(self):
        node = self._comm.Split_type(self._MPI.COMM_TYPE_SHARED)
        try:
            return node.Get_rank(), node.Get_size()
        finally:
            node.Free()

    # --- collectives ----------------------------------------------------------------------
    def start_allreduce(self, array, op="sum"):
        self._check_op(op)
        host, finish = self._host(array, "allreduce")
        req = self._comm.Iallreduce(self._MPI.IN_PLACE, host, op=self._ops[op])
        return Request(self, f"allreduce({op}) of {array.size} x {array.dtype}", req.Test,
                       array, finish)

    def start_broadcast(self, array, root=0):
        if not 0 <= root < self.size:
            raise ValueError(f"root {root} is not a rank of a {self.size}-process job")
        host, finish = self._host(array, "broadcast")
        req = self._comm.Ibcast(host, root=root)
        return Request(self, f"broadcast of {array.size} x {array.dtype} from rank {root}",
                       req.Test, array, finish)

    def start_barrier(self):
        req = self._comm.Ibarrier()
        return Request(self, "barrier", req.Test)

    def abort(self, code=1):
        self._comm.Abort(code)

    def _host(self, array, what):
        """``(numpy buffer MPI reads and writes, completion callback)``."""
        if type(array) is np.ndarray:
            if not array.flags.c_contiguous or not array.flags.writeable:
                raise ValueError(f"{what}: the array must be C-contiguous and writeable "
                                 f"(shape {array.shape}, strides {array.strides})")
            return array, None
        from ..backend import to_numpy

        staged = np.ascontiguousarray(to_numpy(array))  # a device array: via the host

        def copy_back():
            array[...] = _to_device_like(staged, array)

        return staged, copy_back


def _to_device_like(host, like):
    from ..backend import device_of, to_device

    return to_device(host, device_of(like))
