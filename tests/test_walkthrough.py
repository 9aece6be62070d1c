"""docs/backprop-walkthrough.md is the real output of docs/backprop_walkthrough.py.

The script executes every code block of the page; this test regenerates the page
and compares it with the committed file.  Only the line numbers of frames inside
tinygen (in the anomaly-detection traceback) are masked, so that editing a library
file does not break the page.  After a deliberate change, regenerate it with
    python docs/backprop_walkthrough.py --write
"""
import difflib
import importlib.util
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _load_script():
    spec = importlib.util.spec_from_file_location("backprop_walkthrough",
                                                  DOCS / "backprop_walkthrough.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _masked(text):
    return re.sub(r'(File "tinygen/[^"]+", line )\d+', r"\1N", text)


def test_walkthrough_page_matches_the_script_output():
    generated = _load_script().build()
    committed = (DOCS / "backprop-walkthrough.md").read_text(encoding="utf-8")
    if _masked(generated) != _masked(committed):
        diff = "".join(difflib.unified_diff(
            committed.splitlines(True), generated.splitlines(True),
            "docs/backprop-walkthrough.md (committed)", "generated now", n=2))
        pytest.fail("docs/backprop-walkthrough.md is out of date; regenerate it with "
                    "`python docs/backprop_walkthrough.py --write`:\n" + diff[:6000])


def test_walkthrough_shows_every_tool_at_work():
    page = (DOCS / "backprop-walkthrough.md").read_text(encoding="utf-8")
    assert "digraph tinygen {" in page                                 # to_dot
    assert re.search(r"step  op +incoming grad  produced grads", page)  # trace_backward
    assert re.search(r"saved for backward: [1-9][\d,]* bytes", page)    # memory before...
    assert "saved for backward: 0 bytes" in page                        # ... and after
    assert "grad_output is (sigmoid(logits) - x) / 64: True" in page    # hooks
    assert "RuntimeError: Function 'Log' returned" in page              # detect_anomaly
    loss_line = re.search(r"loss (\d\.\d+) -> (\d\.\d+)", page)         # the Adam step
    assert float(loss_line.group(2)) < float(loss_line.group(1))
