"""Audio samples of a run as 16-bit PCM WAV files (``tinygen sample`` for WaveNet).

One file per sample: a single sample goes to ``out`` itself, several to
``out``'s stem + ``_0``, ``_1``, ... (``x.wav`` -> ``x_0.wav``, ``x_1.wav``).
"""
from pathlib import Path

import numpy as np

from tinygen.data.audio import write_wav


def wav_paths(out, n):
    """The file names ``n`` samples are written to (see the module doc)."""
    out = Path(out)
    if out.suffix.lower() != ".wav":
        raise ValueError(f"{str(out)!r}: audio samples are written as WAV; give a path "
                         f"ending in .wav")
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(n)]


def save_audio_samples(audio, sample_rate, out):
    """Write each row of ``audio`` (n, length), floats in [-1, 1], as mono 16-bit PCM
    at ``sample_rate``; returns the paths written."""
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (n_samples, length), got shape {audio.shape}")
    paths = wav_paths(out, len(audio))
    for path, clip in zip(paths, audio):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, clip, sample_rate)
    return paths
