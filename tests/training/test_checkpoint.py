"""Training checkpoints: round trip of the whole state, and clear errors for files that
are missing, corrupt, not checkpoints, or of another model."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.data import BatchLoader
from tinygen.models import get_experiment
from tinygen.serialization import CheckpointError
from tinygen.training import (
    ModelMismatchError, capture, load_checkpoint, restore, save_checkpoint,
)
from tinygen.training.history import History

CONFIG = {"epochs": 1, "batch_size": 16, "lr": 1e-2, "hidden": 8, "dropout": 0.2,
          "seed": 0, "device": "cpu", "dataset": "fashion-mnist", "limit": 64,
          "test_limit": 20}


def trained(tiny, steps=3, seed=0):
    """An experiment, loader and generator after a few steps (optimizer state non-empty)."""
    tg.manual_seed(seed)
    exp = get_experiment(tiny)(dict(CONFIG))
    train_arrays, _ = exp.load_data()
    loader = BatchLoader(train_arrays, 16, seed=seed, drop_last=True)
    gen = np.random.default_rng(seed)
    history = History()
    for i, batch in zip(range(steps), loader):
        history.append(i + 1, 1, exp.train_step(batch, gen))
    return exp, loader, gen, history


def test_round_trip_restores_everything(tiny, tmp_path):
    exp, loader, gen, history = trained(tiny)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, exp, loader, gen, epoch=0, step=3, history=history.state_dict())
    expected_next = (gen.standard_normal(5), tg.randn(3).numpy())

    # a fresh experiment built from another seed, then restored
    exp2, loader2, gen2, _ = trained(tiny, steps=0, seed=7)
    state = load_checkpoint(path, model=tiny)
    restore(state, exp2, loader2, gen2)
    assert state["step"] == 3 and state["epoch"] == 0 and state["config"] == CONFIG
    for (k, a), (_, b) in zip(exp.model.state_dict().items(), exp2.model.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), k
    sa, sb = exp.optimizer.state_dict(), exp2.optimizer.state_dict()
    assert sa["state"].keys() == sb["state"].keys() and sa["state"]
    for i in sa["state"]:
        for name, v in sa["state"][i].items():
            np.testing.assert_array_equal(np.asarray(v), np.asarray(sb["state"][i][name]))
    assert exp2.steps == 3
    assert loader2.state_dict() == loader.state_dict()
    # the random streams continue exactly where they were saved
    np.testing.assert_array_equal(gen2.standard_normal(5), expected_next[0])
    np.testing.assert_array_equal(tg.randn(3).numpy(), expected_next[1])
    restored = History()
    restored.load_state_dict(state["history"])
    assert restored.losses.keys() == history.losses.keys()
    np.testing.assert_array_equal(restored.losses["half"], history.losses["half"])


def test_generator_state_with_big_ints_survives(tiny, tmp_path):
    exp, loader, gen, history = trained(tiny, steps=1)
    state = gen.bit_generator.state
    assert state["state"]["state"] > 2 ** 64  # what JSON-less formats choke on
    path = tmp_path / "c.npz"
    save_checkpoint(path, exp, loader, gen, epoch=0, step=1, history=history.state_dict())
    assert load_checkpoint(path)["generator"] == state


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint") as e:
        load_checkpoint(tmp_path / "nope.npz")
    assert str(tmp_path / "nope.npz") in str(e.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("corrupt", [
    lambda b: b[: len(b) // 2],                     # truncated
    lambda b: b[:100] + bytes(200) + b[300:],       # zeroed bytes
    lambda b: b"not a zip at all",
    lambda b: b"",
])
def test_corrupt_file_names_it(tiny, tmp_path, corrupt):
    exp, loader, gen, history = trained(tiny, steps=1)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, exp, loader, gen, epoch=0, step=1, history=history.state_dict())
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)


def test_not_a_training_checkpoint(tmp_path):
    path = tmp_path / "weights.npz"
    tg.save(path, {"w": np.zeros(3)})
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_checkpoint(path)


def test_another_model(tiny, tmp_path):
    exp, loader, gen, history = trained(tiny, steps=1)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, exp, loader, gen, epoch=0, step=1, history=history.state_dict())
    with pytest.raises(ModelMismatchError) as e:
        load_checkpoint(path, model="vae")
    msg = str(e.value)
    assert repr(tiny) in msg and "'vae'" in msg and str(path) in msg
    assert isinstance(e.value, CheckpointError)


def test_state_that_does_not_fit_the_model(tiny, tmp_path):
    exp, loader, gen, history = trained(tiny, steps=1)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, exp, loader, gen, epoch=0, step=1, history=history.state_dict())
    wider = get_experiment(tiny)({**CONFIG, "hidden": 16})
    with pytest.raises(CheckpointError, match="module 'mlp' does not fit") as e:
        restore(load_checkpoint(path), wider)
    assert str(path) in str(e.value)


def test_failed_write_keeps_the_previous_checkpoint(tiny, tmp_path, monkeypatch):
    exp, loader, gen, history = trained(tiny, steps=1)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, exp, loader, gen, epoch=0, step=1, history=history.state_dict())
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, exp, loader, gen, epoch=1, step=2, history=history.state_dict())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]  # no temp file left
    assert load_checkpoint(path)["step"] == 1


def test_capture_is_a_snapshot(tiny):
    exp, loader, gen, history = trained(tiny, steps=1)
    state = capture(exp, loader, gen, epoch=0, step=1, history=history.state_dict())
    w = state["modules"]["mlp"]["1.weight"].numpy().copy()
    trained_more = exp.train_step(next(iter(loader)), gen)
    assert trained_more["loss"] > 0
    np.testing.assert_array_equal(state["modules"]["mlp"]["1.weight"].numpy(), w)
