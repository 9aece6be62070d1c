"""WaveNet on a folder of utterances: the split by train/ and test/ subfolders, training
windows inside one file, the exact held-out NLL and ``tinygen eval --audio``."""
import json
import math

import numpy as np
import pytest

from tinygen import no_grad
from tinygen.cli import main
from tinygen.data.audio import mu_law_encode, synthetic_melody, write_wav
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
