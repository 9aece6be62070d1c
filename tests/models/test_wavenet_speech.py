"""WaveNet on a folder of utterances: the split by train/ and test/ subfolders, training
windows inside one file, the exact held-out NLL and ``tinygen eval --audio``."""
import json
import math

import numpy as np
import pytest

from tinygen import no_grad
from tinygen.cli import main
from tinygen.data.audio import mu_law_encode, synthetic_melody, write_wav
from tinygen.data.errors import DataError
from tinygen.models.wavenet.experiment import WaveNetExperiment

RATE = 4000
TINY = {"window": 64, "train_windows": 12, "n_layers": 3, "dilation_cycle": [1, 2, 4],
        "residual_channels": 4, "skip_channels": 4, "quantization": 16, "batch_size": 4}
OPTIONS = [a for k, v in TINY.items() if k != "batch_size"
           for a in ("-o", f"{k}={json.dumps(v)}")]


def write_corpus(root, lengths=(300, 150), test_lengths=(200, 40, 130), rate=RATE):
    for part, sizes in (("train", lengths), ("test", test_lengths)):
        (root / part).mkdir(parents=True)
        for i, n in enumerate(sizes):
            write_wav(root / part / f"{i}.wav", synthetic_melody(n / rate, rate, seed=i), rate)
    return root


def test_train_and_test_subfolders_split_by_file(tmp_path):
    root = write_corpus(tmp_path / "speech")
    e = WaveNetExperiment({**TINY, "audio": str(root)})
    (windows,), (codes, weights) = e.load_data()
    train_files = [mu_law_encode(synthetic_melody(n / RATE, RATE, seed=i), 16)
                   for i, n in enumerate((300, 150))]
    # every training window lies inside one training file
    for w in windows:
        assert any(any(np.array_equal(f[s:s + 64], w) for s in range(len(f) - 63))
                   for f in train_files)
    assert weights.sum() == 200 + 40 + 130          # every held-out sample, once


def test_held_out_nll_is_the_exact_nll_of_each_file(tmp_path):
    root = write_corpus(tmp_path / "speech")
    e = WaveNetExperiment({**TINY, "audio": str(root)})
    e.model.reset_parameters(np.random.default_rng(3))
    _, test = e.load_data()
    got = e.evaluate(test, np.random.default_rng(0), batch=2)
    total, count = 0.0, 0
    with no_grad():
        for i, n in enumerate((200, 40, 130)):
            codes = mu_law_encode(synthetic_melody(n / RATE, RATE, seed=i), 16)[None]
            total += e.model.loss(codes).item() * n   # one pass over the whole file
            count += n
    assert got["test_samples"] == count
    assert got["test_nll_bits_per_sample"] == pytest.approx(total / count / math.log(2),
                                                            rel=1e-5)


def test_eval_audio_scores_any_wav_folder(tmp_path, capsys):
    root = write_corpus(tmp_path / "speech")
    run = tmp_path / "run"
    assert main(["train", "wavenet", "--epochs", "1", "--out", str(run), "--batch-size", "4",
                 "-o", f"audio={root}", *OPTIONS, "--no-progress"]) == 0
    other = tmp_path / "other"
    other.mkdir()
    for i, n in enumerate((90, 170)):               # upper-case names are WAV files too
        write_wav(other / f"CLIP{i}.WAV", synthetic_melody(n / RATE, RATE, seed=7 + i), RATE)
    (other / "notes.txt").write_text("not audio")
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--audio", str(other), "--no-update"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["test_samples"] == 90 + 170
    assert 0 < metrics["test_nll_bits_per_sample"] < 5      # 16 levels: 4 bits uniform +

    write_wav(other / "CLIP9.WAV", np.zeros(100), 8000)
    assert main(["eval", "--run", str(run), "--audio", str(other), "--no-update"]) == 1
    assert "differs from the other files' 4000" in capsys.readouterr().err
    mono8k = tmp_path / "8k"
    mono8k.mkdir()
    write_wav(mono8k / "a.wav", np.zeros(100), 8000)
    assert main(["eval", "--run", str(run), "--audio", str(mono8k), "--no-update"]) == 1
    assert "sample rate 8000 Hz, but the model is trained on 4000 Hz" in \
        capsys.readouterr().err
    assert main(["eval", "--run", str(run), "--audio", str(tmp_path / "none"),
                 "--no-update"]) == 1
    assert "not a folder holding .wav files" in capsys.readouterr().err


def _manifest(root, voices_by_file):
    files = [{"file": name, "voice": voice} for name, voice in voices_by_file.items()]
    (root / "corpus.json").write_text(json.dumps({"files": files}))


