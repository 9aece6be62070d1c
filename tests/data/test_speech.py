"""The espeak-ng speech corpus: resampling, trimming, the sentence list and the split by
sentence; the corpus itself is built only where espeak-ng is installed."""
import json
import shutil
import wave

import numpy as np
import pytest

from tinygen.data.speech import build_speech_corpus, resample, trim_silence
from tinygen.data.speech_text import HANDWRITTEN, sentences


def tone(freq, rate, seconds=0.5):
    return np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def amplitude(x, freq, rate):
    """Amplitude of the ``freq`` component of x (middle half, to skip the edges)."""
    mid = x[len(x) // 4: 3 * len(x) // 4]
    t = np.arange(len(mid)) / rate
    return 2 * abs(np.mean(mid * np.exp(-2j * np.pi * freq * t)))


@pytest.mark.parametrize("rates", [(22050, 16000), (16000, 22050)])
def test_resample_keeps_a_tone_in_band(rates):
    rate_in, rate_out = rates
    y = resample(tone(440.0, rate_in), rate_in, rate_out)
    assert len(y) == int(0.5 * rate_out)
    np.testing.assert_allclose(y[len(y) // 4: 3 * len(y) // 4],
                               tone(440.0, rate_out)[len(y) // 4: 3 * len(y) // 4], atol=2e-3)


def test_resample_removes_what_the_new_rate_cannot_hold():
    # 10 kHz is above 16 kHz's Nyquist frequency: it must not alias down to 6 kHz
    y = resample(tone(10000.0, 22050), 22050, 16000)
    assert amplitude(y, 6000.0, 16000) < 1e-3 and np.abs(y[1000:-1000]).max() < 0.01


def test_trim_silence_keeps_a_margin():
    x = np.concatenate([np.zeros(1000), np.ones(50), np.zeros(1000)])
    y = trim_silence(x, 1000, margin=0.1)
    assert len(y) == 50 + 2 * 100 and y[100] == 1 and y[99] == 0


def test_sentences_are_fixed_and_distinct():
    texts = sentences()
    assert len(texts) == len(HANDWRITTEN) + 250 and len(set(texts)) == len(texts)
    assert texts == sentences()                   # the same list every time


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")


@needs_espeak
def test_corpus_is_split_by_sentence_and_reproducible(tmp_path):
    texts = ["One two three.", "The cat sat.", "Blue green red.", "Yes, no."]
    kw = dict(n_test=1, voices=("en-us", "en-gb+f3"), rates=(150, 190), texts=texts)
    a = build_speech_corpus(tmp_path / "a", **kw)
    b = build_speech_corpus(tmp_path / "b", **kw)
    assert [f["sha256"] for f in a["files"]] == [f["sha256"] for f in b["files"]]
    train = {f["text"] for f in a["files"] if f["split"] == "train"}
    test = {f["text"] for f in a["files"] if f["split"] == "test"}
    assert len(train) == 3 and len(test) == 1 and not train & test
    assert {f["voice"] for f in a["files"]} <= {"en-us", "en-gb+f3"}
    assert len({(f["voice"], f["rate"]) for f in a["files"]}) == 4   # each pair used
    for f in a["files"]:
        with wave.open(str(tmp_path / "a" / f["file"]), "rb") as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
            assert w.getnframes() == f["samples"] > 4000
    assert json.loads((tmp_path / "a" / "corpus.json").read_text())["files"] == a["files"]


@needs_espeak
def test_cli_builds_the_corpus_and_names_bad_voices(tmp_path, capsys, monkeypatch):
    from tinygen.cli import main
    import tinygen.data.speech as speech

    monkeypatch.setattr(speech, "corpus_sentences", lambda n: ["Hello there.", "Good night."])
    assert main(["data", "speech", "--out", str(tmp_path / "s"), "--n-test", "1",
                 "--voices", "en-us", "--rates", "160", "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "s").rglob("*.wav")) == ["0000.wav", "0000.wav"]
    assert main(["data", "speech", "--out", str(tmp_path / "t"), "--n-test", "1",
                 "--voices", "xx-nonexistent", "--no-progress"]) == 1
    assert "espeak-ng failed for voice 'xx-nonexistent'" in capsys.readouterr().err
