"""``train(..., init_from=RUN)`` / ``tinygen train --init-from RUN``: a new run that
starts from another run's weights (a fine-tune) and nothing else of it."""
import json

import numpy as np
import pytest

from tinygen.cli import main
from tinygen.serialization import CheckpointError
from tinygen.training import CHECKPOINT_NAME, ConfigError, load_checkpoint, train

from .test_runner import SMALL, assert_same_state, params, run


@pytest.fixture
def source(tiny, tmp_path):
    """A one-epoch run whose weights the tests start from."""
    return run(tiny, tmp_path / "source", 1)


def test_starts_from_the_source_weights_and_nothing_else(tiny, tmp_path, source):
    # lr so small that Adam's steps vanish next to the weights: the fine-tune ends
    # where it started, so its weights show where that was
    tuned = train(tiny, {**SMALL, "epochs": 1, "lr": 1e-30}, out=tmp_path / "tuned",
                  init_from=tmp_path / "source", progress=False, log=None)
    fresh = train(tiny, {**SMALL, "epochs": 1, "lr": 1e-30}, out=tmp_path / "fresh",
                  progress=False, log=None)
    want, got, init = params(source.experiment), params(tuned.experiment), \
        params(fresh.experiment)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-20, err_msg=name)
    assert any(not np.allclose(init[n], want[n]) for n in want)  # so the test can fail
    # counters, schedules and the optimizer start afresh: 4 steps of 16 of 64 images
    assert tuned.experiment.steps == 4
    ckpt = load_checkpoint(tmp_path / "tuned" / CHECKPOINT_NAME)
    assert ckpt["step"] == 4 and ckpt["epoch"] == 1
    recorded = ckpt["config"]["init_from"]
    assert recorded == {"checkpoint": str(tmp_path / "source" / CHECKPOINT_NAME),
                        "epoch": 1, "step": 4}
    metrics = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    assert metrics["config"]["init_from"] == recorded


def test_a_fine_tune_resumes_bit_for_bit(tiny, tmp_path, source):
    straight = run(tiny, tmp_path / "a", 2, init_from=tmp_path / "source")
    run(tiny, tmp_path / "b", 1, init_from=tmp_path / "source" / CHECKPOINT_NAME)
    # the source changes after the fine-tune started: a resume must not read it again
    run(tiny, tmp_path / "source", 2, resume=True)
    resumed = run(tiny, tmp_path / "b", 2, resume=True, init_from=tmp_path / "source")
    assert_same_state(straight, resumed)
    again = run(tiny, tmp_path / "a", 3, resume=True)  # --init-from may be left out
    assert again.history.epochs[-1]["epoch"] == 3


def test_resume_names_another_source(tiny, tmp_path, source):
    run(tiny, tmp_path / "other", 1)
    run(tiny, tmp_path / "tuned", 1, init_from=tmp_path / "source")
    with pytest.raises(ConfigError, match="started from .*source.*not from it"):
        run(tiny, tmp_path / "tuned", 2, resume=True, init_from=tmp_path / "other")
    with pytest.raises(ConfigError, match="started from 'a fresh initialisation'"):
        run(tiny, tmp_path / "other", 2, resume=True, init_from=tmp_path / "source")


def test_weights_that_do_not_fit_name_the_differing_option(tiny, tmp_path, source):
    with pytest.raises(ConfigError) as e:
        train(tiny, {**SMALL, "epochs": 1, "hidden": 12}, out=tmp_path / "wide",
              init_from=tmp_path / "source", progress=False, log=None)
    msg = str(e.value)
    assert "hidden=8 there, 12 here" in msg and "--init-from" in msg
    assert "limit" not in msg.split("(")[0]  # not an architecture option: not named
    assert not (tmp_path / "wide" / CHECKPOINT_NAME).exists()


def test_a_run_of_another_model(tiny, tmp_path, source):
    with pytest.raises(ConfigError, match=f"is a run of model {tiny!r}; a 'classifier' run"):
        train("classifier", {"epochs": 1, "limit": 64}, out=tmp_path / "c",
              init_from=tmp_path / "source", progress=False, log=None)


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_no_source_checkpoint(tiny, tmp_path, where):
    path = tmp_path / where
    if where == "empty":
        path.mkdir()
    with pytest.raises(CheckpointError, match=str(path)):
        run(tiny, tmp_path / "tuned", 1, init_from=path)


def test_cli_fine_tunes_a_vae_with_another_bound(tmp_path, subset_dir, capsys):
    common = ["--limit", "128", "--test-limit", "20", "--batch-size", "64", "--data",
              str(subset_dir), "--no-progress", "-o", "hidden=[16]", "-o", "latent_dim=4",
              "-o", "iwae_k=2"]
    assert main(["train", "vae-mlp", "--epochs", "1", "--out", str(tmp_path / "a"),
                 *common]) == 0
    rc = main(["train", "vae-mlp", "--epochs", "1", "--out", str(tmp_path / "b"),
               "--init-from", str(tmp_path / "a"), "-o", "train_k=3", *common])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"initialised vae-mlp from {tmp_path / 'a' / CHECKPOINT_NAME} (epoch 1, step 2)" \
        in out
    config = json.loads((tmp_path / "b" / "metrics.json").read_text())["config"]
    assert config["train_k"] == 3 and config["init_from"]["step"] == 2