def test_a_corpus_manifest_gives_the_held_out_nll_per_voice(tmp_path):
    """With the corpus.json of `tinygen data speech`, evaluate adds each voice's bits per
    sample: the exact NLL of that voice's files, whose sample-weighted mean is the
    total; a test_limit keeps each window's voice."""
    root = write_corpus(tmp_path / "speech")
    _manifest(root, {"train/0.wav": "a", "train/1.wav": "b", "test/0.wav": "b",
                     "test/1.wav": "a", "test/2.wav": "b"})
    e = WaveNetExperiment({**TINY, "audio": str(root)})
    e.model.reset_parameters(np.random.default_rng(3))
    _, test = e.load_data()
    assert len(test) == 3 and e.voice_names == ["a", "b"]
    got = e.evaluate(test, np.random.default_rng(0), batch=2)
    per_file = []
    with no_grad():
        for i, n in enumerate((200, 40, 130)):
            codes = mu_law_encode(synthetic_melody(n / RATE, RATE, seed=i), 16)[None]
            per_file.append(e.model.loss(codes).item() * n)
    bits = 1 / math.log(2)
    assert got["test_nll_bits_per_sample_a"] == pytest.approx(per_file[1] / 40 * bits, rel=1e-5)
    assert got["test_nll_bits_per_sample_b"] == pytest.approx(
        (per_file[0] + per_file[2]) / 330 * bits, rel=1e-5)
    assert got["test_nll_bits_per_sample"] == pytest.approx(
        (40 * got["test_nll_bits_per_sample_a"] + 330 * got["test_nll_bits_per_sample_b"])
        / 370, rel=1e-9)
    limited = WaveNetExperiment({**TINY, "audio": str(root), "test_limit": 2})
    _, (codes, weights, voices) = limited.load_data()
    assert len(codes) == len(voices) == 2


def test_no_voices_without_a_manifest_that_names_every_held_out_file(tmp_path):
    root = write_corpus(tmp_path / "speech")
    e = WaveNetExperiment({**TINY, "audio": str(root)})
    _, test = e.load_data()
    assert len(test) == 2 and "test_nll_bits_per_sample_a" not in \
        e.evaluate(test, np.random.default_rng(0))
    _manifest(root, {"test/0.wav": "a", "test/1.wav": "b"})          # test/2.wav missing
    assert len(e.load_data()[1]) == 2
    (root / "corpus.json").write_text("{not json")
    with pytest.raises(DataError, match="corpus.json: not a readable corpus manifest"):
        e.load_data()


MEL = {"local": "mel", "n_mels": 8, "mel_window": 64, "mel_hop": 16}


def test_mel_conditioned_windows_and_the_exact_held_out_nll_per_voice(tmp_path):
    """With local=mel: training windows inside one file at a frame boundary, with that
    file's frames; the held-out NLL of each file given its features (one pass over the
    whole file), per voice too."""
    root = write_corpus(tmp_path / "speech")
    _manifest(root, {"test/0.wav": "b", "test/1.wav": "a", "test/2.wav": "b"})
    e = WaveNetExperiment({**TINY, **MEL, "audio": str(root)})
    e.model.reset_parameters(np.random.default_rng(3))
    (windows, features), test = e.load_data()
    train_parts, test_parts, rate = e.load_parts()
    assert features.shape == (12, 8, 4) and len(test) == 4
    for codes, frames in zip(windows, features):
        found = [(f, s) for f, p in enumerate(train_parts) for s in range(0, len(p) - 63, 16)
                 if np.array_equal(mu_law_encode(p[s:s + 64], 16), codes)]
        assert found
        f, s = found[0]
        np.testing.assert_allclose(frames, e.features(train_parts[f], rate)[:, s // 16:][:, :4])
    got = e.evaluate(test, np.random.default_rng(0), batch=2)
    per_file = []
    with no_grad():
        for audio in test_parts:
            codes = mu_law_encode(audio, 16)[None]
            feats = e.features(audio, rate)[None]
            per_file.append(e.model.loss(codes, local_features=feats).item() * len(audio))
    bits = 1 / math.log(2)
    assert got["test_samples"] == 370
    assert got["test_nll_bits_per_sample"] == pytest.approx(sum(per_file) / 370 * bits,
                                                            rel=1e-5)
    assert got["test_nll_bits_per_sample_a"] == pytest.approx(per_file[1] / 40 * bits, rel=1e-5)
    assert got["test_nll_bits_per_sample_b"] == pytest.approx(
        (per_file[0] + per_file[2]) / 330 * bits, rel=1e-5)

