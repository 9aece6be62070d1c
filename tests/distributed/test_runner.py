"""The training runner with a DistributedRun: in-process, on this job's ranks (one in the
plain run).  The runs follow the one-process run; only rank 0 writes; rank 0's
metrics reach every rank."""
import json

import numpy as np
import pytest

from tinygen.distributed import DistributedError
from tinygen.models import get_experiment

from tinygen.distributed.training import DistributedRun
from tinygen.training import train

TINY = {"epochs": 1, "limit": 64, "batch_size": 16, "test_limit": 8, "iwae_k": 2,
        "channels": [4, 8], "hidden": 16, "n_samples": 4}


def test_runner_with_distributed_run(comm, tmp_path):
    one = train("vae", dict(TINY), out=tmp_path / "one", progress=False, log=None)
    out = tmp_path / f"dist{comm.size}"
    two = train("vae", dict(TINY), out=out, progress=False, log=None,
                distributed=DistributedRun(comm))
    a, b = one.history.epochs[0], two.history.epochs[0]
    for k in a["losses"]:
        assert b["losses"][k] == pytest.approx(a["losses"][k], rel=1e-4), k
    for k in ("test_elbo_nats", "test_iwae_nats"):  # computed on rank 0, shared
        assert b["metrics"][k] == pytest.approx(a["metrics"][k], rel=1e-4), k
    if comm.rank == 0:
        doc = json.loads((out / "metrics.json").read_text())
        assert doc["epochs_completed"] == 1 and (out / "checkpoint.npz").is_file()
    else:
        assert not out.exists()  # only rank 0 writes


def test_ranks_that_resumed_different_checkpoints_are_refused(comm2):
    exp = get_experiment("vae")({"channels": [4], "hidden": 8, "latent_dim": 2})
    if comm2.rank == 1:
        exp.model.encoder[0].weight.data[...] += 1.0  # another checkpoint
    with pytest.raises(DistributedError, match="the ranks disagree on the weights of 'vae'"):
        DistributedRun(comm2).prepare(exp, resumed_step=5)
    with pytest.raises(DistributedError, match="the ranks disagree on the step"):
        DistributedRun(comm2).prepare(exp, resumed_step=5 + comm2.rank)
    assert np.isfinite(exp.model.encoder[0].weight.numpy()).all()
