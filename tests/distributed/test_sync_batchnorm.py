"""Synchronised batch norm: statistics, running statistics, gradients and gradients of
gradients over R ranks equal those of one process holding the whole batch."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
from tinygen import nn
from tinygen.distributed import LocalCommunicator
from tinygen.ops.collective import all_reduce
from tinygen.ops.batch_norm import batch_norm, sync_batch_norm
from tinygen.testing import gradcheck, gradgradcheck


def t64(a, grad=False):
    return tg.tensor(np.asarray(a, dtype=np.float64), dtype=tg.float64, requires_grad=grad)


def _shard(comm, a):
    n = a.shape[0] // comm.size
    return a[comm.rank * n:(comm.rank + 1) * n]


@pytest.mark.parametrize("shape", [(8, 3), (4, 2, 5), (4, 3, 3, 2)])
def test_forward_backward_and_double_backward_match_whole_batch(comm, shape):
    rng = np.random.default_rng(len(shape))
    shape = (shape[0] * comm.size,) + shape[1:]
    x = rng.standard_normal(shape) * 3 + 1
    up, c = rng.standard_normal(shape), rng.standard_normal(shape)
    w0, b0 = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])

    def penalty(y, x, w, up, c):
        (gx,) = tg.grad((y * up).sum(), x, create_graph=True)
        return (gx * gx * c).sum(), gx

    # one process, the whole batch
    x1, w1, b1 = t64(x, True), t64(w0, True), t64(b0, True)
    rm1, rv1 = t64(np.zeros(shape[1])), t64(np.ones(shape[1]))
    y1 = batch_norm(x1, rm1, rv1, w1, b1, True, 0.1, 1e-5)
    p1, gx1 = penalty(y1, x1, w1, t64(up), t64(c))
    gw1, gxx1 = tg.grad(p1, (w1, x1))

    # this rank's shard
    x2, w2, b2 = t64(_shard(comm, x), True), t64(w0, True), t64(b0, True)
    rm2, rv2 = t64(np.zeros(shape[1])), t64(np.ones(shape[1]))
    y2 = sync_batch_norm(x2, rm2, rv2, w2, b2, 0.1, 1e-5, comm)
    p2, gx2 = penalty(y2, x2, w2, t64(_shard(comm, up)), t64(_shard(comm, c)))
    gw2, gxx2 = tg.grad(p2, (w2, x2))

    close = dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(y2.numpy(), _shard(comm, y1.numpy()), **close)
    np.testing.assert_allclose(rm2.numpy(), rm1.numpy(), **close)
    np.testing.assert_allclose(rv2.numpy(), rv1.numpy(), **close)
    np.testing.assert_allclose(gx2.numpy(), _shard(comm, gx1.numpy()), **close)
    np.testing.assert_allclose(gxx2.numpy(), _shard(comm, gxx1.numpy()), **close)
    # each rank holds its share of the weight gradient; the shares add up
    np.testing.assert_allclose(comm.allreduce_(gw2.numpy().copy()), gw1.numpy(), **close)
    # the fused (no graph) first-order backward too
    loss = (sync_batch_norm(x2, None, None, w2, b2, 0.1, 1e-5, comm) * t64(_shard(comm, up))).sum()
    loss.backward()
    np.testing.assert_allclose(x2.grad.numpy(), _shard(comm, gx1.numpy()), **close)


@settings(max_examples=4)
@given(n=st.integers(2, 4), c=st.integers(1, 3), length=st.integers(1, 3),
       affine=st.booleans())
def test_gradcheck_and_gradgradcheck_on_one_rank(n, c, length, affine):
    comm = LocalCommunicator()
    rng = np.random.default_rng(n * 100 + c * 10 + length)
    x = t64(rng.standard_normal((n, c, length)), True)
    params = (t64(rng.standard_normal(c) + 2, True), t64(rng.standard_normal(c), True)) \
        if affine else ()

    def f(x, *wb):
        w, b = wb if wb else (None, None)
        return sync_batch_norm(x, None, None, w, b, 0.1, 1e-5, comm)

    gradcheck(f, (x, *params))
    gradgradcheck(f, (x, *params))


def test_all_reduce_op_backward_is_all_reduce(comm):
    x = t64(np.arange(3.0) + comm.rank, True)
    y = all_reduce(x, comm)
    assert y.numpy().tolist() == (np.arange(3.0) * comm.size + comm.size * (comm.size - 1) / 2).tolist()
    (y * t64([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.numpy().tolist() == [1.0 * comm.size, 2.0 * comm.size, 3.0 * comm.size]


def test_module_option_and_conversion(comm):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4 * comm.size, 2, 3, 3))
    plain = nn.BatchNorm2d(2, momentum=None, dtype=tg.float64)
    synced = nn.SyncBatchNorm(2, momentum=None, comm=comm, dtype=tg.float64)
    for _ in range(2):
        y1 = plain(t64(x))
        y2 = synced(t64(_shard(comm, x)))
    np.testing.assert_allclose(y2.numpy(), _shard(comm, y1.numpy()), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(synced.running_var.numpy(), plain.running_var.numpy(), rtol=1e-12)
    assert int(synced.num_batches_tracked.item()) == 2
    synced.eval()  # evaluation uses the (identical) running statistics, no collective
    np.testing.assert_allclose(synced(t64(x[:3])).numpy(), plain.eval()(t64(x[:3])).numpy())

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
    params = [id(p) for p in model.parameters()]
    keys = list(model.state_dict())
    nn.SyncBatchNorm.convert_sync_batchnorm(model, comm)
    assert model[1].comm is comm and [id(p) for p in model.parameters()] == params
    assert list(model.state_dict()) == keys
    with pytest.raises(ValueError, match="SyncBatchNorm needs a communicator"):
        nn.SyncBatchNorm(2)


def test_bad_inputs_are_named(comm):
    with pytest.raises(ValueError, match=r"sync_batch_norm: expected a 2-D \(N, C\), 3-D"):
        sync_batch_norm(t64(np.ones(3)), None, None, None, None, 0.1, 1e-5, comm)
    with pytest.raises(ValueError, match="sync_batch_norm: weight should contain 2 elements"):
        sync_batch_norm(t64(np.ones((2, 2))), None, None, t64(np.ones(3)), None, 0.1, 1e-5, comm)
    if comm.size == 1:
        with pytest.raises(ValueError, match="more than 1 value per channel over all ranks"):
            sync_batch_norm(t64(np.ones((1, 2))), None, None, None, None, 0.1, 1e-5, comm)
