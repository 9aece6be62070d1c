"""`tinygen train / sample / eval wavenet` end to end: WAV output, bits per sample on
held-out audio, and a resume that continues the run bit for bit."""
import json
import math
import wave

import numpy as np
import pytest

from tinygen.cli import main

TINY = ["--batch-size", "4", "-o", "seconds=2.0", "-o", "sample_rate=4000", "-o", "window=128",
        "-o", "train_windows=16", "-o", "n_layers=4", "-o", "dilation_cycle=[1,2,4,8]",
        "-o", "residual_channels=8", "-o", "skip_channels=8", "--no-progress"]
MEL = ["-o", "local=mel", "-o", "n_mels=16", "-o", "mel_window=128", "-o", "mel_hop=32"]


def train(out, epochs, *extra):
    assert main(["train", "wavenet", "--epochs", str(epochs), "--out", str(out),
                 *TINY, *extra]) == 0


@pytest.fixture(scope="module")
def mel_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wavenet") / "mel"
    train(out, 1, *MEL)
    return out


def read(path):
    with wave.open(str(path), "rb") as f:
        return (f.getnchannels(), f.getsampwidth(), f.getframerate(),
                np.frombuffer(f.readframes(f.getnframes()), dtype="<i2"))


def test_sample_writes_wav_files(mel_run, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "clips" / "x.wav"
    assert main(["sample", "--run", str(mel_run), "--n", "2", "--length", "300",
                 "--temperature", "0.9", "--seed", "1", "--out", str(out)]) == 0
    paths = [tmp_path / "clips" / "x_0.wav", tmp_path / "clips" / "x_1.wav"]
    assert capsys.readouterr().out.split() == ["wrote", str(paths[0]), "wrote", str(paths[1])]
    clips = []
    for path in paths:
        channels, width, rate, pcm = read(path)
        assert (channels, width, rate, len(pcm)) == (1, 2, 4000, 300)
        clips.append(pcm)
    assert not np.array_equal(*clips)        # two held-out clips, two different draws
    # the same seed draws the same audio
    assert main(["sample", "--run", str(mel_run), "--n", "2", "--length", "300",
                 "--temperature", "0.9", "--seed", "1", "--out", str(tmp_path / "y.wav")]) == 0
    np.testing.assert_array_equal(read(tmp_path / "y_0.wav")[3], clips[0])
    # by default one clip, as long as the held-out audio allows: 800 samples = 25 hops
    assert main(["sample", "--run", str(mel_run)]) == 0
    assert len(read(mel_run / "samples_seed0.wav")[3]) == 800


def test_sample_refuses_what_audio_cannot_do(mel_run, tmp_path, capsys):
    for argv, message in (
            (["--out", str(tmp_path / "x.png")], "give a path ending in .wav"),
            (["--temperature", "0"], "--temperature must be positive"),
            (["--kind", "interpolations"], "no --kind interpolations"),
            (["--n", "9", "--length", "4000"], "too short to condition 9 clip(s)")):
        assert main(["sample", "--run", str(mel_run), *argv]) == 1
        assert message in capsys.readouterr().err


def test_eval_reports_bits_per_sample_on_held_out_audio(mel_run, capsys):
    from tinygen import no_grad, tensor
    from tinygen.nn import functional as F
    from tinygen.training import load_run

    capsys.readouterr()
    assert main(["eval", "--run", str(mel_run), "--test-limit", "3", "--no-update"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    experiment, _ = load_run(mel_run)
    experiment.config["test_limit"] = 3
    _, (codes, weights, features) = experiment.load_data()
    with no_grad():
        logits = experiment.model(codes, local_features=features)
        per_position = F.cross_entropy(logits, tensor(codes), reduction="none").numpy()
    nats = float(np.sum(per_position * weights) / np.sum(weights))
    assert metrics["test_samples"] == int(weights.sum()) > 3 * 128    # the first window's
    assert metrics["test_nll_bits_per_sample"] == pytest.approx(nats / math.log(2), rel=1e-5)
    assert 4 < metrics["test_nll_bits_per_sample"] < 8.1    # below uniform (8 bits) +- noise


def test_resume_continues_the_run_bit_for_bit_and_samples(tmp_path):
    from tinygen.training.checkpoint import load_checkpoint

    train(tmp_path / "straight", 2)
    train(tmp_path / "resumed", 1)
    assert main(["train", "wavenet", "--epochs", "2", "--out", str(tmp_path / "resumed"),
                 "--resume", "--no-progress"]) == 0
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.npz")
    assert a["epoch"] == b["epoch"] == 2 and a["step"] == b["step"] == 8
    for name, value in a["modules"]["wavenet"].items():
        np.testing.assert_array_equal(b["modules"]["wavenet"][name], value, err_msg=name)
    epochs = [json.loads((tmp_path / run / "metrics.json").read_text())["epochs"]
              for run in ("straight", "resumed")]
    for key in ("losses", "metrics"):      # (times differ, of course)
        assert [e[key] for e in epochs[0]] == [e[key] for e in epochs[1]]
    # an unconditioned model samples one second by default
    assert main(["sample", "--run", str(tmp_path / "resumed"), "--temperature", "0.5"]) == 0
    _, _, rate, pcm = read(tmp_path / "resumed" / "samples_seed0.wav")
    assert rate == len(pcm) == 4000
