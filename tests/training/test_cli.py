"""`tinygen train / sample / eval` end to end through tinygen.cli.main."""
import json

import pytest
from PIL import Image

from tinygen.cli import main


def test_train_classifier_end_to_end(tmp_path, subset_dir, capsys):
    out = tmp_path / "run"
    rc = main(["train", "classifier", "--epochs", "1", "--limit", "256", "--out", str(out),
               "--data", str(subset_dir), "--test-limit", "200", "--batch-size", "32",
               "-o", "width=4", "-o", "hidden=16", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "classifier epoch 1/1: loss" in captured.out and "test_accuracy" in captured.out
    for name in ("checkpoint.npz", "loss.png", "metrics.json"):
        assert (out / name).is_file()
    assert not (out / "samples.png").exists()  # a classifier has nothing to sample
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["width"] == 4 and metrics["config"]["limit"] == 256
    assert metrics["data"] == {"dataset": "fashion-mnist", "train_images": 256,
                               "test_images": 200, "embedded_subset": False,
                               "source": [str(subset_dir)]}
    assert f"wrote {out}/: checkpoint.npz, loss.png, metrics.json" in captured.out
    assert 0.0 <= metrics["metrics"]["test_accuracy"] <= 1.0
    with Image.open(out / "loss.png") as im:
        assert im.size == (800, 480)

    # eval: prints the metrics and merges them into metrics.json
    assert main(["eval", "--run", str(out), "--test-limit", "100"]) == 0
    printed = json.loads(capsys.readouterr().out)
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["eval"]["metrics"] == printed and doc["eval"]["test_images"] == 100

    # sample: the classifier cannot, and says so
    assert main(["sample", "--run", str(out)]) == 1
    assert "does not generate samples" in capsys.readouterr().err

    # resume one more epoch
    assert main(["train", "classifier", "--epochs", "2", "--out", str(out), "--resume",
                 "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 2


def test_sample_command(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", tiny, "--epochs", "1", "--limit", "32", "--out", str(out),
                 "--no-progress"]) == 0
    png = tmp_path / "grid.png"
    assert main(["sample", "--run", str(out), "--n", "6", "--nrow", "3", "--out", str(png),
                 "--seed", "1"]) == 0
    assert f"wrote {png}" in capsys.readouterr().out
    with Image.open(png) as im:
        assert im.size == (3 * 58 + 2, 2 * 58 + 2)
    assert main(["sample", "--run", str(out), "--kind", "interpolations"]) == 1
    assert "no --kind interpolations" in capsys.readouterr().err
    assert main(["sample", "--run", str(out), "--temperature", "0.5"]) == 1
    assert "--temperature applies to audio models only" in capsys.readouterr().err


def test_unknown_model(capsys):
    assert main(["train", "no-such-model", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'no-such-model'" in err and "classifier" in err


def test_unknown_dataset_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "classifier", "--dataset", "cifar10"])
    assert e.value.code == 2
    assert "invalid choice: 'cifar10'" in capsys.readouterr().err


def test_unreadable_data_path(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["train", "classifier", "--data", str(missing), "--out",
                 str(tmp_path / "run"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinygen train: error: Fashion-MNIST not found")
    assert str(missing) in err


def test_checkpoint_of_another_model(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", tiny, "--epochs", "1", "--limit", "32", "--out", str(out),
                 "--no-progress"]) == 0
    assert main(["train", "classifier", "--out", str(out), "--resume", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"checkpoint of model '{tiny}', not 'classifier'" in err


def test_corrupt_checkpoint(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(b"garbage")
    for argv in (["train", tiny, "--out", str(out), "--resume"],
                 ["sample", "--run", str(out)], ["eval", "--run", str(out)]):
        assert main(argv + (["--no-progress"] if argv[0] == "train" else [])) == 1
        err = capsys.readouterr().err
        assert str(out / "checkpoint.npz") in err and "error" in err


def test_missing_run(tmp_path, capsys):
    assert main(["eval", "--run", str(tmp_path / "nope")]) == 1
    assert "no such run directory" in capsys.readouterr().err


def test_bad_option_syntax(capsys):
    with pytest.raises(SystemExit):
        main(["train", "classifier", "-o", "width"])
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_unknown_model_option(tiny, tmp_path, capsys):
    assert main(["train", tiny, "-o", "depth=3", "--out", str(tmp_path), "--no-progress"]) == 1
    assert "unknown option 'depth'" in capsys.readouterr().err


def test_subset_fallback_is_recorded(tmp_path, monkeypatch, capsys):
    from tinygen.data import SubsetWarning
    from tinygen.data import fashion_mnist as fm

    monkeypatch.delenv("TINYGEN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fm, "SYSTEM_DIRS", (tmp_path / "system",))
    out = tmp_path / "run"
    with pytest.warns(SubsetWarning):
        assert main(["train", "classifier", "--epochs", "1", "--limit", "64", "--out",
                     str(out), "--test-limit", "50", "-o", "width=2", "-o", "hidden=4",
                     "--batch-size", "32",
                     "--no-progress"]) == 0
    data = json.loads((out / "metrics.json").read_text())["data"]
    assert data["embedded_subset"] is True and data["source"] == ["embedded subset"]
