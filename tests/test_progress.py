"""Issue 11: long silent work shows a progress bar (IWAE evaluation, FD features,
PixelCNN and WaveNet sampling) when the runner or `tinygen sample/eval` asks for it,
and nothing otherwise."""
import numpy as np
import pytest

import tinygen as tg
from tinygen import progress


@pytest.fixture(autouse=True)
def _immediate(monkeypatch):
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "MININTERVAL", 0.0)


def vae_evaluate():
    from tinygen.models.vae.experiment import ConvVAEExperiment
    from tinygen.data import load_embedded_subset

    exp = ConvVAEExperiment({"channels": [2, 4], "hidden": 8, "latent_dim": 2, "iwae_k": 2,
                             "eval_batch": 5, "test_limit": 10})
    exp.evaluate(load_embedded_subset("test"), np.random.default_rng(0))


def fd_features():
    from tinygen.metrics.frechet import classifier_features

    class Stub:
        training = False

        def eval(self):
            return self

        def features(self, x):
            return tg.tensor(x.numpy().reshape(x.shape[0], -1)[:, :3])

    classifier_features(np.zeros((6, 28, 28), np.uint8), Stub(), batch_size=2)


def pixelcnn_sample():
    from tinygen.models.pixelcnn.networks import PixelCNN

    tg.manual_seed(0)
    PixelCNN(hidden=4, n_residual=1, image_size=6).sample(2, np.random.default_rng(0))


def wavenet_generate():
    from tinygen.models.wavenet.model import WaveNet

    tg.manual_seed(0)
    WaveNet(2, (1, 2), 4, 4, 16).generate(20, np.random.default_rng(0))


@pytest.mark.parametrize("work, desc", [(vae_evaluate, "IWAE k=2"), (fd_features, "FD features"),
                                        (pixelcnn_sample, "sampling 2 images"),
                                        (wavenet_generate, "sampling audio")])
def test_long_work_shows_a_bar_only_when_asked(work, desc, capsys):
    work()
    assert desc not in capsys.readouterr().err
    with progress.shown():
        work()
    assert desc in capsys.readouterr().err
    assert not progress.is_shown()


def test_bar_takes_its_caller_settings(capsys, monkeypatch):
    """``show`` overrides ``shown`` both ways; ``leave`` keeps the finished bar (a training
    epoch's) or clears it (the default); ``delay`` None is the module's."""
    with progress.shown():
        assert isinstance(progress.bar(3, "hidden", show=False), progress.NoBar)
    assert isinstance(progress.bar(3, "hidden"), progress.NoBar)
    for leave in (True, False):
        with progress.bar(3, "epoch 1/2", "batch", show=True, leave=leave, delay=0) as b:
            b.update(3)
        err = capsys.readouterr().err
        assert "epoch 1/2" in err and "3/3" in err and "batch/s" in err
        assert err.endswith("\n") == leave
    monkeypatch.setattr(progress, "DELAY", 60.0)
    with progress.bar(3, "quick", show=True) as b:  # done before the module's delay
        b.update(3)
    assert "quick" not in capsys.readouterr().err
