"""Data-parallel training over an engine people already run: MPI on CPUs, NCCL on GPUs.

    mpiexec -n 2 tinygen train vae --distributed

    comm = tinygen.distributed.init("cpu")       # MPI through mpi4py (numpy buffers)
    comm = tinygen.distributed.init("cuda")      # NCCL through cupy.cuda.nccl (cupy buffers)

What each piece does (one module each):

comm             the ``Communicator`` interface (non-blocking collectives waited on with a
                 deadline: ``CollectiveTimeout`` instead of a hang), ``LocalCommunicator``
mpi / nccl       the two backends
reducer          ``broadcast_module_`` (rank 0's start) and ``GradientReducer`` (gradients
                 averaged in fixed-order buckets, optionally overlapped with backward)
sharded_random   ``ShardedGenerator``: per-sample noise independent of the split
training         ``DistributedRun``: what the training runner does differently
``tinygen.nn.SyncBatchNorm`` and ``BatchLoader(rank=, world_size=)`` complete the set.
"""
from .comm import (Communicator, LocalCommunicator, CollectiveTimeout, DistributedError,
                   Request, DEFAULT_TIMEOUT, TIMEOUT_ENV)
from .mpi import MPICommunicator, mpi_available
from .reducer import GradientReducer, broadcast_module_, DEFAULT_BUCKET_BYTES
from .sharded_random import ShardedGenerator

__all__ = ["init", "abort_job", "world_rank", "Communicator", "LocalCommunicator",
           "MPICommunicator", "Request", "CollectiveTimeout", "DistributedError",
           "GradientReducer", "broadcast_module_", "ShardedGenerator", "mpi_available",
           "DEFAULT_BUCKET_BYTES", "DEFAULT_TIMEOUT", "TIMEOUT_ENV"]

BACKENDS = ("mpi", "nccl", "local")


def init(device="cpu", backend=None, timeout=None):
    """The communicator of this process's job: NCCL for ``device='cuda'``, MPI for
    ``'cpu'`` (``backend`` overrides: 'mpi', 'nccl' or 'local' for one process)."""
    from ..backend import normalize_device

    device = normalize_device(device)
    backend = backend or ("nccl" if device == "cuda" else "mpi")
    if backend == "mpi":
        return MPICommunicator(timeout=timeout)
    if backend == "nccl":
        if device != "cuda":
            raise DistributedError("the NCCL backend moves GPU arrays; use backend='mpi' "
                                   "for device 'cpu'")
        from .nccl import NCCLCommunicator

        return NCCLCommunicator(timeout=timeout)
    if backend == "local":
        return LocalCommunicator(timeout=timeout)
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def abort_job(code=1):
    """End every rank of this MPI job (after an error on this rank, which would leave the
    others waiting in a collective).  Does nothing outside a multi-process MPI job."""
    import sys

    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return
    if mpi.COMM_WORLD.Get_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        mpi.COMM_WORLD.Abort(code)


def world_rank():
    """This process's rank in the MPI job (0 outside one)."""
    import sys

    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized():
        return 0
    return mpi.COMM_WORLD.Get_rank()
