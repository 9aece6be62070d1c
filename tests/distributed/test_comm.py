"""The communicator interface: the MPI backend (2 ranks under mpiexec) and the 1-process
stand-in obey the same contract; a collective that a rank never joins times out with an
error that names it instead of hanging."""
import time

import numpy as np
import pytest

from tinygen.distributed import (CollectiveTimeout, DistributedError, LocalCommunicator,
                                 init)


def test_allreduce_sum_max_min_are_over_ranks(comm):
    r, R = comm.rank, comm.size
    x = np.arange(6, dtype=np.float64) + 10.0 * r
    assert comm.allreduce_(x.copy()).tolist() == \
        (np.arange(6) * R + 10.0 * R * (R - 1) / 2).tolist()
    assert comm.allreduce_(x.copy(), "max").tolist() == (np.arange(6) + 10.0 * (R - 1)).tolist()
    assert comm.allreduce_(x.copy(), "min").tolist() == np.arange(6.0).tolist()
    ints = comm.allreduce_(np.array([1, r], dtype=np.int64))
    assert ints.tolist() == [R, R * (R - 1) // 2]


def test_allreduce_is_in_place_and_refuses_strided_buffers(comm):
    x = np.ones(4)
    assert comm.allreduce_(x) is x or comm.size == 1
    with pytest.raises(ValueError, match="unknown reduction 'mean'"):
        comm.allreduce_(np.ones(2), "mean")
    if comm.backend == "mpi":
        with pytest.raises(ValueError, match="C-contiguous"):
            comm.allreduce_(np.ones((4, 4))[:, 1])


def test_broadcast_gives_every_rank_roots_array(comm):
    x = np.full(5, float(comm.rank + 1))
    comm.broadcast_(x, root=0)
    assert x.tolist() == [1.0] * 5
    if comm.size > 1:
        y = np.full(3, comm.rank, dtype=np.int32)
        comm.broadcast_(y, root=comm.size - 1)
        assert y.tolist() == [comm.size - 1] * 3
    with pytest.raises(ValueError, match="root"):
        comm.broadcast_(np.ones(1), root=comm.size)


def test_broadcast_json_and_check_same(comm):
    doc = {"loss": 1.5, "rank": comm.rank} if comm.rank == 0 else None
    assert comm.broadcast_json(doc) == {"loss": 1.5, "rank": 0}
    comm.check_same(3.0, "a constant")
    if comm.size > 1:
        with pytest.raises(DistributedError, match="ranks disagree on the rank"):
            comm.check_same(float(comm.rank), "the rank")


def test_timeout_names_the_collective_and_rank(comm2):
    """Rank 1 joins the allreduce late: rank 0 must raise CollectiveTimeout (not hang);
    its request stays valid and completes once rank 1 arrives."""
    x = np.ones(3)
    if comm2.rank == 0:
        with pytest.raises(CollectiveTimeout,
                           match=r"allreduce\(sum\) of 3 x float64 on rank 0 of 2 did not "
                                 r"complete within 0.3 s: another rank has died") as info:
            comm2.start_allreduce(x).wait(timeout=0.3)
        request = info.value.request
    else:
        time.sleep(1.0)
        request = comm2.start_allreduce(x)
    assert request.wait(timeout=60).tolist() == [2.0, 2.0, 2.0]
    comm2.barrier()


def test_local_communicator_is_the_identity():
    c = LocalCommunicator(timeout=5)
    x = np.arange(3.0)
    assert c.allreduce_(x) is x and x.tolist() == [0.0, 1.0, 2.0]
    assert (c.rank, c.size, c.timeout) == (0, 1, 5.0)
    c.barrier()
    assert init("cpu", backend="local").size == 1
    with pytest.raises(ValueError, match="unknown backend 'gloo'"):
        init("cpu", backend="gloo")
    with pytest.raises(DistributedError, match="NCCL backend moves GPU arrays"):
        init("cpu", backend="nccl")


def test_bad_timeout_setting_is_named(monkeypatch):
    monkeypatch.setenv("TINYGEN_DIST_TIMEOUT", "soon")
    with pytest.raises(DistributedError, match="TINYGEN_DIST_TIMEOUT='soon' is not a number"):
        LocalCommunicator()
