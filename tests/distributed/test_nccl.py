"""The NCCL backend.  No GPU was available to its author: here it runs against
``tinygen.testing.fake_nccl`` (fake cupy arrays, streams, events and an NCCL whose
communicator moves the data over this job's MPI communicator), and must agree with the
MPI backend collective for collective; a data-parallel step on the fake 'cuda' device
through it must match one process.  The test marked ``cuda`` runs on a real GPU only."""
import time

import numpy as np
import pytest

import tinygen as tg
from tinygen import nn, optim
from tinygen.backend import to_device, to_numpy
from tinygen.distributed import (CollectiveTimeout, DistributedError, GradientReducer,
                                 broadcast_module_)
from tinygen.distributed.nccl import NCCLCommunicator, pack_unique_id, unpack_unique_id
from tinygen.testing.fake_cuda import FakeCudaArray
from tinygen.testing.fake_nccl import fake_nccl_cuda


@pytest.fixture
def nccl(comm):
    with fake_nccl_cuda(comm) as module:
        yield NCCLCommunicator(host=comm, nccl=module)


def test_collectives_agree_with_the_mpi_backend(comm, nccl):
    assert (nccl.rank, nccl.size, nccl.backend) == (comm.rank, comm.size, "nccl")
    for dtype in (np.float32, np.float64, np.int64):
        for op in ("sum", "max", "min"):
            host = (np.arange(5) * (comm.rank + 1)).astype(dtype)
            device = to_device(host.copy(), "cuda")
            assert isinstance(device, FakeCudaArray)
            out = nccl.allreduce_(device, op)
            assert out is device
            np.testing.assert_array_equal(to_numpy(out), comm.allreduce_(host, op))
    device = to_device(np.full(3, comm.rank, dtype=np.float32), "cuda")
    nccl.broadcast_(device, root=comm.size - 1)
    assert to_numpy(device).tolist() == [comm.size - 1] * 3
    # numpy arrays take the host (MPI) path
    assert nccl.allreduce_(np.ones(2)).tolist() == [comm.size] * 2
    nccl.barrier()


@pytest.mark.parametrize("form", ["bytes", "tuple"])
def test_the_unique_id_reaches_every_rank_in_the_form_cupy_gave(comm, form):
    """cupy >= 14 gives and takes the id as bytes, older cupy as a tuple of 128 signed
    chars; the first real-GPU run failed on cupy 14's bytes.  The fake communicator
    rejects the wrong form and checks all ranks got the same id."""
    with fake_nccl_cuda(comm, unique_id=form) as module:
        uid = module.get_unique_id()
        packed = pack_unique_id(uid)
        assert packed.dtype == np.uint8 and packed.shape == (129,)
        back = unpack_unique_id(packed)
        assert type(back) is type(uid) and back == uid
        assert NCCLCommunicator(host=comm, nccl=module).size == comm.size
        with pytest.raises(TypeError, match="takes the unique id as"):
            module.NcclCommunicator(comm.size, tuple(packed[1:]) if form == "bytes"
                                    else packed[1:].tobytes(), comm.rank)


def test_a_malformed_unique_id_is_named():
    with pytest.raises(DistributedError, match="has 128 bytes, .* gave 127"):
        pack_unique_id(bytes(127))
    with pytest.raises(DistributedError, match="returned a list"):
        pack_unique_id([0] * 128)
    with pytest.raises(DistributedError, match="unknown form tag 7"):
        unpack_unique_id(np.full(129, 7, np.uint8))


def test_bad_arrays_are_named(nccl):
    with pytest.raises(ValueError, match="NCCL allreduce: the array must be C-contiguous"):
        nccl.allreduce_(to_device(np.ones((3, 3)), "cuda")[:, 1])
    with pytest.raises(TypeError, match="dtype bool is not supported"):
        nccl.allreduce_(to_device(np.ones(3, bool), "cuda"))
    with pytest.raises(ValueError, match="root 5 is not a rank"):
        nccl.broadcast_(to_device(np.ones(3), "cuda"), root=5)


def test_data_parallel_step_on_the_device_matches_one_process(comm, nccl):
    """Sync batch norm and the gradient buckets with device arrays through NCCL."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4 * comm.size, 3))

    def model():
        tg.manual_seed(0)
        return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(),
                             nn.Linear(4, 1)).double()

    reference = model()
    opt = optim.SGD(reference.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        reference(tg.tensor(x, dtype=tg.float64)).pow(2).mean().backward()
        opt.step()

    device = model().to(device="cuda")
    nn.SyncBatchNorm.convert_sync_batchnorm(device, nccl)
    broadcast_module_(device, nccl)
    opt = optim.SGD(device.parameters(), lr=0.1)
    GradientReducer(device.parameters(), nccl, bucket_bytes=64, overlap=True).attach(opt)
    n = 4
    shard = tg.tensor(x[comm.rank * n:(comm.rank + 1) * n], dtype=tg.float64, device="cuda")
    for _ in range(2):
        opt.zero_grad()
        device(shard).pow(2).mean().backward()
        opt.step()
    for a, b in zip(reference.state_dict().values(), device.state_dict().values()):
        assert b.device == "cuda"
        np.testing.assert_allclose(to_numpy(b.data), a.data, rtol=1e-12, atol=1e-12)


def test_a_late_rank_times_out_and_aborts_nccl(comm2, nccl):
    x = to_device(np.ones(4), "cuda")
    if comm2.rank == 0:
        with pytest.raises(CollectiveTimeout, match=r"NCCL allreduce\(sum\) of 4 x float64 "
                                                    r"on rank 0 of 2 did not complete"):
            nccl.start_allreduce(x).wait(timeout=0.3)
        assert nccl._comm.aborted  # like ncclCommAbort: this communicator is finished
    else:
        time.sleep(1.0)
        nccl.start_allreduce(x)
    comm2.barrier(timeout=60)
    time.sleep(0.2)  # let rank 1's request complete against rank 0's before moving on


@pytest.mark.cuda
def test_real_nccl_allreduce_on_a_gpu(comm):
    if not tg.cuda.is_available():
        pytest.skip("needs a GPU with cupy (and NCCL)")
    from tinygen.distributed import init

    real = init("cuda")
    x = to_device(np.full(1000, comm.rank + 1.0), "cuda")
    real.allreduce_(x)
    assert float(to_numpy(x)[0]) == comm.size * (comm.size + 1) / 2
