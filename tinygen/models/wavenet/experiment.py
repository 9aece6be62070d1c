"""``tinygen train wavenet``: WaveNet on mu-law audio.

Data (option ``audio``): ``"melody"`` (the default) is ``synthetic_melody(seconds,
sample_rate, seed=melody_seed)``; otherwise a folder of 16-bit WAV files (``*.wav`` or
``*.WAV``, sorted by name, all at one sample rate).  A folder holding ``train/`` and
``test/`` subfolders (``tinygen data speech`` makes one) is split by those: the
held-out part is whole utterances of sentences never trained on.  Any other folder
(or the melody) is concatenated and split 90% / 10%.  Option ``test_audio`` (``tinygen
eval --audio DIR``) replaces the held-out part by the WAV files of another folder, which
must have the training sample rate.  Both parts are mu-law encoded to ``quantization``
codes.  ``limit`` / ``test_limit`` cap the number of windows (the test windows kept
are spread evenly over the held-out part).  (The runner's ``dataset`` option is
ignored: it only knows image sets.)

Training windows: ``train_windows`` windows of ``window`` samples at random (seeded)
starts, each inside one file (one segment of the 90% part).  The first positions of a
training window see zero-padded context; that is the usual, cheap approximation.

Held-out NLL is exact: every held-out sample is scored exactly once, with its whole
receptive field of real audio (or the true start of its file).  A test window is a
``window``-sample chunk of a file preceded by ``receptive_field`` samples of context
from the same file; a weight array (1 = scored, 0 = context or padding) rides with the
codes, so ``evaluate`` returns the NLL of the files as the model would score them in
one pass.  With ``local=mel`` too: the context is the receptive field rounded up to
whole feature frames, and each window carries its file's frames.

Local conditioning (``-o local=mel``): the model is conditioned on a log-mel spectrogram
(``tinygen.data.mel``; ``n_mels`` bands, ``mel_window``-sample FFT windows, one frame per
``mel_hop`` samples) of the very audio it models, computed file by file.  Windows then
start at multiples of ``mel_hop`` in their file (and ``window`` must be one), so each
window comes with its own frames; the held-out NLL is then the exact NLL of each file
given its features (a conditional NLL: not comparable with an unconditioned model's).
At sampling time the model is conditioned on the features of held-out audio.

Training minimises the NLL (nats per sample, every position of the window) with Adam.
``evaluate`` reports the test NLL in bits per sample; when the held-out files are a
corpus that ``tinygen data speech`` made (its ``corpus.json`` names each file's voice),
also per voice, as ``test_nll_bits_per_sample_<voice>`` (the voices differ by more than a
bit per sample: see benchmarks/speech_baselines.py).  There is no image ``sample`` (the
runner then draws no grids); ``sample_audio`` draws WAV-ready audio for ``tinygen
sample``.
"""
import json
import math
from pathlib import Path

import numpy as np

from ... import optim, no_grad
from ...backend import to_numpy
from ...data.audio import (mu_law_decode, mu_law_encode, read_wav_folder, synthetic_melody,
                           wav_files)
from ...data.errors import DataError
from ...data.mel import log_mel_spectrogram
from ..experiment import Experiment, register
from .model import WaveNet

DEFAULTS = {
    "batch_size": 8,
    "lr": 1e-3,
    "audio": "melody",          # or a folder of 16-bit WAV files
    "seconds": 30.0,            # length of the synthetic melody
    "sample_rate": 16000,
    "melody_seed": 0,
    "window": 1024,             # samples per training/test window
    "train_windows": 2000,
    "n_layers": 10,
    "dilation_cycle": [2 ** i for i in range(10)],
    "residual_channels": 32,
    "skip_channels": 64,
    "quantization": 256,
    "kernel_size": 2,
    "test_audio": None,         # a folder of WAV files to evaluate on (tinygen eval --audio)
    "local": None,              # "mel": condition on the audio's log-mel spectrogram
    "n_mels": 40,
    "mel_window": 1024,         # FFT window, samples
    "mel_hop": 256,             # samples per feature frame
}
HELD_OUT = 0.1


