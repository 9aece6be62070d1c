"""tinygen.backend.kernels: one registry picks every op family's kernels."""
import subprocess
import sys

import numpy as np
import pytest

import tinygen as tg
from tinygen.backend import kernels as K

FAMILIES = ("conv", "batch_norm", "pooling", "elementwise")


@pytest.mark.parametrize("family", FAMILIES)
def test_cpu_implementations_can_be_switched(family):
    """Each switch is seen at once, though kernels() keeps the CPU's module per family."""
    x = np.zeros(3)
    assert K.get_impl("cpu") == "numba"
    for _ in range(2):
        assert K.kernels(family, x).__name__ == f"tinygen.backend.numba_kernels.{family}"
        with K.use_impl("reference"):
            assert K.kernels(family, x).__name__ == f"tinygen.backend.reference.{family}"
    assert K.get_impl("cpu") == "numba"


def test_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match=r"unknown cpu kernel implementation 'cudnn'.*numba"):
        K.set_impl("cpu", "cudnn")


def test_environment_variable_selects_the_cpu_implementation():
    code = "from tinygen.backend import kernels; print(kernels.get_impl('cpu'))"
    for name in ("reference", "numba"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**__import__("os").environ, K.CPU_IMPL_ENV: name})
        assert out.stdout.strip() == name, out.stderr
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, K.CPU_IMPL_ENV: "fortran"})
    assert "TINYGEN_CPU_IMPL='fortran'" in out.stderr


def test_devices_without_kernels_get_a_clear_error(monkeypatch):
    # conv without its 'cuda' kernels (tinygen.backend.cuda_kernels registers them)
    monkeypatch.setattr(K, "_REGISTRY", {"conv": {"cpu": dict(K._REGISTRY["conv"]["cpu"])}})
    monkeypatch.setattr(K, "device_of", lambda array: "cuda")
    with pytest.raises(RuntimeError, match=r"conv2d: no cuda kernels are registered.*\.cpu\(\)"):
        K.kernels("conv", np.zeros(1), "conv2d")


def test_a_registered_device_implementation_is_used(monkeypatch):
    # copied down to the per-device dicts, which register() writes into: a shallower copy
    # leaves the sentinel in the real registry for every later test of this process
    monkeypatch.setattr(K, "_REGISTRY", {f: {dev: dict(impls) for dev, impls in d.items()}
                                         for f, d in K._REGISTRY.items()})
    monkeypatch.setattr(K, "_selected", dict(K._selected))
    monkeypatch.setattr(K, "device_of", lambda array: "cuda")
    sentinel = object()
    K.register("conv", "cuda", "nvrtc", sentinel)
    assert K.get_impl("cuda") == "nvrtc"
    assert K.kernels("conv", np.zeros(1)) is sentinel


def test_ops_give_the_same_results_on_both_cpu_implementations():
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((2, 3, 6, 6)), dtype=tg.float64)
    w = tg.tensor(rng.standard_normal((4, 3, 3, 3)), dtype=tg.float64)
    results = {}
    for impl in ("numba", "reference"):
        with K.use_impl(impl):
            y = tg.nn.functional.conv2d(x, w, padding=1)
            y = tg.nn.functional.batch_norm(y, None, None, training=True)
            results[impl] = tg.nn.functional.max_pool2d(y, 2).numpy()
    np.testing.assert_allclose(results["numba"], results["reference"], rtol=1e-10, atol=1e-12)


def test_the_registry_imports_no_implementation():
    # It used to import tinygen.backend.cuda_kernels, whose launcher imports it back.
    code = ("import sys; from tinygen.backend import kernels; "
            "print(sorted(m for m in sys.modules if m.startswith(("
            "'tinygen.backend.cuda_kernels', 'tinygen.backend.numba_kernels', 'numba'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_each_implementation_name_serves_its_own_package_save_the_listed_aliases():
    packages = {"numba": "tinygen.backend.numba_kernels.",
                "reference": "tinygen.backend.reference.",
                "nvrtc": "tinygen.backend.cuda_kernels.", "aot": "tinygen.backend.cuda_kernels."}
    for family, devices in K._REGISTRY.items():
        for device, impls in devices.items():
            for impl, path in impls.items():
                path = path if isinstance(path, str) else path.__name__
                assert path == packages[impl] + family, (family, device, impl)
    for (family, device, selected), (serving_device, serving) in K._ALIASES.items():
        assert selected not in K._REGISTRY[family].get(device, {}), (family, device, selected)
        assert serving in K._REGISTRY[family][serving_device], (family, device, selected)


def test_spectral_norm_on_the_cpu_falls_back_to_the_reference_explicitly():
    x = np.zeros(3)
    with K.use_impl("numba"):
        assert K.kernels("spectral_norm", x).__name__ == "tinygen.backend.reference.spectral_norm"
        assert K.kernels("conv", x).__name__ == "tinygen.backend.numba_kernels.conv"


def test_every_cuda_family_module_is_in_the_table():
    from pathlib import Path

    import tinygen.backend.cuda_kernels as cuda_kernels

    here = Path(cuda_kernels.__file__).parent
    # the machinery
    not_families = {"__init__", "launch", "aot", "nvrtc", "emulator", "source", "codegen",
                    "compile_flags", "build_script"}
    modules = {p.stem for p in here.glob("*.py")} - not_families
    assert modules == {family for family, devices in K._REGISTRY.items() if "cuda" in devices}
