"""Log-mel spectrograms in plain numpy: WaveNet's local-conditioning features.

    hz_to_mel(f), mel_to_hz(m)      the HTK mel scale: m = 2595 log10(1 + f / 700)
    mel_band_edges(n_mels, sample_rate, fmin=0, fmax=None) -> (n_mels + 2,) Hz
    mel_filterbank(n_mels, n_fft, sample_rate, fmin=0, fmax=None) -> (n_mels, n_fft//2 + 1)
    log_mel_spectrogram(audio, sample_rate, n_fft, hop, n_mels) -> (n_mels, ceil(N / hop))

Filterbank.  ``n_mels + 2`` edges equally spaced on the mel scale between fmin and
fmax; band m is a triangle over the FFT bins' frequencies that rises from edge m to 1
at edge m + 1 (its centre) and falls to 0 at edge m + 2.  Neighbouring triangles
therefore add up to 1 between the first and the last centre.

Framing.  Frame j describes the hop block of samples [j*hop, (j+1)*hop): its window
of ``n_fft`` samples is centred on that block, i.e. it starts at
j*hop + hop//2 - n_fft//2, with zeros outside the audio.  A clip of N samples has
ceil(N / hop) frames, so a sample t belongs to frame t // hop (WaveNet's upsampling
repeats frame j over its block).

Values.  The power spectrum of each periodic-Hann-windowed frame is scaled so that a
full-scale sine (amplitude 1) at a bin's frequency has power 1 in that bin, passed
through the filterbank, and compressed with ``1 + ln(power + 1e-5) / (ln(1e5) / 2)``:
silence is -1, power 1 is about +1, so the features suit a layer's default init.
"""
import math

import numpy as np

FLOOR = 1e-5  # power below this is silence; sets the bottom of the log scale


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def mel_band_edges(n_mels, sample_rate, fmin=0.0, fmax=None):
    """The ``n_mels + 2`` band edges in Hz; band m spans edges m..m+2, centred on m+1."""
    n_mels = _positive_int("n_mels", n_mels)
    sample_rate = _positive_int("sample_rate", sample_rate)
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2 = {sample_rate / 2}, got "
                         f"fmin={fmin}, fmax={fmax}")
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))


def mel_filterbank(n_mels, n_fft, sample_rate, fmin=0.0, fmax=None):
    """(n_mels, n_fft // 2 + 1) triangular filters over the rfft bins (peak 1)."""
    n_fft = _positive_int("n_fft", n_fft)
    edges = mel_band_edges(n_mels, sample_rate, fmin, fmax)
    freqs = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lo) / (centre - lo)
    falling = (hi - freqs) / (hi - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    empty = np.flatnonzero(bank.max(axis=1) == 0.0)
    if empty.size:
        m = int(empty[0])
        raise ValueError(
            f"mel_filterbank: {n_mels} mel bands are too many for n_fft={n_fft} at "
            f"{sample_rate} Hz: band {m} ({edges[m]:.1f}-{edges[m + 2]:.1f} Hz) holds no FFT "
            f"bin (bins are {sample_rate / n_fft:.1f} Hz apart); lower n_mels or raise n_fft")
    return bank


def log_mel_spectrogram(audio, sample_rate, n_fft, hop, n_mels, fmin=0.0, fmax=None):
    """(n_mels, ceil(len(audio) / hop)) compressed log-mel features (see the module doc)."""
    audio = np.asarray(audio)
    if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"log_mel_spectrogram: audio must be a 1-D float array, got "
                         f"{audio.dtype} of shape {audio.shape}")
    n_fft, hop = _positive_int("n_fft", n_fft), _positive_int("hop", hop)
    bank = mel_filterbank(n_mels, n_fft, sample_rate, fmin, fmax)
    n_frames = -(-len(audio) // hop)
    if n_frames == 0:
        return np.zeros((bank.shape[0], 0))
    # zeros on both sides, enough for the first and the last centred window
    pad = n_fft
    padded = np.concatenate([np.zeros(pad), audio.astype(np.float64), np.zeros(pad + hop)])
    starts = pad + np.arange(n_frames) * hop + hop // 2 - n_fft // 2
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[starts]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    spectrum = np.fft.rfft(frames * window, axis=1)
    # a sine of amplitude A at a bin frequency has |X| = A * sum(window) / 2 there
    power = np.abs(spectrum) ** 2 * (2.0 / window.sum()) ** 2
    mel = bank @ power.T
    return 1.0 + np.log(mel + FLOOR) / (math.log(1.0 / FLOOR) / 2.0)
