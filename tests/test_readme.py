"""Issue 11: every snippet of the README runs as written ("A taste" did not: backward()
freed the graph that grad(..., create_graph=True) then needed).

Python blocks run in order in one namespace (a later block may use an earlier one's
names). Shell blocks and the commands quoted in the prose are checked without their
minutes of work: each `tinygen ...` command must parse, its model options must be real
and valid, and each `python -m benchmarks.X` must name an existing module.
(docs/backprop-walkthrough.md is executed by test_walkthrough.py.)"""
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, re.S)


def test_python_blocks_run():
    python = [code for lang, code in BLOCKS if lang == "python"]
    assert len(python) >= 2
    namespace = {}
    for code in python:
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["x"].grad is not None and namespace["h"].shape == namespace["w"].shape


def _commands():
    lines = [line for lang, code in BLOCKS if lang == "bash" for line in code.splitlines()]
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    quoted = [q.replace("\n", " ") for q in re.findall(r"`([^`]+)`", prose)]
    commands = []
    for text in lines + [q for q in quoted if len(q.split()) > 2 and "..." not in q]:
        for part in re.split(r"&&|;", text.split("#")[0]):
            words = shlex.split(part)
            if len(words) > 1 and "/" in words[1]:  # "tinygen train/sample/eval": prose
                continue
            if words[:1] == ["tinygen"] or words[:3] == ["python", "-m", "benchmarks"] or \
                    (words[:2] == ["python", "-m"] and words[2:3] and
                     words[2].startswith("benchmarks.")):
                commands.append(words)
    return commands


def test_the_readme_quotes_commands():
    names = {" ".join(c[:2]) for c in _commands()}
    assert {"tinygen train", "tinygen sample", "tinygen eval"} <= names


@pytest.mark.parametrize("words", _commands(), ids=lambda w: " ".join(w))
def test_command_is_valid(words):
    if words[0] == "python":
        module = words[2]
        path = ROOT / module.replace(".", "/")
        # a module file, or a package that python -m runs (its __main__.py)
        assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), module
        return
    from tinygen.cli import build_parser
    from tinygen.models import get_experiment
    from tinygen.training import make_config

    args = build_parser().parse_args(words[1:])
    if words[1] == "train":
        cls = get_experiment(args.model)
        options = dict(args.option)
        if options.get("audio") == "DIR":
            options["audio"] = "/some/dir"
        make_config(cls, options)