@register("wavenet")
class WaveNetExperiment(Experiment):
    datasets = None  # audio comes from the ``audio`` option
    example_unit = "window"     # a batch row is a window of audio

    @classmethod
    def default_config(cls):
        return dict(DEFAULTS)

    def __init__(self, config):
        super().__init__(config)
        config = self.config
        local = config.get("local")
        if local not in (None, "mel"):
            raise ValueError(f"local must be null (no local conditioning) or 'mel', got "
                             f"{local!r}")
        if local == "mel" and int(config["window"]) % int(config["mel_hop"]):
            raise ValueError(f"with local=mel, window ({config['window']}) must be a multiple "
                             f"of mel_hop ({config['mel_hop']})")
        self.model = WaveNet(int(config["n_layers"]), tuple(config["dilation_cycle"]),
                             int(config["residual_channels"]), int(config["skip_channels"]),
                             int(config["quantization"]), int(config["kernel_size"]),
                             local_channels=int(config["n_mels"]) if local else None,
                             local_hop=int(config["mel_hop"]) if local else None)
        self.model.reset_parameters(np.random.default_rng([int(config["seed"]), 1]))
        if config["device"] != "cpu":
            self.model.to(device=config["device"])
        self.optimizer = optim.Adam(self.model.parameters(), lr=float(config["lr"]))
        self.voice_names = []       # the held-out voices (load_data), for evaluate

    @property
    def local(self):
        return self.config.get("local") is not None

    # --- data ----------------------------------------------------------------------------------
    def load_parts(self):
        """``(train_parts, held_out_parts, sample_rate)``: lists of float audio arrays in
        [-1, 1], one per file (a 90/10 split gives one part each); ``test_audio``, when
        set, replaces the held-out parts."""
        c = self.config
        held_out = self.held_out_folder()
        if c["audio"] == "melody":
            rate = int(c["sample_rate"])
            audio = synthetic_melody(float(c["seconds"]), rate, seed=int(c["melody_seed"]))
            train, test = _split(audio)
        else:
            folder = Path(c["audio"])
            if (folder / "train").is_dir() and (folder / "test").is_dir():
                train, rate = read_wav_folder(folder / "train")
            else:
                parts, rate = read_wav_folder(folder)
                train, test = _split(np.concatenate(parts))
        if held_out is not None:        # test/ of a split corpus, or test_audio
            test, test_rate = read_wav_folder(held_out)
            _same_rate(held_out, test_rate, rate)
        return train, test, rate

    def held_out_folder(self):
        """The folder whose WAV files are the held-out parts (None: a 90/10 split); where
        ``load_parts`` reads them and ``held_out_voices`` names their voices."""
        c = self.config
        if c.get("test_audio") is not None:
            return Path(c["test_audio"])
        if c["audio"] != "melody":
            folder = Path(c["audio"])
            if (folder / "train").is_dir() and (folder / "test").is_dir():
                return folder / "test"
        return None

    def held_out_voices(self):
        """The voice of each held-out file (in ``load_parts``' order), from the corpus
        manifest ``corpus.json`` in the held-out folder or the one above it (as ``tinygen
        data speech`` writes it); None without one, or when it leaves a file out."""
        from ...data.speech import MANIFEST

        folder = self.held_out_folder()
        if folder is None:
            return None
        for root in (folder, folder.parent):
            path = root / MANIFEST
            if not path.is_file():
                continue
            try:
                entries = json.loads(path.read_text())["files"]
                by_file = {(root / e["file"]).resolve(): str(e["voice"]) for e in entries}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{path}: not a readable corpus manifest "
                                f"({type(exc).__name__}: {exc})") from None
            voices = [by_file.get(f.resolve()) for f in wav_files(folder)]
            return None if None in voices else voices
        return None

    def split_audio(self):
        """``(train_audio, held_out_audio, sample_rate)``: each part's files concatenated."""
        train, test, rate = self.load_parts()
        return np.concatenate(train), np.concatenate(test), rate

    def features(self, audio, rate):
        """(n_mels, ceil(len(audio) / mel_hop)) float32 log-mel features of ``audio``."""
        c = self.config
        return log_mel_spectrogram(audio, rate, int(c["mel_window"]), int(c["mel_hop"]),
                                   int(c["n_mels"])).astype(np.float32)

    def load_data(self):
        """Training windows ``(codes,)``, or ``(codes, features)`` with local=mel; held-out
        scoring windows ``(codes, weights)``, then ``features`` with local=mel, then each
        window's voice (an index into ``voice_names``) when the corpus names them."""
        c = self.config
        q, w = int(c["quantization"]), int(c["window"])
        train_audio, test_audio, rate = self.load_parts()
        # training codes kept as uint8 when they fit: long runs hold many windows
        small = np.uint8 if q <= 256 else np.int64
        train = [mu_law_encode(a, q).astype(small) for a in train_audio]
        test = [mu_law_encode(a, q) for a in test_audio]
        # with local=mel every window starts on a frame boundary of its own file's features
        hop = int(c["mel_hop"]) if self.local else 1
        n = int(c["train_windows"]) if c.get("limit") is None else int(c["limit"])
        rng = np.random.default_rng([int(c["seed"]), 2])
        files, starts = _random_starts(train, w, n, rng, hop)
        train_arrays = (_windows_of(train, files, starts, w),)
        context = -(-self.model.receptive_field // hop) * hop
        codes, weights, parts, firsts = _scoring_windows(
            test, w, context, silence=int(mu_law_encode(0.0, q)))
        keep = _spread(len(codes), c.get("test_limit"))
        held_out = (codes[keep], weights[keep])
        if self.local:
            frames = w // hop
            train_features = [self.features(a, rate) for a in train_audio]
            train_arrays += (_frames_of(train_features, files, starts // hop, frames),)
            test_features = [self.features(a, rate) for a in test_audio]
            held_out += (_frames_of(test_features, parts[keep], firsts[keep] // hop,
                                    codes.shape[1] // hop),)
        voices = self.held_out_voices()
        self.voice_names = sorted(set(voices)) if voices is not None else []
        if voices is not None:     # the last array: each test window's voice (an index)
            index = {v: i for i, v in enumerate(self.voice_names)}
            held_out += (np.array([index[voices[p]] for p in parts], dtype=np.int64)[keep],)
        return train_arrays, held_out

    # --- checkpointed state --------------------------------------------------------------------
    def modules(self):
        return {"wavenet": self.model}

    def optimizers(self):
        return {"adam": self.optimizer}

    # --- training / results --------------------------------------------------------------------
    def _loss(self, batch):
        codes = np.asarray(batch[0]).astype(np.int64)
        return self.model.loss(codes, local_features=batch[1] if self.local else None)

    def train_step(self, batch, generator):
        self.model.train()
        loss = self._loss(batch)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        value = float(loss.item())
        return {"loss": value, "bits_per_sample": value / math.log(2)}

    def evaluate(self, test_arrays, generator, batch=8):
        """Held-out NLL in bits per sample: the arrays are ``load_data``'s scoring windows,
        of which only the weighted positions count (see the module docstring); an array
        of each window's voice after them adds the NLL per voice."""
        n = len(test_arrays[0])
        total, count = 0.0, 0.0
        by_voice = len(test_arrays) == (4 if self.local else 3)
        voice_total = np.zeros(len(self.voice_names) if by_voice else 0)
        voice_count = np.zeros_like(voice_total)
        with no_grad():
            for lo in range(0, n, batch):
                part = tuple(np.asarray(a[lo:lo + batch]) for a in test_arrays)
                codes, weights = part[:2]
                features = part[2] if self.local else None
                logits = self.model(codes, local_features=features)
                scored = _position_nll(to_numpy(logits.data), codes) * weights
                total += float(np.sum(scored))
                count += float(np.sum(weights))
                if by_voice:
                    np.add.at(voice_total, part[-1], np.sum(scored, axis=1))
                    np.add.at(voice_count, part[-1], np.sum(weights, axis=1))
        nats = total / max(count, 1)
        metrics = {"test_nll_bits_per_sample": nats / math.log(2), "test_samples": int(count)}
        for name, t, k in zip(self.voice_names if by_voice else (), voice_total, voice_count):
            if k:
                metrics[f"test_nll_bits_per_sample_{name}"] = t / k / math.log(2)
        return metrics

    def held_out_features(self, n_clips, length):
        """(n_clips, n_mels, frames) features of consecutive held-out clips of ``length``
        samples (each starting at a multiple of the hop, so frames line up)."""
        _, test_audio, rate = self.split_audio()
        hop = int(self.config["mel_hop"])
        frames = -(-int(length) // hop)
        features = self.features(test_audio, rate)
        if n_clips * frames > features.shape[1]:
            raise DataError(f"the held-out audio ({len(test_audio)} samples) is too short to "
                            f"condition {n_clips} clip(s) of {length} samples; ask for fewer "
                            f"or shorter samples")
        return _frames_of([features], np.zeros(n_clips, dtype=np.int64),
                          np.arange(n_clips) * frames, frames)

    def generate_audio(self, n_samples, generator, temperature=1.0, n_sequences=None,
                       local_features=None):
        """Float audio in [-1, 1] from the fast (queue-based) generator: (n_samples,),
        or (n_sequences, n_samples)."""
        codes = self.model.generate(n_samples, generator, temperature,
                                    local_features=local_features, n_sequences=n_sequences)
        return mu_law_decode(codes, self.model.quantization)

    def sample_audio(self, n, length, generator, temperature=1.0):
        """``(audio (n, length) float in [-1, 1], sample_rate)``; a locally conditioned
        model follows the features of n consecutive held-out clips.  ``length`` None:
        one second, or for a locally conditioned model at most the held-out audio's
        hop-aligned n-th part."""
        _, held_out, rate = self.split_audio()
        if length is None:
            length = rate
            if self.local:
                hop = int(self.config["mel_hop"])
                length = max(1, min(length, len(held_out) // n // hop * hop))
        features = self.held_out_features(n, length) if self.local else None
        audio = self.generate_audio(length, generator, temperature, n_sequences=n,
                                    local_features=features)
        return audio, rate


def _same_rate(where, rate, expected):
    if rate != expected:
        raise DataError(f"{where}: sample rate {rate} Hz, but the model is trained on "
                        f"{expected} Hz audio")


def _split(audio):
    split = int((1.0 - HELD_OUT) * len(audio))
    return [audio[:split]], [audio[split:]]


def _spread(n, limit):
    """Indices of at most ``limit`` of ``n`` windows, spread evenly (all when None)."""
    if limit is None or int(limit) >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, int(limit)).round().astype(np.int64))


def _random_starts(parts, w, n, rng, hop=1):
    """``(part, start)`` arrays of ``n`` windows of ``w`` codes, each inside one part and
    starting at a multiple of ``hop``, uniform over all such windows."""
    counts = np.array([max(0, (len(p) - w) // hop + 1) for p in parts])
    if counts.sum() == 0:
        raise DataError(f"no training file holds a window of {w} samples (longest "
                        f"{max(map(len, parts))})")
    cum = np.cumsum(counts)
    r = rng.integers(0, cum[-1], n)
    which = np.searchsorted(cum, r, side="right")
    return which, (r - (cum[which] - counts[which])) * hop


def _windows_of(parts, which, starts, w):
    """(n, w): the codes of part which[i] from starts[i] on."""
    return np.stack([parts[i][s:s + w] for i, s in zip(which, starts)]) if len(which) else \
        np.zeros((0, w), dtype=parts[0].dtype if parts else np.int64)


def _frames_of(features, which, first_frames, frames):
    """(n, n_mels, frames): frames of features[which[i]] from first_frames[i] on, filled
    past the part's end with the features' silence (-1: those positions are padding,
    never scored, and a causal model's scored positions do not see them)."""
    n_mels = features[0].shape[0] if features else 0
    out = np.full((len(which), n_mels, frames), -1.0, dtype=np.float32)
    for k, (i, f) in enumerate(zip(which, first_frames)):
        piece = features[i][:, f:f + frames]
        out[k, :, :piece.shape[1]] = piece
    return out


def _scoring_windows(parts, w, context, silence):
    """``(codes, weights, part, first)``, the first two (n, context + w), ``part`` (n,) the
    index of the part each window comes from and ``first`` (n,) the sample of that part
    it starts at (a multiple of the hop when ``context`` and ``w`` are): every sample of
    every part scored (weight 1) exactly once, after at least ``context`` samples of its
    own part or at the part's true start.  A part's first window scores its first
    context + w samples; the next ones score w each after context samples of context
    (weight 0); the last is padded with ``silence`` (weight 0)."""
    L = int(context) + int(w)
    codes, weights, which, firsts = [], [], [], []
    for index, p in enumerate(parts):
        s = 0
        while s < len(p):
            a = max(0, s - int(context))
            e = min(len(p), a + L)
            window = np.full(L, silence, dtype=np.int64)
            weight = np.zeros(L, dtype=np.float32)
            window[:e - a] = p[a:e]
            weight[s - a:e - a] = 1.0
            codes.append(window)
            weights.append(weight)
            which.append(index)
            firsts.append(a)
            s = e
    if not codes:
        raise DataError("the held-out audio is empty")
    return (np.stack(codes), np.stack(weights), np.array(which, dtype=np.int64),
            np.array(firsts, dtype=np.int64))


def _position_nll(logits, codes):
    """(N, T) NLL in nats of ``codes`` (N, T) under ``logits`` (N, Q, T), numpy."""
    logits = logits.astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    picked = np.take_along_axis(logits, codes[:, None, :], axis=1)[:, 0]
    return log_z - picked
