"""The contract between README.md and .ci/run: CI runs the README's own test command.

README.md holds two marked ```bash blocks, each right after its HTML comment line:
`<!-- test-command -->` (set up a venv, install, run pytest; .ci/run runs it as-is) and
`<!-- main-job -->` (the main thing the project does).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"

FENCE_OPEN = re.compile(r"^```(bash|sh|shell)\s*$")
FENCE_CLOSE = re.compile(r"^```\s*$")


def block_after(marker: str) -> str:
    """The body of the ```bash block that follows `marker` (blank lines between allowed)."""
    assert README.is_file(), "README.md is missing"
    lines = README.read_text(encoding="utf-8").splitlines()
    hits = [i for i, line in enumerate(lines) if line == marker]
    assert len(hits) == 1, f"README.md must contain the line {marker!r} exactly once"
    i = hits[0] + 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    assert i < len(lines) and FENCE_OPEN.match(lines[i]), f"{marker!r} is not followed by ```bash"
    body = []
    for line in lines[i + 1:]:
        if FENCE_CLOSE.match(line):
            return "\n".join(body)
        body.append(line)
    raise AssertionError(f"the block after {marker!r} is never closed")


def test_readme_has_test_command_running_pytest():
    block = block_after("<!-- test-command -->")
    assert re.search(r"\bpytest\b", block), "the test-command block does not run pytest"


def test_readme_has_main_job_block():
    assert block_after("<!-- main-job -->").strip(), "the main-job block is empty"


def test_ci_run_is_executable_and_uses_the_marker():
    assert CI_RUN.is_file()
    assert os.access(CI_RUN, os.X_OK), ".ci/run is not executable"
    text = CI_RUN.read_text(encoding="utf-8")
    assert text.startswith("#!"), ".ci/run has no shebang"
    assert "<!-- test-command -->" in text


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ci_run_extracts_the_same_block():
    expected = block_after("<!-- test-command -->")
    out = subprocess.run([str(CI_RUN), "--print-test-command"], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    assert out.rstrip("\n") == expected.rstrip("\n")
