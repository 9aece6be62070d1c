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


def test_shifted_one_hot_is_the_previous_code():
    m = small(quantization=16)
    for shape in [(3, 7), (1, 1), (2, 2), (0, 5), (4, 0)]:
        codes = np.random.default_rng(1).integers(0, 16, shape)
        expected = np.zeros((shape[0], 16, shape[1]))
        for n in range(shape[0]):
            for t in range(1, shape[1]):
                expected[n, codes[n, t - 1], t] = 1.0
        x = m.shifted_one_hot(codes)
        assert x.dtype == np.float64 and np.array_equal(x, expected)


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
    from tinygen.training import train

    lines = []
    result = train("wavenet", dict(TINY), out=tmp_path / "run", progress=False,
                   log=lines.append)
    bits = result.metrics["test_nll_bits_per_sample"]
    assert 0 < bits < 8.1 and result.metrics["test_samples"] == 800   # all held-out samples
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["model"] == "wavenet"
    # a batch row is a window, and the epoch line's rate says so
    assert len(lines) == 2 and all(line.endswith(" window/s)") for line in lines)
    assert all(e["examples_per_second"] > 0 for e in doc["epochs"])


def test_experiment_reads_a_wav_folder(tmp_path):
    from tinygen.data import DataError
    from tinygen.data.audio import write_wav
    from tinygen.models.wavenet.experiment import WaveNetExperiment

    for i in range(2):
        write_wav(tmp_path / f"{i}.wav", synthetic_melody(0.5, 4000, seed=i), 4000)
    e = WaveNetExperiment({**TINY, "audio": str(tmp_path)})
    (train_windows,), (test_windows, weights) = e.load_data()
    # 400 held-out samples: one window of receptive field (16) + 128 scored ones, then
    # 128 per window after 16 samples of context; each sample is scored exactly once
    assert train_windows.shape == (16, 128) and test_windows.shape == (3, 144)
    assert weights.sum() == 400 and weights[0].sum() == 144 and weights[1, :16].sum() == 0
    audio = e.generate_audio(10, np.random.default_rng(0))
    assert audio.shape == (10,) and np.abs(audio).max() <= 1.0
    with pytest.raises(DataError):
        WaveNetExperiment({**TINY, "audio": str(tmp_path / "none")}).load_data()


# --- local conditioning ----------------------------------------------------------------------
def local_model(seed=0, hop=3, **kw):
    return small(seed, quantization=16, local_channels=4, local_hop=hop, **kw)


def test_local_receptive_field_is_stated_exactly():
    m = local_model(hop=3)                          # dilations 1, 2, 4, 1, 2, 4
    assert m.local_receptive_field == 1 + (2 + 4 + 1 + 2 + 4)   # layer 1's conv excluded
    assert m.local_frames(0) == (0, 0) and m.local_frames(20) == (2, 6)
    rng = np.random.default_rng(0)
    T, frames = 30, 10
    codes = rng.integers(0, 16, (1, T))
    features = rng.standard_normal((1, 4, frames))
    base = m(codes, local_features=features).data
    for t in (0, 2, 3, 13, 14, 29):
        first, last = m.local_frames(t)
        for j in range(frames):
            changed = features.copy()
            changed[0, :, j] += 1.0
            out = m(codes, local_features=changed).data[..., t]
            if first <= j <= last:
                assert not np.allclose(out, base[..., t]), (t, j)
            else:   # frames outside the stated range have no influence at all
                np.testing.assert_array_equal(out, base[..., t], err_msg=f"t={t} frame {j}")
    # the range is tight at both ends for a time far from the start
    assert m.local_frames(29)[0] == (29 - 13) // 3 > 0


def test_local_conditioning_keeps_the_autoregressive_property():
    m = local_model(hop=4)
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 16, (2, 20))
    features = rng.standard_normal((2, 4, 5))
    base = m(codes, local_features=features).data
    for i in (0, 7, 19):
        changed = codes.copy()
        changed[:, i:] = rng.integers(0, 16, (2, 20 - i))
        out = m(changed, local_features=features).data
        np.testing.assert_array_equal(out[..., :i + 1], base[..., :i + 1])
        if i < 19:
            assert not np.allclose(out[..., i + 1:], base[..., i + 1:])


def test_local_fast_generation_equals_naive():
    m = local_model(hop=5)
    features = np.random.default_rng(2).standard_normal((4, 12))     # 60 samples' worth
    fast = m.generate(60, np.random.default_rng(4), local_features=features)
    naive = m.generate(60, np.random.default_rng(4), local_features=features, naive=True)
    np.testing.assert_array_equal(fast, naive)
    # the features matter: other features, other samples from the same uniforms
    other = m.generate(60, np.random.default_rng(4), local_features=features[:, ::-1])
    assert not np.array_equal(other, fast)


