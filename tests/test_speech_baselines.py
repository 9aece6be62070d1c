"""benchmarks/speech_baselines.py on a tiny corpus of two 'voices': a clean tone is far
more predictable than white noise under every baseline, and the bits follow the
definitions (a uniform marginal over the noise's codes gives ~log2 of their count)."""
import json

import numpy as np
import pytest

from tinygen.data.audio import write_wav


def _corpus(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16000
    files = []
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        for i, voice in enumerate(("tone", "noise")):
            for k in range(2):
                x = (0.5 * np.sin(2 * np.pi * (220 + 40 * k) * t) if voice == "tone"
                     else rng.uniform(-0.5, 0.5, t.size))
                name = f"{split}/{voice}{k}.wav"
                write_wav(tmp_path / name, x, 16000)
                files.append({"file": name, "split": split, "voice": voice})
    (tmp_path / "corpus.json").write_text(json.dumps({"files": files}))
    return tmp_path


def test_tone_is_predictable_and_noise_is_not(tmp_path, capsys):
    from benchmarks.speech_baselines import main

    out = tmp_path / "baselines.json"
    assert main(["--data", str(_corpus(tmp_path)), "--json", str(out)]) == 0
    rows = {r["voice"]: r for r in json.loads(out.read_text())["rows"]}
    tone, noise = rows["tone"], rows["noise"]
    # one predictor is fitted to both voices, so the tone's is not its own best
    assert tone["lpc32_bits"] + 2.5 < noise["lpc32_bits"] and noise["lpc32_bits"] > 6.5
    assert tone["lpc_residual_db"] < -15 and noise["lpc_residual_db"] > -1
    assert tone["markov2_bits"] + 5 < noise["markov2_bits"]
    # uniform noise in [-0.5, 0.5] lands on ~200 of the 256 mu-law codes, unevenly
    assert 6.5 < noise["marginal_bits"] < 8.0
    assert rows["all"]["samples"] == tone["samples"] + noise["samples"] == 4 * 4000
    assert "| tone |" in capsys.readouterr().out


def test_a_missing_corpus_is_a_clear_error(tmp_path, capsys):
    from benchmarks.speech_baselines import main

    assert main(["--data", str(tmp_path / "nowhere")]) == 2
    assert "no corpus at" in capsys.readouterr().err
