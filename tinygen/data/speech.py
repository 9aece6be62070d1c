"""A synthetic speech corpus for WaveNet, made reproducibly with Debian's ``espeak-ng``.

    build_speech_corpus(out)      -> the manifest (dict); writes
        out/train/NNNN.wav, out/test/NNNN.wav   16 kHz, 16-bit mono, one sentence each
        out/corpus.json                         sentences, voice, rate, samples, sha256
    resample(x, rate_in, rate_out)              windowed-sinc resampling (numpy only)

The sentences are ``tinygen.data.speech_text.sentences()``.  They are shuffled with
``seed`` and split BY SENTENCE: the last ``n_test`` are held out, so the test
utterances are sentences the model never heard (in any voice).  Each sentence is
spoken once, by a (voice, rate) pair taken in turn from the shuffled product of
``voices`` x ``rates``, so every voice and rate appears in both parts.

espeak-ng writes 22050 Hz; the audio is resampled to ``sample_rate`` here (numpy,
Hann-windowed sinc, cutoff just below the new Nyquist frequency) so the corpus needs no
other tool, and leading / trailing silence is trimmed to ``margin`` seconds (silence
is nearly free to code and would flatter the bits per sample).  espeak-ng is
deterministic, so the same espeak-ng version, arguments and seed give the same bytes;
the manifest records the version and a sha256 per file to check that.
"""
import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..serialization import atomic_open
from .audio import read_wav, write_wav
from .errors import DataError
from .speech_text import sentences as corpus_sentences

VOICES = ("en-us", "en-us+f3", "en-gb+m3", "en-gb-scotland+f2", "en-029+m5",
          "en-gb-x-rp+f4")
RATES = (130, 160, 190)  # words per minute
MANIFEST = "corpus.json"


def espeak_ng(executable="espeak-ng"):
    """The path of the espeak-ng executable, or DataError saying how to get it."""
    path = shutil.which(executable)
    if path is None:
        raise DataError(f"{executable!r} was not found; the speech corpus is synthesized with "
                        f"espeak-ng (Debian/Ubuntu: apt-get install espeak-ng)")
    return path


def espeak_version(executable="espeak-ng"):
    out = subprocess.run([espeak_ng(executable), "--version"], capture_output=True, text=True)
    return out.stdout.strip()


def synthesize(text, voice, rate, executable="espeak-ng"):
    """``(int16 samples, sample_rate)`` of espeak-ng speaking ``text``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "utterance.wav"
        done = subprocess.run([espeak_ng(executable), "-v", voice, "-s", str(int(rate)),
                               "-w", str(path), text], capture_output=True, text=True)
        if done.returncode != 0 or not path.exists():
            raise DataError(f"espeak-ng failed for voice {voice!r}, rate {rate}: "
                            f"{(done.stderr or done.stdout).strip()}")
        return read_wav(path)


def resample(x, rate_in, rate_out, half_width=32):
    """``x`` (1-D float) at ``rate_out``: each output sample is the input convolved with a
    Hann-windowed sinc (``half_width`` input samples each side, scaled when
    downsampling) whose cutoff is 0.95 of the lower Nyquist frequency."""
    x = np.asarray(x, dtype=np.float64)
    rate_in, rate_out = int(rate_in), int(rate_out)
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in}, {rate_out}")
    if rate_in == rate_out:
        return x.copy()
    n_out = int(len(x) * rate_out // rate_in)
    ratio = rate_in / rate_out                      # input samples per output sample
    cutoff = 0.95 * min(1.0, 1.0 / ratio)           # fraction of the input Nyquist
    width = int(np.ceil(half_width / min(1.0, cutoff / 0.95)))
    out = np.empty(n_out)
    taps = np.arange(-width + 1, width + 1)
    padded = np.concatenate([np.zeros(width), x, np.zeros(width + 1)])
    for lo in range(0, n_out, 8192):                # chunks bound the (n, taps) matrix
        t = np.arange(lo, min(lo + 8192, n_out)) * ratio
        base = np.floor(t).astype(np.int64)
        idx = base[:, None] + taps[None, :]
        d = t[:, None] - idx
        h = cutoff * np.sinc(cutoff * d) * 0.5 * (1.0 + np.cos(np.pi * np.clip(d / width,
                                                                               -1.0, 1.0)))
        out[lo:lo + len(t)] = np.sum(h * padded[idx + width], axis=1)
    return out


def trim_silence(x, rate, margin=0.05, threshold=0.02):
    """``x`` without its leading / trailing samples quieter than ``threshold`` x peak,
    keeping ``margin`` seconds of them on each side."""
    loud = np.flatnonzero(np.abs(x) > threshold * np.max(np.abs(x))) if len(x) else []
    if len(loud) == 0:
        return x[:0]
    keep = int(round(margin * rate))
    return x[max(0, loud[0] - keep):loud[-1] + 1 + keep]


def build_speech_corpus(out, n_test=40, n_generated=250, voices=VOICES, rates=RATES,
                        seed=0, sample_rate=16000, executable="espeak-ng", progress=None,
                        texts=None):
    """Synthesize the corpus into ``out`` (see the module docstring); returns the manifest.
    ``progress``: optional callable(done, total); ``texts``: other sentences (tests)."""
    espeak_ng(executable)
    texts = corpus_sentences(n_generated) if texts is None else list(texts)
    if not 0 < int(n_test) < len(texts):
        raise ValueError(f"n_test must be between 1 and {len(texts) - 1}, got {n_test}")
    if not voices or not rates:
        raise ValueError("need at least one voice and one rate")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    combos = [(v, int(r)) for v in voices for r in rates]
    combos = [combos[i] for i in rng.permutation(len(combos))]
    split = len(texts) - int(n_test)
    out = Path(out)
    files, total = [], len(texts)
    for j, index in enumerate(order):
        part = "train" if j < split else "test"
        number = j if j < split else j - split
        voice, rate = combos[j % len(combos)]
        pcm, rate_in = synthesize(texts[index], voice, rate, executable)
        audio = trim_silence(resample(pcm / 32768.0, rate_in, sample_rate), sample_rate)
        pcm16 = np.clip(np.rint(audio * 32768.0), -32768, 32767).astype(np.int16)
        path = out / part / f"{number:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, pcm16, sample_rate)
        files.append({"file": f"{part}/{path.name}", "split": part, "text": texts[index],
                      "voice": voice, "rate": rate, "samples": int(len(pcm16)),
                      "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
        if progress is not None:
            progress(j + 1, total)
    manifest = {"espeak_ng": espeak_version(executable), "sample_rate": int(sample_rate),
                "seed": int(seed), "n_test": int(n_test), "n_generated": int(n_generated),
                "voices": list(voices), "rates": [int(r) for r in rates],
                "seconds": {p: sum(f["samples"] for f in files if f["split"] == p) /
                            sample_rate for p in ("train", "test")},
                "files": files}
    with atomic_open(out / MANIFEST, "w") as fh:
        json.dump(manifest, fh, indent=1)
    return manifest
