"""benchmarks.kernels without a GPU: it imports, refuses clearly, and each of its rows
computes the same thing on both sides (tinygen's kernels under the CUDA emulator,
PyTorch on the CPU), through the same measuring and reporting code as on a GPU."""
import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygen as tg

ROOT = Path(__file__).resolve().parents[1]


def test_imports_without_cupy_or_torch():
    code = ("import sys, benchmarks.kernels, benchmarks._kernel_workloads; "
            "print(sorted(m for m in ('cupy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(tg.cuda.is_available(), reason="a GPU is present")
@pytest.mark.parametrize("module", ["kernels", "check_kernels"])
def test_without_a_gpu_it_says_why_and_exits_2(capsys, module):
    main = __import__(f"benchmarks.{module}", fromlist=["main"]).main
    assert main([]) == 2
    err = capsys.readouterr().err
    assert f"benchmarks.{module} needs a CUDA GPU" in err
    assert "'cuda' device is not available" in err


def test_goals():
    from benchmarks._kernel_workloads import BANDWIDTH, DENSE, FASTER, MASKED

    assert MASKED.met(1.5, 0.0) and not MASKED.met(1.49, 1.0)
    assert DENSE.met(0.8, 0.0) and not DENSE.met(0.79, 0.0)
    assert FASTER.met(1.01, 0.0) and not FASTER.met(1.0, 0.0)
    assert BANDWIDTH.met(0.1, 0.7) and not BANDWIDTH.met(9.0, 0.69)


class _CallOnceTimer:
    """Stands in for GpuTimer: runs each call once and reports fixed times."""

    def __init__(self, ms):
        self.ms = ms

    def time(self, calls):
        for call in calls:
            call()
        return self.ms, (self.ms, self.ms), False


@contextlib.contextmanager
def _no_impl(name, device):
    yield


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    if shutil.which("g++") is None:
        pytest.skip("the CUDA emulator needs g++")
    return torch


@pytest.fixture
def cpu_env(torch):
    from benchmarks._kernel_workloads import Env

    return Env(np, torch, "cpu")


def _tiny():
    from benchmarks._kernel_workloads import workloads

    return {w.name: w for w in workloads("tiny")}


# float64 too: benchmarks/check_kernels.py runs every row in both precisions.
@pytest.mark.parametrize("dtype,tolerance", [(np.float32, 1e-5), (np.float64, 1e-12)],
                         ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(_tiny()))
def test_each_rows_two_sides_agree_on_the_cpu(torch, name, dtype, tolerance):
    from benchmarks._kernel_workloads import Env
    from benchmarks.kernels import measure

    workload = _tiny()[name]
    roof = {"fma_peak_GFLOPs": 1.0, "copy_bandwidth_GBs": 1.0}
    [row] = measure(workload, Env(np, torch, "cpu", dtype), ["emulator"], _CallOnceTimer(2.0),
                    roof, 0, np.random.default_rng(0), _no_impl)
    assert row["status"] == "ok", row["status"]
    assert row["rel_error"] < tolerance
    assert row["rotations"] == 2 and row["speedup"] == 1.0
    assert row["flops"] >= 0 and row["bytes"] > 0
    assert set(row["goals"]) == {goal.text for goal in workload.goals}


def test_report_files(cpu_env, tmp_path):
    from benchmarks import kernels

    workload = next(w for w in _tiny().values() if w.family == "batch_norm")
    roof = {"fma_peak_GFLOPs": 1.0, "copy_bandwidth_GBs": 1e-9, "fma_estimate_GFLOPs": None,
            "estimate_formula": "unknown"}
    rows = kernels.measure(workload, cpu_env, ["emulator"], _CallOnceTimer(1.0), roof, 0,
                           np.random.default_rng(0), _no_impl)
    rows += kernels.measure(type(workload)("broken row", "conv", "fwd", _raise), cpu_env,
                            ["emulator"], _CallOnceTimer(1.0), roof, 0, np.random.default_rng(0),
                            _no_impl)
    info = {"device": "NVIDIA Test GPU 80GB", "date": "today"}
    stem = kernels.write_results(tmp_path, info, roof, rows,
                                 kernels._parser().parse_args(["--out", str(tmp_path)]))
    assert stem.name == "nvidia-test-gpu-80gb"
    doc = json.loads(stem.with_suffix(".json").read_text())
    assert [r["row"] for r in doc["rows"]] == [workload.name, "broken row"]
    md = stem.with_suffix(".md").read_text()
    assert "faster than cuDNN: NOT met" in md  # speedup 1.0 is not faster
    assert "batchnorm >= 70% of copy bandwidth: met" in md
    assert "| broken row | - |" in md and "not run: ValueError: no such shape" in md


def _raise(env, rng):
    raise ValueError("no such shape")
