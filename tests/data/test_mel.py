import numpy as np
import pytest

from tinygen.data.mel import (hz_to_mel, log_mel_spectrogram, mel_band_edges, mel_filterbank,
                              mel_to_hz)

RATE, N_FFT, HOP, MELS = 8000, 256, 64, 20


def test_mel_scale_formula():
    np.testing.assert_allclose(hz_to_mel(700.0), 2595.0 * np.log10(2.0))
    np.testing.assert_allclose(hz_to_mel(1000.0), 999.99, atol=0.01)  # ~1000 mel at 1 kHz
    f = np.array([0.0, 100.0, 3999.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, atol=1e-9)


def test_filterbank_triangles():
    bank = mel_filterbank(MELS, N_FFT, RATE)
    edges = mel_band_edges(MELS, RATE)
    assert bank.shape == (MELS, N_FFT // 2 + 1) and bank.min() >= 0 and bank.max() <= 1
    assert edges[0] == 0 and edges[-1] == pytest.approx(RATE / 2)
    assert np.allclose(np.diff(hz_to_mel(edges)), np.diff(hz_to_mel(edges))[0])
    freqs = np.arange(N_FFT // 2 + 1) * RATE / N_FFT
    for m in range(MELS):
        # band m is zero outside (edges[m], edges[m+2]) and peaks next to its centre
        outside = (freqs <= edges[m]) | (freqs >= edges[m + 2])
        assert not bank[m, outside].any()
        peak = freqs[np.argmax(bank[m])]
        assert abs(peak - edges[m + 1]) <= RATE / N_FFT / 2 + 1e-9
    # neighbouring triangles add up to 1 between the first and the last centre
    inside = (freqs >= edges[1]) & (freqs <= edges[-2])
    np.testing.assert_allclose(bank[:, inside].sum(axis=0), 1.0, atol=1e-12)


def test_a_pure_tone_lands_in_its_mel_band():
    edges = mel_band_edges(MELS, RATE)
    t = np.arange(RATE // 2) / RATE
    for m in (0, 4, 11, MELS - 1):
        tone = 0.7 * np.sin(2 * np.pi * edges[m + 1] * t)
        features = log_mel_spectrogram(tone, RATE, N_FFT, HOP, MELS)
        assert features.shape == (MELS, -(-len(tone) // HOP))
        assert np.argmax(features[:, 10:-10].mean(axis=1)) == m


def test_frames_are_centred_on_their_hop_block():
    audio = np.zeros(40 * HOP)
    j = 17
    block = np.arange(j * HOP, (j + 1) * HOP)
    audio[block] = np.sin(2 * np.pi * 1000.0 * block / RATE)
    energy = log_mel_spectrogram(audio, RATE, N_FFT, HOP, MELS).mean(axis=0)
    assert np.argmax(energy) == j
    assert energy[j - 1] == pytest.approx(energy[j + 1], abs=0.05)   # symmetric around j
    # frames whose window does not reach the block are silence: exactly -1
    far = [i for i in range(40) if abs(i - j) * HOP >= N_FFT // 2 + HOP]
    np.testing.assert_allclose(log_mel_spectrogram(audio, RATE, N_FFT, HOP, MELS)[:, far],
                               -1.0, atol=1e-6)


def test_scale_of_the_features():
    t = np.arange(RATE) / RATE
    loud = log_mel_spectrogram(np.sin(2 * np.pi * 1000.0 * t), RATE, N_FFT, HOP, MELS)
    assert 0.5 < loud.max() < 1.5      # a full-scale sine reaches about +1
    assert log_mel_spectrogram(np.zeros(100), RATE, N_FFT, HOP, MELS).shape == (MELS, 2)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="band 0 .* holds no FFT bin.*lower n_mels"):
        mel_filterbank(80, 64, RATE)
    with pytest.raises(ValueError, match="fmax"):
        mel_filterbank(10, N_FFT, RATE, fmax=RATE)
    with pytest.raises(ValueError, match="hop must be a positive integer"):
        log_mel_spectrogram(np.zeros(10), RATE, N_FFT, 0, MELS)
    with pytest.raises(ValueError, match="1-D float array"):
        log_mel_spectrogram(np.zeros((2, 10)), RATE, N_FFT, HOP, MELS)
