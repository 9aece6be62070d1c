"""How predictable the espeak-ng speech corpus is, per voice: the held-out bits per
mu-law sample of three models that need no training beyond counting and least squares.

    python -m benchmarks.speech_baselines [--data data/speech] [--json PATH]

The corpus is ``tinygen data speech``'s (corpus.json names each file's voice and rate).
Models, fitted on all training utterances and scored on each voice's held-out ones:

- marginal: the training codes' frequencies (add-0.5 smoothing);
- Markov-2: p(code | previous two codes) from training counts (add-0.1 smoothing over
  the 256 codes);
- LPC-32: a least-squares linear predictor of the decoded signal from its previous 32
  samples, with a Gaussian residual whose scale is the residual's rms over the previous
  64 samples (floor 1e-4); a code's probability is the Gaussian's mass over the code's
  amplitude bin (bins split halfway between decoded codes), mixed with 1e-6 of uniform.

Also per voice: the LPC residual's level against the signal's (dB).  WaveNet's held-out
NLL (``tinygen eval --run RUN --audio DATA/test``) is read against these; a voice whose
LPC residual is loud noise (espeak's ``breath`` variants) puts a floor under any model.
"""
import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from tinygen.data.audio import mu_law_decode, mu_law_encode, read_wav
from tinygen.data.speech import MANIFEST

ORDER = 32
SCALE_WINDOW = 64
Q = 256


def _load(data, split):
    manifest = json.loads((data / MANIFEST).read_text())
    out = []
    for entry in manifest["files"]:
        if entry["split"] == split:
            pcm, _ = read_wav(data / entry["file"])
            codes = mu_law_encode(pcm.astype(np.float64) / 32768.0)
            out.append((entry["voice"], codes))
    return out


def _lagged(x, order):
    """(len(x) - order, order) matrix of the previous ``order`` samples, and the targets."""
    windows = np.lib.stride_tricks.sliding_window_view(x, order + 1)
    return windows[:, :order], windows[:, order]


def fit_lpc(signals, order=ORDER):
    gram, rhs = np.zeros((order, order)), np.zeros(order)
    for x in signals:
        past, target = _lagged(x, order)
        gram += past.T @ past
        rhs += past.T @ target
    return np.linalg.solve(gram + 1e-9 * np.eye(order), rhs)


def lpc_bits(codes, coef, centres, edges):
    """Bits per code of the LPC model on one utterance (from sample ORDER on), and the
    residual and signal power."""
    x = centres[codes]
    past, target = _lagged(x, len(coef))
    pred = past @ coef
    resid = target - pred
    power = np.concatenate([np.zeros(1), np.cumsum(resid ** 2)])
    n = np.arange(len(resid))
    start = np.maximum(n - SCALE_WINDOW, 0)
    count = np.maximum(n - start, 1)
    scale = np.sqrt((power[n] - power[start]) / count)
    scale = np.maximum(np.where(n == 0, np.std(x) + 1e-4, scale), 1e-4)
    c = codes[len(coef):]
    erf = np.vectorize(math.erf, otypes=[float])
    lo = (edges[c] - pred) / (scale * math.sqrt(2.0))
    hi = (edges[c + 1] - pred) / (scale * math.sqrt(2.0))
    mass = 0.5 * (erf(hi) - erf(lo))
    p = (1 - 1e-6) * np.clip(mass, 0.0, 1.0) + 1e-6 / Q
    return -np.log2(p), float(np.sum(resid ** 2)), float(np.sum(target ** 2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/speech"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not (args.data / MANIFEST).is_file():
        print(f"speech_baselines: no corpus at {args.data} (build one with "
              f"`tinygen data speech --out {args.data}`)", file=sys.stderr)
        return 2
    train, test = _load(args.data, "train"), _load(args.data, "test")
    all_train = np.concatenate([c for _, c in train])

    marginal = np.bincount(all_train, minlength=Q) + 0.5
    marginal = np.log2(marginal / marginal.sum())
    counts = np.zeros((Q, Q, Q), dtype=np.float32)
    for _, c in train:
        np.add.at(counts, (c[:-2], c[1:-1], c[2:]), 1.0)
    markov = np.log2((counts + 0.1) / (counts.sum(axis=2, keepdims=True) + 0.1 * Q))
    centres = mu_law_decode(np.arange(Q))
    edges = np.concatenate([[-np.inf], (centres[1:] + centres[:-1]) / 2, [np.inf]])
    coef = fit_lpc([centres[c] for _, c in train])

    per_voice = defaultdict(lambda: defaultdict(float))
    for voice, c in test:
        bits, resid, signal = lpc_bits(c, coef, centres, edges)
        utterance = {"samples": len(c), "marginal": -float(marginal[c].sum()),
                     "markov2_samples": len(c) - 2,
                     "markov2": -float(markov[c[:-2], c[1:-1], c[2:]].sum()),
                     "lpc_samples": len(bits), "lpc": float(bits.sum()),
                     "resid_power": resid, "signal_power": signal}
        for key in (voice, "all"):      # each utterance counts for its voice and in all
            for name, value in utterance.items():
                per_voice[key][name] += value
    rows = []
    for voice, v in per_voice.items():
        rows.append({"voice": voice, "samples": int(v["samples"]),
                     "marginal_bits": v["marginal"] / v["samples"],
                     "markov2_bits": v["markov2"] / v["markov2_samples"],
                     "lpc32_bits": v["lpc"] / v["lpc_samples"],
                     "lpc_residual_db": 10 * math.log10(v["resid_power"] / v["signal_power"])})
    rows.sort(key=lambda r: (r["voice"] == "all", r["voice"]))
    print(f"| voice | held-out samples | marginal | Markov-2 | LPC-{ORDER} | LPC residual (dB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['voice']} | {r['samples']} | {r['marginal_bits']:.2f} | "
              f"{r['markov2_bits']:.2f} | {r['lpc32_bits']:.2f} | {r['lpc_residual_db']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"data": str(args.data), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
