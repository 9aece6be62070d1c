"""benchmarks.cpu_suite: its rows build on both frameworks and agree, and its output
comparison catches a difference (in-process, tiny work; skips without torch)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_op_rows_agree_and_compare_catches_a_difference():
    from benchmarks.cpu_suite.__main__ import _compare
    from benchmarks.cpu_suite.cases import CASES

    case = CASES["relu (64,64,16,16)"]
    ours, theirs = case.build("tinygen", True, None), case.build("torch", True, None)
    ours.step()
    theirs.step()
    a, b = ours.outputs(), theirs.outputs()
    assert _compare(a, b, case.rtol, case.atol) is None
    a["dx"] = a["dx"] * np.float32(1.01)
    assert "dx" in _compare(a, b, case.rtol, case.atol)
    del a["dx"]
    assert "one side only" in _compare(a, b, case.rtol, case.atol)


def test_model_row_hands_its_weights_to_the_twin():
    from benchmarks.cpu_suite.__main__ import _compare
    from benchmarks.cpu_suite.cases import CASES

    case = CASES["VAE (MLP 784-512-256-32) step, batch 128"]
    ours = case.build("tinygen", True, None)
    theirs = case.build("torch", True, ours.state)
    ours.step()
    theirs.step()
    assert _compare(ours.outputs(), theirs.outputs(), case.rtol, case.atol) is None


def test_the_layer_grid_runs_only_when_asked_for_and_its_rows_agree():
    """``--grid`` selects the grid's rows and nothing else; the default run none of them
    (they are not issue 12's). A grid row builds on both frameworks, and they agree."""
    from benchmarks.cpu_suite.__main__ import _compare, selected
    from benchmarks.cpu_suite.cases import CASES

    grid = selected(CASES, grid=True)
    assert grid and all(n.startswith("grid: ") for n in grid)
    assert not set(grid) & set(selected(CASES))
    assert selected(CASES, grid=True, only=["depthwise 3x3 s2"]) == ["grid: depthwise 3x3 s2 64ch"]
    case = CASES["grid: conv1d k3 64->1 L1024"]
    ours, theirs = case.build("tinygen", True, None), case.build("torch", True, None)
    ours.step()
    theirs.step()
    assert _compare(ours.outputs(), theirs.outputs(), case.rtol, case.atol) is None
