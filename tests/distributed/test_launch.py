"""Whole jobs under mpiexec, launched from the plain pytest run: `tinygen train
--distributed` on two ranks follows the one-process run and only rank 0 writes; a rank
that dies or hangs ends the job with a clear error instead of a hang."""
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
       "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
ENV.pop("PYTEST_XDIST_WORKER", None)
TINYGEN = [sys.executable, "-c", "import sys; from tinygen.cli import main; "
           "sys.exit(main(sys.argv[1:]))"]


def _mpiexec(mpiexec, n, args, timeout=240, **kw):
    return subprocess.run([mpiexec, "-n", str(n), "--oversubscribe", *args],
                          capture_output=True, text=True, env=ENV, timeout=timeout, **kw)


def test_train_distributed_follows_one_process(own_mpiexec, tmp_path):
    common = ["vae", "--epochs", "1", "--limit", "64", "--batch-size", "16", "--test-limit",
              "10", "-o", "iwae_k=2", "--no-progress", "-o", "channels=[4,8]",
              "-o", "hidden=16"]
    one = subprocess.run([*TINYGEN, "train", *common, "--out",
                          str(tmp_path / "one")], capture_output=True, text=True, env=ENV,
                         timeout=240)
    assert one.returncode == 0, one.stderr
    two = _mpiexec(own_mpiexec, 2, [*TINYGEN, "train", *common,
                                    "--distributed", "--out", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr + two.stdout
    assert two.stdout.count("wrote ") == 1  # rank 0 reports, rank 1 is silent
    a = json.loads((tmp_path / "one" / "metrics.json").read_text())["epochs"][0]["losses"]
    b = json.loads((tmp_path / "two" / "metrics.json").read_text())["epochs"][0]["losses"]
    for k in a:  # float32 training: the same steps up to float32 rounding
        assert b[k] == pytest.approx(a[k], rel=1e-4), k
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one").iterdir())

    # every rank resumes from rank 0's checkpoint, and goes on as one process would
    more = ["--epochs", "2", "--resume"]
    one = subprocess.run([*TINYGEN, "train", *common, *more, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=ENV, timeout=240)
    assert one.returncode == 0, one.stderr
    two = _mpiexec(own_mpiexec, 2, [*TINYGEN, "train", *common, *more, "--distributed",
                                    "--out", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr + two.stdout
    assert "resuming vae" in two.stdout
    a = json.loads((tmp_path / "one" / "metrics.json").read_text())["epochs"][1]["losses"]
    b = json.loads((tmp_path / "two" / "metrics.json").read_text())["epochs"][1]["losses"]
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-4), k


SCRIPT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from tinygen.distributed import DistributedError, abort_job, init
    comm = init("cpu", timeout=2)
    comm.barrier()
    if comm.rank == 1:
        if sys.argv[1] == "die":
            os._exit(3)          # killed without a word
        time.sleep(600)          # hangs
    try:
        comm.allreduce_(np.ones(3))
    except DistributedError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        abort_job(2)
""")


@pytest.mark.parametrize("how", ["die", "hang"])
def test_a_dead_or_hung_rank_ends_the_job(own_mpiexec, tmp_path, how):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    start = time.monotonic()
    run = _mpiexec(own_mpiexec, 2, [sys.executable, str(script), how], timeout=120)
    assert run.returncode != 0
    assert time.monotonic() - start < 60
    if how == "hang":
        assert "allreduce(sum) of 3 x float64 on rank 0 of 2 did not complete within 2 s" \
            in run.stderr
