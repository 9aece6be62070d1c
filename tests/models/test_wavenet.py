import numpy as np
import pytest

from tinygen import optim
from tinygen.data.audio import mu_law_encode, synthetic_melody
from tinygen.models.wavenet import WaveNet


def small(seed=0, **kw):
    args = dict(n_layers=6, dilation_cycle=(1, 2, 4), residual_channels=8, skip_channels=8,
                dtype="float64")
    args.update(kw)
    m = WaveNet(**args)
    m.reset_parameters(np.random.default_rng(seed))
    return m


def test_shapes_and_receptive_field():
    m = small(quantization=32)
    assert m.dilations == (1, 2, 4, 1, 2, 4)
    assert m.receptive_field == 1 + 2 * (1 + 2 + 4)
    codes = np.random.default_rng(0).integers(0, 32, (3, 11))
    assert m(codes).shape == (3, 32, 11)
    assert m(codes[:1, :1]).shape == (1, 32, 1)
    with pytest.raises(ValueError):
        m(np.full((1, 4), 32))


def test_autoregressive_property():
    m = small(quantization=16)
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 16, (1, 20))
    base = m(codes).data
    for i in (0, 5, 19):
        changed = codes.copy()
        changed[0, i:] = rng.integers(0, 16, 20 - i)
        out = m(changed).data
        # logits at t are p(x_t | x_<t): positions <= i never see inputs >= i
        np.testing.assert_array_equal(out[..., :i + 1], base[..., :i + 1])
        if i < 19:
            assert not np.allclose(out[..., i + 1:], base[..., i + 1:])


def test_fast_generation_equals_naive():
    m = small()
    fast = m.generate(50, np.random.default_rng(7))
    naive = m.generate(50, np.random.default_rng(7), naive=True)
    np.testing.assert_array_equal(fast, naive)
    assert fast.dtype == np.int64 and len(set(fast.tolist())) > 5
    hot = m.generate(20, np.random.default_rng(7), temperature=0.5)
    np.testing.assert_array_equal(hot, m.generate(20, np.random.default_rng(7),
                                                  temperature=0.5, naive=True))


def test_global_conditioning_fast_equals_naive():
    m = small(quantization=16, global_classes=3)
    assert m(np.zeros((2, 5), np.int64), global_class=[0, 2]).shape == (2, 16, 5)
    a = m.generate(30, np.random.default_rng(3), global_class=2)
    b = m.generate(30, np.random.default_rng(3), naive=True, global_class=2)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        m(np.zeros((1, 5), np.int64))


def test_loss_decreases_on_melody():
    audio = mu_law_encode(synthetic_melody(1.0, 4000, seed=0))
    m = small(residual_channels=16, skip_channels=32, dtype=None)
    opt = optim.Adam(m.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(40):
        starts = rng.integers(0, len(audio) - 64, 4)
        batch = np.stack([audio[s:s + 64] for s in starts])
        loss = m.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3


TINY = {"seconds": 2.0, "sample_rate": 4000, "window": 128, "train_windows": 16,
        "n_layers": 4, "dilation_cycle": [1, 2, 4, 8], "residual_channels": 8,
        "skip_channels": 8, "epochs": 2, "batch_size": 4}


def test_experiment_trains_with_the_runner(tmp_path):
    import json

    import tinygen.models.wavenet  # noqa: F401  (registers "wavenet")
    from tinygen.training.runner import train

    result = train("wavenet", dict(TINY), out=tmp_path / "run", progress=False, log=None)
    bits = result.metrics["test_nll_bits_per_sample"]
    assert 0 < bits < 8.1 and result.metrics["test_samples"] == 768
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["model"] == "wavenet"


def test_experiment_reads_a_wav_folder(tmp_path):
    from tinygen.data import DataError
    from tinygen.data.audio import write_wav
    from tinygen.models.wavenet.experiment import WaveNetExperiment

    for i in range(2):
        write_wav(tmp_path / f"{i}.wav", synthetic_melody(0.5, 4000, seed=i), 4000)
    e = WaveNetExperiment({**TINY, "audio": str(tmp_path)})
    (train_windows,), (test_windows,) = e.load_data()
    assert train_windows.shape == (16, 128) and test_windows.shape == (3, 128)
    audio = e.generate_audio(10, np.random.default_rng(0))
    assert audio.shape == (10,) and np.abs(audio).max() <= 1.0
    with pytest.raises(DataError):
        WaveNetExperiment({**TINY, "audio": str(tmp_path / "none")}).load_data()