def test_local_features_are_checked():
    m = local_model(hop=4)
    codes = np.zeros((2, 9), np.int64)
    with pytest.raises(ValueError, match="locally conditioned; pass local_features"):
        m(codes)
    with pytest.raises(ValueError, match=r"local_features has 2 frames; 9 samples at hop 4 "
                                         r"need 3"):
        m(codes, local_features=np.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match=r"shape \(2, 4, frames\)"):
        m(codes, local_features=np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        m(codes, local_features=np.full((2, 4, 3), np.nan))
    with pytest.raises(ValueError, match="has no local conditioning"):
        small()(codes[:, :3], local_features=np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="both local_channels and local_hop"):
        WaveNet(2, (1,), 4, 4, local_channels=3)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="10 samples at hop 4 need 3"):
        m.generate(10, rng, local_features=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="global_class given but the model has no"):
        m.generate(10, rng, local_features=np.zeros((4, 3)), global_class=1)
    with pytest.raises(ValueError, match=r"global_class must lie in \[0, 3\)"):
        small(global_classes=3).generate(5, rng, global_class=[0, 3], n_sequences=2)


def test_loss_decreases_with_local_conditioning():
    from tinygen.data.mel import log_mel_spectrogram

    rate, hop = 4000, 16
    audio = synthetic_melody(1.0, rate, seed=0)
    codes = mu_law_encode(audio)
    features = log_mel_spectrogram(audio, rate, 64, hop, 8)
    m = small(residual_channels=16, skip_channels=32, dtype=None, local_channels=8,
              local_hop=hop)
    opt = optim.Adam(m.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(40):
        starts = hop * rng.integers(0, (len(codes) - 64) // hop, 4)
        batch = np.stack([codes[s:s + 64] for s in starts])
        feats = np.stack([features[:, s // hop:s // hop + 4] for s in starts])
        loss = m.loss(batch, local_features=feats)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3


def test_experiment_with_mel_features_lines_windows_up(tmp_path):
    from tinygen.data.mel import log_mel_spectrogram
    from tinygen.models.wavenet.experiment import WaveNetExperiment

    config = {**TINY, "local": "mel", "n_mels": 16, "mel_window": 128, "mel_hop": 32}
    e = WaveNetExperiment(config)
    (codes, features), (test_codes, weights, test_features) = e.load_data()
    assert codes.shape == (16, 128) and features.shape == (16, 16, 4)
    # the receptive field (16) rounded up to one frame (32) of context: the 800 held-out
    # samples are a first window of 160 scored ones, then 5 of 32 context + 128 scored
    assert test_codes.shape == (6, 160) and test_features.shape == (6, 16, 5)
    assert weights.sum() == 800 and weights[1, :32].sum() == 0
    train_audio, test_audio, rate = e.split_audio()     # (the melody: one part each)
    # each window's features are the frames of the training audio covering its samples
    all_features = log_mel_spectrogram(train_audio, rate, 128, 32, 16)
    for w in range(len(codes)):
        matches = [s for s in range(0, len(train_audio) - 127, 32)
                   if np.array_equal(mu_law_encode(train_audio[s:s + 128]), codes[w])]
        assert matches
        np.testing.assert_allclose(features[w], all_features[:, matches[0] // 32:][:, :4],
                                   rtol=1e-6)
    held_features = log_mel_spectrogram(test_audio, rate, 128, 32, 16)
    for k, first in enumerate(range(0, 800 - 159, 128)):
        np.testing.assert_array_equal(test_codes[k], mu_law_encode(test_audio[first:first + 160]))
        np.testing.assert_allclose(test_features[k], held_features[:, first // 32:][:, :5],
                                   rtol=1e-6)
    held = e.held_out_features(2, 50)          # 2 clips of ceil(50 / 32) = 2 frames
    np.testing.assert_allclose(held[1], log_mel_spectrogram(test_audio, rate, 128, 32,
                                                            16)[:, 2:4], rtol=1e-6)
    from tinygen.data import DataError
    with pytest.raises(DataError, match="too short to condition 5 clip"):
        e.held_out_features(5, 1000)
    with pytest.raises(ValueError, match="multiple of mel_hop"):
        WaveNetExperiment({**config, "mel_hop": 48})
    with pytest.raises(ValueError, match="local must be null"):
        WaveNetExperiment({**config, "local": "mfcc"})
