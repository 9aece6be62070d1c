"""GradientReducer and broadcast_module_: buckets, their fixed order, the average, the
overlapped variant, and the errors when ranks ran different graphs."""
import numpy as np
import pytest

import tinygen as tg
from tinygen import nn, optim
from tinygen.distributed import DistributedError, GradientReducer, broadcast_module_


def _model(seed):
    tg.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()


def _set_grads(model, value_of):
    for i, p in enumerate(model.parameters()):
        p.grad = tg.tensor(value_of(i, p.shape), dtype=tg.float64)


def test_bucket_layout_reverses_parameters_and_respects_the_size(comm):
    model = _model(0)  # 12 + 4 + 8 + 2 doubles
    r = GradientReducer(model.parameters(), comm, bucket_bytes=10 * 8)
    shapes = [[tuple(p.shape) for p in b.params] for b in r.buckets]
    assert shapes == [[(2,), (2, 4)], [(4,)], [(4, 3)]]
    assert sum(b.nbytes for b in r.buckets) == 26 * 8
    with pytest.raises(ValueError, match="listed twice"):
        GradientReducer([model[0].weight, model[0].weight], comm)
    with pytest.raises(ValueError, match="bucket_bytes must be positive"):
        GradientReducer(model.parameters(), comm, bucket_bytes=0)


@pytest.mark.parametrize("bucket_bytes", [8, 64, 2 ** 20])
def test_synchronize_averages_over_ranks(comm, bucket_bytes):
    model = _model(0)
    r, R = comm.rank, comm.size
    _set_grads(model, lambda i, s: np.full(s, 10.0 * i + r))
    reducer = GradientReducer(model.parameters(), comm, bucket_bytes=bucket_bytes)
    reducer.synchronize()
    for i, p in enumerate(model.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), np.full(p.shape, 10.0 * i + (R - 1) / 2))
    assert reducer.stats["bytes"] == 26 * 8 and reducer.stats["steps"] == 1


def test_attach_runs_before_the_optimizer_step(comm):
    model = _model(0)
    opt = optim.SGD(model.parameters(), lr=1.0)
    reducer = GradientReducer(model.parameters(), comm)
    handle = reducer.attach(opt)
    before = [p.numpy().copy() for p in model.parameters()]
    _set_grads(model, lambda i, s: np.full(s, float(comm.rank)))
    opt.step()
    for b, p in zip(before, model.parameters()):
        np.testing.assert_allclose(p.numpy(), b - (comm.size - 1) / 2)
    handle.remove()
    _set_grads(model, lambda i, s: np.full(s, float(comm.rank)))
    opt.step()  # no longer averaged
    assert float(model[0].bias.grad.numpy()[0]) == float(comm.rank)


def test_overlap_starts_buckets_during_backward_and_matches(comm):
    x = tg.tensor(np.random.default_rng(comm.rank).standard_normal((5, 3)), dtype=tg.float64)
    grads = {}
    for overlap in (False, True):
        model = _model(1)
        reducer = GradientReducer(model.parameters(), comm, bucket_bytes=8 * 8,
                                  overlap=overlap)
        started = []
        send = reducer._send
        reducer._send = lambda b: (started.append((b.index, model[0].weight.grad is None)),
                                   send(b))
        model(x).pow(2).sum().backward()
        reducer.synchronize()
        grads[overlap] = [p.grad.numpy().copy() for p in model.parameters()]
        if overlap:  # the last layer's bucket left before backward reached the first layer
            assert started[0] == (0, True)
            with pytest.raises(DistributedError, match="one backward per optimizer step"):
                model(x).sum().backward()
                model(x).sum().backward()
            reducer.remove()
    for a, b in zip(grads[False], grads[True]):
        np.testing.assert_array_equal(a, b)


def test_missing_gradients_stay_missing(comm):
    model = _model(0)
    model(tg.tensor(np.ones((1, 3)), dtype=tg.float64))[:, 0].sum().backward()
    model[2].bias.grad = None
    GradientReducer(model.parameters(), comm).synchronize()
    assert model[2].bias.grad is None and model[2].weight.grad is not None


def test_a_gradient_on_one_rank_only_is_an_error(comm2):
    model = _model(0)
    _set_grads(model, lambda i, s: np.ones(s))
    if comm2.rank == 1:
        model[0].bias.grad = None
    with pytest.raises(DistributedError, match=r"parameter 1 \(shape \(4,\)\) has a gradient "
                                               r"on 1 of 2 ranks"):
        GradientReducer(model.parameters(), comm2).synchronize()


def test_broadcast_module_gives_every_rank_rank0s_state(comm):
    model = _model(comm.rank)  # a different start on every rank
    model.add_module("bn", nn.BatchNorm1d(2).double())
    model.bn.running_mean.data[...] = comm.rank
    broadcast_module_(model, comm)
    reference = _model(0)
    for a, b in zip(model.parameters(), reference.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert model.bn.running_mean.numpy().tolist() == [0.0, 0.0]
