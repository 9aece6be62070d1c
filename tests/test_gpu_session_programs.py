"""The GPU session's programs without a GPU: benchmarks/check_kernels.py's check (on the
CUDA emulator, against PyTorch CPU) passes real kernels and fails planted wrong,
unrepeatable and mismatched results; benchmarks/gpu_models.py's PyTorch WaveNet
generator gives tinygen's step-kernel logits; the 'odd' sizes cross the tile edges."""
import contextlib
import shutil

import numpy as np
import pytest

import tinygen as tg

needs_emulator = pytest.mark.skipif(shutil.which("g++") is None,
                                    reason="the CUDA emulator needs g++")


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _check(torch, workload, impls=("emulator",), use_impl=None):
    from benchmarks._kernel_workloads import Env
    from benchmarks.check_kernels import check_row

    def cpu_env(dtype):
        return Env(np, torch, "cpu", dtype)

    use_impl = use_impl or (lambda impl: contextlib.nullcontext())
    return check_row(workload, cpu_env, torch, list(impls), use_impl, lambda: None)


def _tiny(text):
    from benchmarks._kernel_workloads import workloads

    [workload] = [w for w in workloads("tiny") if text in w.name]
    return workload


@needs_emulator
@pytest.mark.parametrize("text", ["conv2d 3x3 N2 3->3 5x6 pad1 dgrad",
                                  "batchnorm train (4,3,3,2) bwd", "WaveNet step"])
def test_real_kernels_pass_in_both_dtypes(torch, text):
    records = _check(torch, _tiny(text))
    assert [r["dtype"] for r in records] == ["float64", "float32"]
    for r in records:
        assert r["ok"], r
        assert r["emulator_error"] <= r["tolerance"] and r["emulator_repeatable"]
    assert records[0]["tolerance"] == 1e-10 and records[1]["tolerance"] == 1e-5


def _planted(ours):
    """The tiny gated-activation row with ``ours`` replaced by ``ours(real_call)``."""
    import dataclasses

    real = _tiny("gated activation (2,4,3,2) fwd")

    def build(env, rng):
        case = real.build(env, rng)
        return dataclasses.replace(case, ours=ours(case.ours))
    return dataclasses.replace(real, build=build)


@needs_emulator
def test_a_wrong_result_fails_float64_at_its_tolerance(torch):
    def slightly_off(call):
        return lambda: call() * (1 + 1e-9)       # passes float32's 1e-5, not float64's 1e-10
    f64, f32 = _check(torch, _planted(slightly_off))
    assert not f64["ok"] and 5e-10 < f64["emulator_error"] < 2e-9
    assert f32["ok"]


@needs_emulator
def test_a_result_that_moves_between_runs_fails(torch):
    def moving(call):
        calls = iter(range(100))
        return lambda: call() * (1 + (next(calls) % 2) * 1e-6)  # every other run, 1e-6 off
    for record in _check(torch, _planted(moving)):
        assert not record["ok"] and not record["emulator_repeatable"]


@needs_emulator
def test_paths_that_differ_fail(torch):
    active = {}

    @contextlib.contextmanager
    def tracking(impl):
        active["impl"] = impl
        yield

    def per_path(call):
        return lambda: call() * (1 + (1e-6 if active["impl"] == "aot" else 0.0))
    records = _check(torch, _planted(per_path), impls=("nvrtc", "aot"), use_impl=tracking)
    for record in records:
        assert record["nvrtc_repeatable"] and record["aot_repeatable"]
        assert not record["impls_same_bits"] and not record["ok"]


@needs_emulator
def test_a_failing_call_is_reported_not_raised(torch):
    def broken(call):
        def fail():
            raise RuntimeError("launch failed")
        return fail
    for record in _check(torch, _planted(broken)):
        assert not record["ok"] and record["error"] == "RuntimeError: launch failed"


def test_the_float32_reference_sees_the_float32_inputs():
    from benchmarks.check_kernels import RoundedEnv

    env = RoundedEnv(np, None, "cpu", np.float64)
    host = np.array([0.1, 1 / 3, np.pi])
    assert np.array_equal(env.array(host), host.astype(np.float32).astype(np.float64))
    assert env.array(np.array([3, 5])).dtype.kind == "i"           # integers untouched


def test_odd_sizes_cross_the_tile_edges():
    from benchmarks._kernel_workloads import workloads

    rows = workloads("odd")
    names = [w.name for w in rows]
    families = {w.family for w in rows}
    assert families == {w.family for w in workloads("tiny")}
    assert any("37->37 13x11" in n for n in names) and any("L301" in n for n in names)
    assert len(names) == len(set(names))
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        workloads("huge")


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_the_torch_wavenet_generator_gives_tinygens_step_logits(torch, kernel_size):
    from benchmarks.gpu_models import TorchWaveNetGenerator
    from tinygen.models.wavenet.model import WaveNet, sample_codes

    m = WaveNet(5, dilation_cycle=(1, 2, 4), residual_channels=6, skip_channels=7,
                quantization=11, kernel_size=kernel_size, dtype=np.float64)
    m.reset_parameters(np.random.default_rng(0))
    state = {k: np.array(v.numpy()) for k, v in m.state_dict().items()}
    batch = 3
    ours = m._fast_stepper(batch, None, None)
    theirs = TorchWaveNetGenerator(torch, state, m.dilations, batch, "cpu")
    rng = np.random.default_rng(1)
    previous = None
    with tg.no_grad(), torch.no_grad():
        for _ in range(20):          # past the receptive field (1 + (k-1) * 10)
            a = ours(previous)
            b = theirs.step(previous).numpy()
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
            previous = sample_codes(a, 1.0, rng.random(batch))


def test_the_step_profile_names_where_the_host_time_goes(torch, capsys):
    """gpu_session's profile step: cProfile of tinygen's gated PixelCNN step (here on
    the CPU), sorted by own time, with the engine's apply among the functions."""
    from benchmarks.gpu_models import Sync, profile_step

    profile_step(tg, torch, "cpu", 1, Sync("cpu"), top=30)
    out = capsys.readouterr().out
    assert "gated PixelCNN h=48 L=8 step, batch 32: 1 step(s) under cProfile" in out
    assert "Ordered by: internal time" in out and "Ordered by: cumulative time" in out
    assert "autograd/function.py" in out and "(apply)" in out
