"""The shared runner: outputs of a run, bit-for-bit resume, and clear errors."""
import json

import numpy as np
import pytest
from PIL import Image

import tinygen as tg
from tinygen.data import DataError
from tinygen.serialization import CheckpointError
from tinygen.training import (
    CHECKPOINT_NAME, ConfigError, ModelMismatchError, load_checkpoint, train,
)
from tinygen import training

SMALL = {"limit": 64, "test_limit": 40, "n_samples": 9}


def run(tiny, out, epochs, **kw):
    return train(tiny, {**SMALL, "epochs": epochs}, out=out, progress=False, log=None, **kw)


def params(experiment):
    return {f"{m}.{k}": v.numpy() for m, mod in experiment.modules().items()
            for k, v in mod.state_dict().items()}


def assert_same_state(a, b):
    pa, pb = params(a.experiment), params(b.experiment)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), k
    sa, sb = a.history.state_dict(), b.history.state_dict()
    np.testing.assert_array_equal(sa["steps"], sb["steps"])
    assert sa["losses"].keys() == sb["losses"].keys()
    for k in sa["losses"]:
        np.testing.assert_array_equal(sa["losses"][k], sb["losses"][k])  # NaN == NaN here


def test_outputs_of_a_run(tiny, tmp_path):
    result = run(tiny, tmp_path, 2)
    for name in ("checkpoint.npz", "samples.png", "samples_epoch001.png",
                 "samples_epoch002.png", "loss.png", "metrics.json"):
        assert (tmp_path / name).is_file(), name
    with Image.open(tmp_path / "samples.png") as im:
        im.verify()
    with Image.open(tmp_path / "samples.png") as im:
        # 9 samples -> 3x3 grid of 28x28 tiles, scaled 2x, padding 2
        assert im.size == (3 * (56 + 2) + 2, 3 * (56 + 2) + 2)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["model"] == tiny and metrics["epochs_completed"] == 2
    assert metrics["global_step"] == 2 * (64 // 16)
    assert metrics["config"]["limit"] == 64 and metrics["config"]["hidden"] == 8
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert set(metrics["epochs"][0]["losses"]) == {"loss", "half"}
    assert metrics["epochs"][0]["examples_per_second"] > 0
    assert metrics["metrics"] == metrics["epochs"][-1]["metrics"] == result.metrics
    # modules are in eval mode during evaluate, and back in train mode afterwards
    assert result.metrics["training_flag"] == 0.0
    assert result.experiment.model.training
    assert metrics["files"] == {"checkpoint": "checkpoint.npz", "samples": "samples.png",
                                "loss_plot": "loss.png"}


def test_loss_decreases(tiny, tmp_path):
    result = train(tiny, {"limit": 480, "epochs": 2, "test_limit": 40}, out=tmp_path,
                   progress=False, log=None)
    losses = result.history.losses["loss"]
    assert np.mean(losses[-10:]) < np.mean(losses[:5])


def test_resume_is_bit_for_bit(tiny, tmp_path):
    straight = run(tiny, tmp_path / "a", 2)
    run(tiny, tmp_path / "b", 1)
    # scramble every global random state between the two halves
    tg.manual_seed(12345)
    np.random.seed(1)
    resumed = run(tiny, tmp_path / "b", 2, resume=True)
    assert_same_state(straight, resumed)
    assert resumed.experiment.steps == straight.experiment.steps == 8
    ca = load_checkpoint(tmp_path / "a" / CHECKPOINT_NAME)
    cb = load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)
    assert ca["generator"] == cb["generator"] and ca["loader"] == cb["loader"]
    assert ca["global_rng"] == cb["global_rng"]
    for name in ("samples_epoch002.png", "samples.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert ma["metrics"] == mb["metrics"]
    assert [e["losses"] for e in ma["epochs"]] == [e["losses"] for e in mb["epochs"]]


def test_resume_with_nothing_left_changes_nothing(tiny, tmp_path):
    first = run(tiny, tmp_path, 1)
    again = run(tiny, tmp_path, 1, resume=True)
    assert_same_state(first, again)


def test_resume_may_not_change_the_recipe(tiny, tmp_path):
    run(tiny, tmp_path, 1)
    with pytest.raises(ConfigError, match="cannot change 'batch_size'"):
        train(tiny, {**SMALL, "batch_size": 32}, out=tmp_path, resume=True, progress=False)


def test_resume_without_checkpoint(tiny, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint to resume from") as e:
        run(tiny, tmp_path / "fresh", 1, resume=True)
    assert str(tmp_path / "fresh" / CHECKPOINT_NAME) in str(e.value)


def test_existing_run_is_not_overwritten_silently(tiny, tmp_path):
    run(tiny, tmp_path, 1)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(CheckpointError, match="--resume"):
        run(tiny, tmp_path, 1)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    run(tiny, tmp_path, 1, overwrite=True)


def test_checkpoint_of_another_model(tiny, tmp_path):
    run(tiny, tmp_path, 1)
    with pytest.raises(ModelMismatchError) as e:
        train("classifier", {"epochs": 2}, out=tmp_path, resume=True, progress=False)
    msg = str(e.value)
    assert repr(tiny) in msg and "'classifier'" in msg and str(tmp_path) in msg


def test_corrupt_checkpoint_on_resume(tiny, tmp_path):
    run(tiny, tmp_path, 1)
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CheckpointError) as e:
        run(tiny, tmp_path, 2, resume=True)
    assert str(path) in str(e.value)


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model 'no-such-model'; available: .*classifier"):
        train("no-such-model", {}, progress=False)


def test_unknown_option(tiny, tmp_path):
    with pytest.raises(ConfigError, match="unknown option 'hiddn'.*hidden"):
        train(tiny, {"hiddn": 3}, out=tmp_path, progress=False)


@pytest.mark.parametrize("options, match", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"device": "tpu"}, "device must be 'cpu' or 'cuda'"),
    ({"limit": 0}, "limit must be a positive integer"),
])
def test_bad_options(tiny, tmp_path, options, match):
    with pytest.raises(ConfigError, match=match):
        train(tiny, options, out=tmp_path, progress=False)


