"""The optional AOT CUDA extension tinygen._C, and how setup.py decides to build it."""

import stat
import sys
import types
from pathlib import Path

import pytest

from tinygen.backend.cuda_kernels import build_script

cuda_build = build_script.load()


def _why_not_built() -> str:
    reason = cuda_build.skip_reason()
    if reason:
        return reason.removeprefix("tinygen: ")
    toolkit = cuda_build.find_cuda_toolkit()
    return (f"tinygen._C is not built although a CUDA toolkit is found ({toolkit.root}): "
            "it was installed with TINYGEN_NO_CUDA_EXT=1, or its build failed "
            "(`pip install -v -e .` shows the compiler's message)")


try:
    from tinygen import _C
except ImportError:
    _C = None

needs_C = pytest.mark.skipif(_C is None, reason=_why_not_built() if _C is None else "built")


@needs_C
def test_device_count_is_a_count_even_without_gpu():
    count = _C.device_count()
    assert isinstance(count, int) and count >= 0


@needs_C
def test_compiled_archs_lists_sm_versions():
    archs = _C.compiled_archs()
    assert isinstance(archs, list) and archs
    assert all(isinstance(a, int) and a >= 50 for a in archs)


@needs_C
def test_versions():
    assert _C.runtime_version() >= 11000
    assert _C.driver_version() >= 0


# --- toolkit detection (no GPU or toolkit needed) ------------------------------------

@pytest.fixture
def clean_env(monkeypatch):
    for var in ("CUDA_HOME", "CUDA_PATH", "TINYGEN_NO_CUDA_EXT", "TINYGEN_CUDA_ARCHS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", "")
    return monkeypatch


def _fake_toolkit(root: Path, lib_subdir="lib64", header=True) -> Path:
    (root / "bin").mkdir(parents=True)
    nvcc = root / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\nexit 1\n")
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IXUSR)
    (root / "include").mkdir()
    if header:
        (root / "include" / "cuda_runtime.h").write_text("")
    (root / lib_subdir).mkdir(parents=True)
    (root / lib_subdir / "libcudart.so").write_text("")
    return root


def test_no_toolkit_on_empty_path(clean_env):
    assert cuda_build.find_cuda_toolkit() is None
    assert cuda_build.skip_reason() == cuda_build.SKIP_NO_TOOLKIT


def test_cuda_home_wins(clean_env, tmp_path):
    root = _fake_toolkit(tmp_path / "cuda")
    clean_env.setenv("CUDA_HOME", str(root))
    toolkit = cuda_build.find_cuda_toolkit()
    assert toolkit.root == root and toolkit.lib_dir == root / "lib64"
    assert cuda_build.skip_reason() is None


def test_nvcc_on_path_gives_the_root(clean_env, tmp_path):
    root = _fake_toolkit(tmp_path / "cuda", lib_subdir="targets/x86_64-linux/lib")
    clean_env.setenv("PATH", str(root / "bin"))
    toolkit = cuda_build.find_cuda_toolkit()
    assert toolkit.root == root and toolkit.lib_dir == root / "targets/x86_64-linux/lib"


def test_incomplete_toolkit_is_not_a_toolkit(clean_env, tmp_path):
    root = _fake_toolkit(tmp_path / "cuda", header=False)
    clean_env.setenv("CUDA_HOME", str(root))
    clean_env.setenv("PATH", str(root / "bin"))
    assert cuda_build.find_cuda_toolkit() is None


def test_env_switch_skips_even_with_a_toolkit(clean_env, tmp_path):
    clean_env.setenv("CUDA_HOME", str(_fake_toolkit(tmp_path / "cuda")))
    clean_env.setenv("TINYGEN_NO_CUDA_EXT", "1")
    assert cuda_build.skip_reason() == cuda_build.SKIP_BY_ENV


def test_arch_list():
    assert cuda_build.parse_archs(None) == [80, 90]
    assert cuda_build.parse_archs("90;80") == [80, 90]
    assert cuda_build.parse_archs("8.6, sm_89") == [86, 89]
    with pytest.raises(ValueError):
        cuda_build.parse_archs("90;hopper")
    flags = cuda_build.nvcc_gencode_flags([80, 90])
    assert "arch=compute_80,code=sm_80" in flags and "arch=compute_90,code=compute_90" in flags


def test_a_rebuilt_kernel_object_relinks_the_module(tmp_path, monkeypatch):
    """The nvcc objects are dependencies of the link: setuptools skips the link when the
    module is newer than every source and `depends` entry, so new kernel objects alone
    would leave stale kernels in tinygen._C (seen after editing kernels/conv.cu)."""
    from setuptools import Distribution, Extension

    toolkit = cuda_build.CudaToolkit(tmp_path, tmp_path / "nvcc", tmp_path / "include",
                                     tmp_path / "lib")
    monkeypatch.setattr(cuda_build, "find_cuda_toolkit", lambda environ=None: toolkit)

    def fake_run(cmd, env=None):  # nvcc: just write the object it was asked for
        Path(cmd[cmd.index("-o") + 1]).write_bytes(b"object")

    monkeypatch.setattr(cuda_build, "_run", fake_run)
    # pybind11 is a build requirement, present in pip's build environment only
    fake_pybind11 = types.ModuleType("pybind11")
    fake_pybind11.get_include = lambda: str(tmp_path)
    monkeypatch.setitem(sys.modules, "pybind11", fake_pybind11)
    linked = []
    monkeypatch.setattr(cuda_build._build_ext, "build_extension",
                        lambda self, ext: linked.append(list(ext.depends)))
    ext = Extension(cuda_build.EXTENSION_NAME, sources=["csrc/module.cpp"])
    command = cuda_build.build_ext(Distribution({"ext_modules": [ext]}))
    command.build_temp = str(tmp_path / "build")
    command.ensure_finalized()
    command.compiler = type("Compiler", (), {})()
    command._build_cuda_extension(ext)
    objects = [o for o in ext.extra_objects if o.endswith(".cu.o")]
    assert objects and set(objects) <= set(linked[0])
