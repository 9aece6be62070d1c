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
    """Stands in for GpuTimer: runs each side's calls once, in its context, and reports
    fixed times."""

    def __init__(self, ms):
        self.ms = ms
        self.sides = None

    def time(self, sides):
        from benchmarks.kernels import Timing

        self.sides = sides
        for side in sides.values():
            with side.context():
                for call in side.calls:
                    call()
        return {name: Timing(self.ms, (self.ms, self.ms), 0.01, False) for name in sides}


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
    timer = _CallOnceTimer(2.0)
    [row] = measure(workload, Env(np, torch, "cpu", dtype), ["emulator"], timer,
                    roof, 0, np.random.default_rng(0), _no_impl)
    assert row["status"] == "ok", row["status"]
    assert row["rel_error"] < tolerance and row["max_abs_error"] < 10 * tolerance
    assert row["rotations"] == 2 and row["speedup"] == 1.0 and row["l2_cold"]
    assert row["flops"] >= 0 and row["bytes"] > 0 and row["working_set_bytes"] > 0
    assert row["ours_host_ms"] == row["cudnn_host_ms"] == 0.01
    assert set(row["goals"]) == {goal.text for goal in workload.goals}
    # ours and every baseline were timed together (interleaved), on both input sets
    assert set(timer.sides) == {"cudnn", "emulator", *row["others"]}
    assert all(len(side.calls) == 2 for side in timer.sides.values())
    if workload.family == "batch_norm":  # also against PyTorch's default dispatch
        other = row["others"]["torch default"]
        assert other["rel_error_vs_cudnn"] < tolerance and other["speedup"] == 1.0


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


# --- the method (issue 13 item 6) --------------------------------------------------------------
def test_rotation_covers_twice_the_l2_by_the_working_set():
    from benchmarks.kernels import MAX_ROTATION_BYTES, MIN_ROTATIONS, rotation_count

    l2 = 50 << 20
    assert rotation_count(1 << 20, l2) == 101           # 100 others of 1 MB = 2 x 50 MB
    assert rotation_count(200 << 20, l2) == MIN_ROTATIONS
    assert rotation_count(1 << 10, l2) * (1 << 10) <= MAX_ROTATION_BYTES
    assert rotation_count(1, 0) == MIN_ROTATIONS


def test_working_set_counts_every_array_a_case_makes(torch):
    from benchmarks._kernel_workloads import Env

    env = Env(np, torch, "cpu")
    with env.tracking() as outer:
        env.array(np.zeros(10, np.float32))
        with env.tracking() as inner:
            env.zeros((3, 4))
        env.array(np.zeros(2, np.float64))
    assert inner[0] == 48 and outer[0] == 40 + 48 + 16
    # A causal conv row: x and w for ours; cuDNN's padded copy is made inside its call.
    workload = next(w for w in _tiny().values() if w.name.startswith("causal") and "fwd" in w.name)
    with env.tracking() as total:
        case = workload.build(env, np.random.default_rng(0))
    assert total[0] == case.bytes - 4 * 2 * 3 * 11  # x and w; the output y is each call's


def test_compare_catches_an_outlier_that_l2_hides():
    from benchmarks._kernel_workloads import Env
    from benchmarks.kernels import MAX_ABS_TOLERANCE, REL_TOLERANCE, compare

    env = Env(np, None, "cpu")
    theirs = np.ones(1_000_000)
    ours = theirs.copy()
    ours[123] += 0.05
    rel_l2, max_abs = compare(ours, theirs, env)
    assert rel_l2 < REL_TOLERANCE and max_abs > MAX_ABS_TOLERANCE
    assert compare((ours,), (theirs, theirs), env) == (np.inf, np.inf)
    assert compare(np.full(3, np.nan), np.ones(3), env) == (np.inf, np.inf)


def test_causal_pad_copy_is_in_cudnns_time(torch, cpu_env, monkeypatch):
    calls = []
    pad = torch.nn.functional.pad
    monkeypatch.setattr(torch.nn.functional, "pad", lambda *a, **k: calls.append(1) or pad(*a, **k))
    rows = {w.name: w for w in _tiny().values() if w.name.startswith("causal conv1d k2 d2")}
    for name, workload in rows.items():
        case = workload.build(cpu_env, np.random.default_rng(0))
        calls.clear()
        result = case.theirs()
        if name.endswith("dgrad"):  # the gradient comes back cut to the unpadded length
            assert result.shape[-1] == 11 and result.is_contiguous()
        else:
            assert calls == [1], name


class _FakeCupy:
    """Just enough of cupy for GpuTimer: kernels and events that do nothing."""

    class _Event:
        def record(self):
            pass

        def synchronize(self):
            pass

    def __init__(self):
        outer = self

        class cuda:
            Event = _FakeCupy._Event

            @staticmethod
            def get_elapsed_time(start, end):
                return 1.0

            class Device:
                def synchronize(self):
                    pass

        self.cuda = cuda
        self.spins = []
        self.RawKernel = lambda code, name: (lambda grid, block, args: outer.spins.append(args))


def test_timer_interleaves_sides_and_rotates_sets_across_them():
    from benchmarks.kernels import GpuTimer, Side

    log = []
    entered = []

    @contextlib.contextmanager
    def context():
        entered.append("aot")
        yield

    sets = 4
    sides = {"cudnn": Side([lambda i=i: log.append(("cudnn", i)) for i in range(sets)]),
             "aot": Side([lambda i=i: log.append(("aot", i)) for i in range(sets)], context)}
    timer = GpuTimer(_FakeCupy(), samples=4, inner=3, warmup=1)
    timings = timer.time(sides)
    assert set(timings) == {"cudnn", "aot"}
    assert timings["aot"].ms == 1.0 / 3 and timings["aot"].host_ms >= 0
    timed = log[-4 * 2 * 3:]  # the samples: 4 x 2 sides x 3 calls
    batches = [timed[i:i + 3] for i in range(0, len(timed), 3)]
    firsts = [batch[0][0] for batch in batches[::2]]
    assert firsts == ["cudnn", "aot", "cudnn", "aot"]  # who goes first alternates
    for position, (_, index) in enumerate(timed):  # one cursor over every side's calls
        later = [j for j, (_, other) in enumerate(timed) if j > position and other == index]
        assert not later or later[0] - position == sets
    assert entered and all(name == "aot" for name in entered)


def test_tf32_settings_are_read_back(torch):
    from benchmarks.kernels import tf32_settings

    torch.backends.cuda.matmul.allow_tf32 = False
    settings = tf32_settings(torch)
    assert settings["torch.backends.cuda.matmul.allow_tf32"] is False
    assert settings["torch.get_float32_matmul_precision"] == "highest"
    assert "CUPY_TF32" in settings
