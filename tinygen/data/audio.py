"""Audio for WaveNet: 16-bit PCM WAV files (standard-library ``wave``), mu-law
companding (ITU-T G.711's continuous form, as in the WaveNet paper) and a
procedurally generated melody that serves as offline training data.

    read_wav(path)                 -> (int16 samples (N,), sample_rate); stereo averaged
    read_wav_folder(folder)        -> ([float audio in [-1, 1] per file], sample_rate)
    write_wav(path, samples, sr)   int16, or float in [-1, 1]; written atomically
    mu_law_encode(x, channels=256) float in [-1, 1] -> int64 codes in [0, channels)
    mu_law_decode(codes, channels) codes -> float in [-1, 1]
    synthetic_melody(seconds, sample_rate=16000, seed=0) -> float64 in [-1, 1]
"""
import wave
from pathlib import Path

import numpy as np

from ..serialization import atomic_open
from .errors import DataError


# --- WAV files -----------------------------------------------------------------------------
def read_wav(path):
    """``(samples, sample_rate)``: the file's 16-bit PCM as int16 (N,), channels averaged
    (rounded to nearest) to mono.  Anything else (8/24/32-bit, corrupt) raises DataError."""
    try:
        with wave.open(str(path), "rb") as f:
            width, channels = f.getsampwidth(), f.getnchannels()
            rate, frames = f.getframerate(), f.getnframes()
            if width != 2:
                raise DataError(f"{path}: only 16-bit PCM WAV is supported, this file has "
                                f"{8 * width}-bit samples")
            raw = f.readframes(frames)
    except DataError:
        raise
    except (wave.Error, EOFError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise DataError(f"{path}: no such WAV file") from e
        raise DataError(f"{path}: not a readable WAV file ({e})") from e
    if channels < 1:
        raise DataError(f"{path}: WAV header says {channels} channels")
    n = len(raw) // (2 * channels)
    if n < frames:
        raise DataError(f"{path}: truncated WAV file: header says {frames} frames, "
                        f"the data holds {n}")
    data = np.frombuffer(raw[:n * 2 * channels], dtype="<i2").reshape(n, channels)
    if channels == 1:
        mono = data[:, 0].astype(np.int16)
    else:
        mono = np.rint(data.astype(np.float64).mean(axis=1)).astype(np.int16)
    return mono, int(rate)


def wav_files(folder):
    """The ``*.wav`` / ``*.WAV`` files of ``folder``, sorted by name (an error if none)."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav") \
        if folder.is_dir() else []
    if not files:
        raise DataError(f"{folder}: not a folder holding .wav files")
    return files


def read_wav_folder(folder):
    """``(list of float audio in [-1, 1], sample_rate)``: the ``*.wav`` / ``*.WAV`` files
    of ``folder`` sorted by name (``wav_files``), all at one rate."""
    parts, rate = [], None
    for f in wav_files(folder):
        x, r = read_wav(f)
        if rate is not None and r != rate:
            raise DataError(f"{f}: sample rate {r} differs from the other files' {rate}")
        rate = r
        parts.append(x.astype(np.float64) / 32768.0)
    return parts, rate


def write_wav(path, samples, sample_rate):
    """Write mono 16-bit PCM.  ``samples``: int16 values, or floats in [-1, 1] (scaled by
    32767, clipped).  The file is replaced atomically (temp file + rename)."""
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"write_wav: samples must be 1-D (mono), got shape {samples.shape}")
    if np.issubdtype(samples.dtype, np.floating):
        pcm = np.clip(np.rint(samples * 32767.0), -32768, 32767).astype("<i2")
    elif samples.dtype == np.int16:
        pcm = samples.astype("<i2")
    else:
        raise TypeError(f"write_wav: samples must be int16 or float, got {samples.dtype}")
    rate = int(sample_rate)
    if rate <= 0:
        raise ValueError(f"write_wav: sample_rate must be positive, got {sample_rate}")
    with atomic_open(path, "wb") as fh:
        with wave.open(fh, "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(rate)
            f.writeframes(pcm.tobytes())


# --- mu-law --------------------------------------------------------------------------------
def mu_law_encode(x, channels=256):
    """Float audio in [-1, 1] -> int64 codes in [0, channels): compand with
    sign(x) ln(1 + mu|x|) / ln(1 + mu), mu = channels - 1, then quantise uniformly
    (rounding to the nearest of ``channels`` levels)."""
    mu = channels - 1
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.rint((y + 1.0) / 2.0 * mu).astype(np.int64)


def mu_law_decode(codes, channels=256):
    """Inverse of ``mu_law_encode`` (up to quantisation): codes -> float in [-1, 1]."""
    mu = channels - 1
    y = 2.0 * np.asarray(codes, dtype=np.float64) / mu - 1.0
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


# --- synthetic data ------------------------------------------------------------------------
_SCALE = np.array([0, 2, 4, 7, 9, 12, 14, 16])  # major pentatonic, semitones over the root


def synthetic_melody(seconds, sample_rate=16000, seed=0):
    """A procedurally generated melody, float64 in [-1, 1]: random pentatonic notes
    (0.1-0.4 s), each a few harmonics with decaying amplitude, an ADSR envelope and a
    5-6 Hz vibrato.  Same ``seed``, same audio."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n)
    root = 220.0 * 2.0 ** (rng.integers(0, 12) / 12.0)
    start = 0
    while start < n:
        length = min(int(rng.uniform(0.1, 0.4) * sample_rate), n - start)
        freq = root * 2.0 ** (rng.choice(_SCALE) / 12.0)
        t = np.arange(length) / sample_rate
        vibrato = 1.0 + 0.004 * np.sin(2 * np.pi * rng.uniform(5.0, 6.0) * t)
        phase = 2 * np.pi * np.cumsum(freq * vibrato) / sample_rate
        tone = sum((0.6 ** h) * np.sin((h + 1) * phase) for h in range(4))
        out[start:start + length] = 0.5 * tone * _adsr(length, sample_rate)
        start += length
    peak = np.max(np.abs(out)) if n else 0.0
    return out / peak * 0.9 if peak > 0 else out


def _adsr(length, sample_rate, attack=0.01, decay=0.05, sustain=0.6, release=0.05):
    env = np.full(length, sustain)
    a = min(length, int(attack * sample_rate))
    d = min(length - a, int(decay * sample_rate))
    r = min(length - a - d, int(release * sample_rate))
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    env[a:a + d] = np.linspace(1.0, sustain, d, endpoint=False)
    if r:
        env[length - r:] = np.linspace(sustain, 0.0, r)
    return env
