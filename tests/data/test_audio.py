import wave

import numpy as np
import pytest

from tinygen.data import DataError
from tinygen.data.audio import (mu_law_decode, mu_law_encode, read_wav, synthetic_melody,
                                write_wav)


def test_wav_round_trip_int16(tmp_path):
    x = np.random.default_rng(0).integers(-32768, 32768, 500).astype(np.int16)
    write_wav(tmp_path / "a.wav", x, 8000)
    y, sr = read_wav(tmp_path / "a.wav")
    assert sr == 8000 and y.dtype == np.int16
    np.testing.assert_array_equal(x, y)


def test_wav_float_is_scaled_and_clipped(tmp_path):
    write_wav(tmp_path / "a.wav", np.array([0.0, 1.0, -1.0, 2.0]), 16000)
    y, _ = read_wav(tmp_path / "a.wav")
    np.testing.assert_array_equal(y, [0, 32767, -32767, 32767])


def test_stereo_is_averaged(tmp_path):
    path = tmp_path / "s.wav"
    frames = np.array([[100, 300], [-100, -101]], dtype="<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2), f.setsampwidth(2), f.setframerate(100)
        f.writeframes(frames.tobytes())
    y, sr = read_wav(path)
    assert sr == 100
    np.testing.assert_array_equal(y, [200, -100])  # -100.5 rounds to even


def test_8bit_and_corrupt_files_raise_data_error(tmp_path):
    path = tmp_path / "b8.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1), f.setsampwidth(1), f.setframerate(100)
        f.writeframes(bytes(10))
    with pytest.raises(DataError, match="b8.wav.*16-bit"):
        read_wav(path)
    bad = tmp_path / "junk.wav"
    bad.write_bytes(b"not a wav file at all")
    with pytest.raises(DataError, match="junk.wav"):
        read_wav(bad)
    with pytest.raises(DataError, match="missing.wav"):
        read_wav(tmp_path / "missing.wav")


def test_truncated_file_raises(tmp_path):
    path = tmp_path / "t.wav"
    write_wav(path, np.zeros(1000, np.int16), 100)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="t.wav"):
        read_wav(path)


def test_mu_law_round_trip_and_error_bound():
    codes = np.arange(256)
    np.testing.assert_array_equal(mu_law_encode(mu_law_decode(codes)), codes)
    x = np.linspace(-1, 1, 10001)
    c = mu_law_encode(x)
    assert c.dtype == np.int64 and c.min() == 0 and c.max() == 255
    err = np.abs(mu_law_decode(c) - x)
    # rounding moves the companded value y by <= 1/255 (half of the 2/255 step), and
    # |dx/dy| = ln(256)(1 + 255|x|)/255 is largest at the larger |x| of the two ends
    xmax = np.maximum(np.abs(x), np.abs(mu_law_decode(c)))
    bound = (1.0 / 255) * np.log(256) * (1 + 255 * xmax) / 255 * 1.001
    assert np.all(err <= bound + 1e-12)
    assert err.max() < 0.03 and err[np.abs(x) < 0.01].max() < 3e-4


def test_synthetic_melody_is_deterministic_and_bounded():
    a = synthetic_melody(0.5, 8000, seed=1)
    assert a.shape == (4000,) and np.abs(a).max() <= 1.0 and a.std() > 0.05
    np.testing.assert_array_equal(a, synthetic_melody(0.5, 8000, seed=1))
    assert not np.array_equal(a, synthetic_melody(0.5, 8000, seed=2))
