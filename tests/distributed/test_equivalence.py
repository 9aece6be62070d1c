"""The acceptance test of data parallelism: in float64, R ranks with batch B/R each (and
batch norm synchronised) take the same steps as one process with batch B -- the same
losses and the same weights, to 1e-10, after several steps -- for the conv VAE (with
batch norm), DCGAN (batch norm in G and D) and WGAN-GP (the penalty's double backward).

Each rank computes the one-process run itself (the whole batch, no communicator), then
the data-parallel run on its shard, and compares; a final check that every rank holds
the same weights guards against ranks agreeing with the reference by accident."""
import numpy as np
import pytest

from tinygen.data import BatchLoader
from tinygen.distributed.training import DistributedRun
from tinygen.models import get_experiment

B, STEPS, TOL = 8, 3, 1e-10


def _images(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), rng.integers(0, 10, n))


def _experiment(name, config):
    exp = get_experiment(name)({"seed": 3, **config})
    for module in exp.modules().values():
        module.double()
    return exp


def _run(name, config, dist, overlap=False):
    """Losses per step and the final state of every module."""
    exp = _experiment(name, config)
    shard = {}
    if dist is not None:
        dist.overlap = overlap
        dist.prepare(exp)
        shard = dist.loader_shard()
    loader = BatchLoader(_images(), B, seed=5, drop_last=True, **shard)
    generator = np.random.default_rng(11)
    losses = []
    for step, batch in zip(range(STEPS), loader):
        if dist is None:
            out = exp.train_step(batch, generator)
        else:
            out = dist.average(exp.train_step(batch, dist.generator(generator, batch)))
        losses.append(out)
    state = {f"{m}.{k}": np.array(t.data, dtype=np.float64)
             for m, module in exp.modules().items()
             for k, t in module.state_dict().items()}
    return losses, state


def _same(reference, distributed, what):
    ref_losses, ref_state = reference
    losses, state = distributed
    for step, (a, b) in enumerate(zip(ref_losses, losses)):
        assert a.keys() == b.keys()
        for k in a:
            assert abs(a[k] - b[k]) <= TOL * max(1.0, abs(a[k])), \
                f"{what}: step {step} loss {k}: {a[k]!r} vs {b[k]!r}"
    assert ref_state.keys() == state.keys()
    worst = max(((float(np.max(np.abs(ref_state[k] - state[k]), initial=0.0)), k)
                 for k in ref_state))
    assert worst[0] <= TOL, f"{what}: {worst[1]} differs by {worst[0]:.3g}"


def _ranks_agree(comm, state):
    for k, v in state.items():
        mine = np.ascontiguousarray(v.reshape(-1))
        high, low = comm.allreduce_(mine.copy(), "max"), comm.allreduce_(mine.copy(), "min")
        assert np.array_equal(high, low), f"ranks hold different {k}"


CONV_VAE = {"channels": [4, 8], "hidden": 16, "latent_dim": 4, "batchnorm": True}
DCGAN = {"latent_dim": 8, "g_channels": 4, "d_channels": 4}
WGAN_GP = {**DCGAN, "n_critic": 2}  # the penalty's double backward, G's sync batch norm


@pytest.mark.parametrize("name, config", [("vae", CONV_VAE), ("dcgan", DCGAN),
                                          ("wgan-gp", WGAN_GP)])
def test_ranks_with_split_batches_match_one_process(comm, name, config):
    reference = _run(name, config, None)
    distributed = _run(name, config, DistributedRun(comm))
    _same(reference, distributed, f"{name} on {comm.size} rank(s)")
    _ranks_agree(comm, distributed[1])


def test_overlapped_allreduce_matches_too(comm):
    """The all-reduce started from the backward hooks gives the same steps."""
    reference = _run("dcgan", DCGAN, None)
    distributed = _run("dcgan", DCGAN, DistributedRun(comm, bucket_bytes=2048), overlap=True)
    _same(reference, distributed, "dcgan with overlap")


def test_without_sync_batchnorm_the_runs_differ(comm2):
    """The check can fail: unsynchronised batch norm normalises each half by its own
    statistics, and the steps drift from the one-process run."""
    reference = _run("dcgan", DCGAN, None)
    distributed = _run("dcgan", DCGAN, DistributedRun(comm2, sync_batchnorm=False))
    with pytest.raises(AssertionError):
        _same(reference, distributed, "dcgan without sync BN")
