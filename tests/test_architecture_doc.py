"""docs/architecture.md's worked example ("Adding an op") runs and its checks pass."""
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_worked_example_runs():
    blocks = python_blocks()
    assert len(blocks) == 1 and "gradcheck(swish" in blocks[0]
    namespace = {"__name__": "architecture_example"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    assert namespace["Swish"].__name__ == "Swish"


def test_the_example_would_catch_a_wrong_backward():
    import pytest

    from tinygen.testing import GradcheckError

    wrong = python_blocks()[0].replace("(s + x * s * (1 - s))", "s")
    with pytest.raises(GradcheckError):
        exec(compile(wrong, str(DOC), "exec"), {"__name__": "architecture_example"})
