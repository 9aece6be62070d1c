"""``tinygen data``: build data sets that are made, not downloaded.

    tinygen data speech --out data/speech     # espeak-ng corpus: train/*.wav, test/*.wav
"""
from __future__ import annotations

import argparse
import sys


def cmd_speech(args: argparse.Namespace) -> int:
    from tinygen.data import DataError
    from tinygen.data.speech import RATES, VOICES, build_speech_corpus

    def progress(done, total):
        if not args.no_progress:
            print(f"\r{done}/{total} utterances", end="" if done < total else "\n",
                  file=sys.stderr, flush=True)

    try:
        manifest = build_speech_corpus(args.out, n_test=args.n_test, seed=args.seed,
                                       voices=args.voices or VOICES,
                                       rates=args.rates or RATES, progress=progress)
    except (DataError, ValueError) as exc:
        print(f"tinygen data speech: error: {exc}", file=sys.stderr)
        return 1
    seconds = manifest["seconds"]
    print(f"wrote {args.out}/: {len(manifest['files'])} utterances, "
          f"train {seconds['train']:.1f} s, test {seconds['test']:.1f} s "
          f"({manifest['espeak_ng']})")
    return 0


def add_parser(commands) -> None:
    data = commands.add_parser("data", help="build a synthesized data set")
    kinds = data.add_subparsers(dest="kind", metavar="KIND", required=True)
    speech = kinds.add_parser(
        "speech", help="speech corpus synthesized with espeak-ng (16 kHz, 16-bit mono WAV)",
        description="Synthesize the WaveNet speech corpus: the project's sentences, split "
                    "by sentence into OUT/train and OUT/test (held-out sentences), each "
                    "spoken by one of several espeak-ng voices and rates; OUT/corpus.json "
                    "records the text, voice, rate and sha256 of every file.")
    speech.add_argument("--out", required=True, metavar="DIR")
    speech.add_argument("--n-test", type=int, default=40, metavar="N",
                        help="held-out sentences (default 40)")
    speech.add_argument("--seed", type=int, default=0, help="shuffles sentences and voices")
    speech.add_argument("--voices", nargs="+", default=None, metavar="VOICE",
                        help="espeak-ng voices (default: six English voices/variants)")
    speech.add_argument("--rates", nargs="+", type=int, default=None, metavar="WPM",
                        help="speaking rates in words per minute (default 130 160 190)")
    speech.add_argument("--no-progress", action="store_true")
    speech.set_defaults(func=cmd_speech)
