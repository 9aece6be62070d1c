"""Issue 11, discoverability: `tinygen train MODEL --help` lists MODEL's -o options with
type, default and meaning; the help's example is a real option; every option of every
model is described and its default passes its own check."""
import re

import pytest

from tinygen.cli import main
from tinygen.models import EXPERIMENTS, _load_all
from tinygen.training.options import SPECS, check_options, check_value
from tinygen.training import BASE_CONFIG

_load_all()
MODELS = sorted(n for n, cls in EXPERIMENTS.items() if cls.__module__.startswith("tinygen."))


def help_text(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("model", MODELS)
def test_model_help_lists_its_options(model, capsys):
    out = help_text(["train", model, "--help"], capsys)
    assert "usage: tinygen train" in out
    section = out.split(f"options of {model}")[1]
    defaults = EXPERIMENTS[model].default_config()
    for key, default in defaults.items():
        if key in BASE_CONFIG:
            continue
        row = re.search(rf"^  {key}\s+(\S+)\s+(\S+)\s+(.+)$", section, re.M)
        assert row, (key, section)
        assert row.group(3).strip() == SPECS[key].meaning
    assert f"defaults of the common flags for {model}: --epochs" in section


def test_every_option_is_described_and_its_default_valid():
    for model in MODELS:
        defaults = {**BASE_CONFIG, **EXPERIMENTS[model].default_config()}
        for key in defaults:
            if key not in ("device", "dataset", "data"):
                assert key in SPECS and SPECS[key].meaning, (model, key)
        assert check_options(defaults, defaults) == defaults, model


def test_the_help_example_is_a_real_option(capsys):
    out = help_text(["train", "--help"], capsys)
    examples = re.findall(r"-o ([a-z][a-z0-9_]*)=(\S+?)[\s)]", out)
    assert examples
    for key, value in examples:
        owners = [m for m in MODELS if key in EXPERIMENTS[m].default_config()]
        assert owners, key
        check_value(key, int(value), EXPERIMENTS[owners[0]].default_config()[key])
    assert "options of" not in out  # no model named: the general help only


def test_python_dash_m_runs_the_command():
    import subprocess
    import sys

    import tinygen

    out = subprocess.run([sys.executable, "-m", "tinygen.cli", "--version"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"tinygen {tinygen.__version__}"


def test_the_command_modules_live_in_the_cli_package():
    from pathlib import Path

    import tinygen

    package = Path(tinygen.__file__).parent
    for name in ("train", "graph", "data"):
        assert (package / "cli" / f"{name}.py").is_file()
        assert not (package / f"cli_{name}.py").exists()


@pytest.mark.parametrize("model", MODELS)
def test_an_experiment_built_directly_takes_its_defaults(model):
    """An Experiment made in a script or test from a partial config builds with its
    family's defaults merged under it, as the runner would give them (the classifier
    once read its width from the config it was passed, a KeyError when left out)."""
    experiment = EXPERIMENTS[model]({"limit": 8})
    for key, default in EXPERIMENTS[model].default_config().items():
        assert experiment.config[key] == default, key
    assert experiment.config["limit"] == 8