def test_unknown_dataset(tiny, tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'cifar10'"):
        train(tiny, {"dataset": "cifar10"}, out=tmp_path, progress=False)


def test_unreadable_data_path(tmp_path):
    missing = tmp_path / "no-data-here"
    with pytest.raises(DataError) as e:
        train("classifier", {"data": str(missing), "epochs": 1}, out=tmp_path / "run",
              progress=False)
    assert str(missing) in str(e.value)


def test_fewer_images_than_a_batch(tiny, tmp_path):
    with pytest.raises(ConfigError, match="fewer than one batch"):
        train(tiny, {"limit": 10, "batch_size": 16}, out=tmp_path, progress=False)


@pytest.mark.skipif(tg.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(training.DeviceError, match="--device cuda.*--device cpu"):
        train(tiny, {"device": "cuda"}, out=tmp_path, progress=False)


def test_progress_bar_and_log(tiny, tmp_path, capsys):
    lines = []
    train(tiny, {**SMALL, "epochs": 1}, out=tmp_path, progress=True, log=lines.append)
    err = capsys.readouterr().err
    assert "img/s" in err and "loss=" in err and "4/4" in err
    assert len(lines) == 1 and lines[0].startswith(f"{tiny} epoch 1/1: loss ")


def test_sample_and_evaluate_a_run(tiny, tmp_path):
    run(tiny, tmp_path, 1)
    path = training.sample_run(tmp_path, n=4, seed=3)
    assert path == tmp_path / "samples_seed3.png"
    with Image.open(path) as im:
        assert im.size == (2 * 58 + 2, 2 * 58 + 2)
    with pytest.raises(ConfigError, match="no --kind reconstructions"):
        training.sample_run(tmp_path, kind="reconstructions")
    metrics = training.evaluate_run(tmp_path, options={"test_limit": 20})
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["eval"]["metrics"] == metrics and doc["eval"]["test_images"] == 20
    assert doc["eval"]["options"] == {"test_limit": 20} and doc["eval"]["epoch"] == 1
    assert doc["metrics"]["accuracy"] == metrics["accuracy"]
    with pytest.raises(ConfigError, match="unknown option.*'iwae_k'.*'tiny-mlp-test'"):
        training.evaluate_run(tmp_path, options={"iwae_k": 10})
    # the eval entry survives further training
    run(tiny, tmp_path, 2, resume=True)
    assert "eval" in json.loads((tmp_path / "metrics.json").read_text())


def test_metrics_record_the_evaluation_info(tiny, tmp_path, monkeypatch):
    """Issue 11: what scored a run (e.g. the FD classifier's identity and accuracy) is
    in metrics.json, and stays there when the run is evaluated again or resumed."""
    from tiny_experiment import TinyExperiment

    info = {"fd_classifier": {"key": "abc", "test_accuracy": 0.9}}
    monkeypatch.setattr(TinyExperiment, "evaluation_info", lambda self: info, raising=False)
    run(tiny, tmp_path, 1)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["evaluation"] == info and doc["epochs_evaluated"] == 1
    assert doc["metrics_epoch"] == 1 and doc["epochs"][0]["evaluated"] is True


def test_the_runner_api_is_importable_from_tinygen_training():
    # training/ is split by job (config, loop, metrics_file, runs); callers import the
    # package, never a module of it.
    public = ("train", "TrainResult", "make_config", "BASE_CONFIG", "ConfigError", "DeviceError",
              "eval_mode", "load_run", "sample_run", "evaluate_run", "KINDS", "METRICS_NAME",
              "read_metrics", "CHECKPOINT_NAME", "CheckpointError")
    assert [name for name in public if not hasattr(training, name)] == []


def test_epoch_line_of_a_record_from_an_older_checkpoint():
    """Checkpoints written before the rate's key was renamed hold ``images_per_second``;
    an interrupted epoch resumed from one is still summed up with its rate."""
    from tinygen.training.loop import _summary

    record = {"epoch": 3, "losses": {"loss": 1.5}, "metrics": {}, "seconds": 2.0}
    assert _summary("vae", {**record, "images_per_second": 640.0}, 5, "img").endswith(
        "(2.0 s, 640 img/s)")
    assert _summary("wavenet", {**record, "examples_per_second": 12.0}, 5, "window").endswith(
        "(2.0 s, 12 window/s)")
