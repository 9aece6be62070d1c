"""Every kernels/*.cu follows the contract and compiles with nvcc (sm_80, sm_90) and NVRTC.

nvcc: one call per file with both gencode targets (standalone: a file may rely on
common.cuh only); the files are separate tests, so pytest-xdist spreads them.  NVRTC:
the translation unit that tinygen.backend.cuda_kernels.nvrtc hands cupy, checked by
NVRTC's front end for compute_80 and compute_90 (code generation is nvcc's test's).
Nothing is cached: every run compiles the files as they are now."""
import ctypes
import ctypes.util
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinygen.backend.cuda_kernels import nvrtc
from tinygen.backend.cuda_kernels.source import blank_comments, default_sources, kernel_dir

ROOT = Path(__file__).resolve().parents[3]
ARCHS = (80, 90)
KERNEL_FILES = sorted(kernel_dir().glob("*.cu"))


def _cuda_build():
    spec = importlib.util.spec_from_file_location("_cuda_build", ROOT / "_cuda_build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_cuda_build", module)
    spec.loader.exec_module(module)
    return module


def _toolkit():
    return _cuda_build().find_cuda_toolkit()


# --- the contract ----------------------------------------------------------------------------
@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: p.name)
def test_file_follows_the_contract(path):
    text = path.read_text(encoding="utf-8")
    code = blank_comments(text)
    includes = re.findall(r"^\s*#\s*include\s*(\S+)", text, re.MULTILINE)
    assert includes and includes[0] == '"common.cuh"', f"{path.name}: include common.cuh first"
    assert not [i for i in includes if i.startswith("<")], (
        f"{path.name}: host headers {includes} (NVRTC has none; common.cuh provides the math)")
    for banned in ("extern __shared__", "__shfl", "__ballot", "__any_sync", "__all_sync",
                   "__activemask", "cooperative_groups", "__ldg"):
        assert banned not in code, f"{path.name}: {banned} is outside the contract"

    entries = {sig.name: sig for sig in default_sources().signatures.values()
               if sig.path == path}
    assert entries, f"{path.name} has no extern \"C\" __global__ entry point"
    for name, sig in entries.items():
        assert name.startswith(path.stem + "_"), f"{name}: entry points are <family>_<what>_..."
        stem, _, suffix = name.rpartition("_")
        assert suffix in ("f32", "f64"), f"{name}: entry points end in _f32 or _f64"
        twin = entries.get(f"{stem}_{'f64' if suffix == 'f32' else 'f32'}")
        assert twin is not None, f"{name} has no {'f64' if suffix == 'f32' else 'f32'} twin"
        assert [p.name for p in twin.params] == [p.name for p in sig.params], (
            f"{name} and {twin.name} take different parameters")


# --- nvcc ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: p.name)
def test_file_compiles_with_nvcc_for_sm80_and_sm90(path, tmp_path):
    toolkit = _toolkit()
    nvcc = str(toolkit.nvcc) if toolkit else shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("no nvcc (CUDA toolkit) found")
    out = tmp_path / (path.stem + ".fatbin")
    gencode = [flag for arch in ARCHS
               for flag in ("-gencode", f"arch=compute_{arch},code=sm_{arch}")]
    cmd = [nvcc, "-std=c++17", "-fatbin", *gencode, f"-I{kernel_dir()}", str(path), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
    assert out.stat().st_size > 0


# --- NVRTC -----------------------------------------------------------------------------------
def _nvrtc_library():
    """libnvrtc from the CUDA toolkit, the nvidia-cuda-nvrtc wheel, or the loader path."""
    candidates = []
    toolkit = _toolkit()
    if toolkit:
        candidates += sorted(toolkit.lib_dir.glob("libnvrtc.so*"))
    for entry in sys.path:
        for sub in ("nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib"):
            candidates += sorted((Path(entry) / sub).glob("libnvrtc.so*"))
    found = ctypes.util.find_library("nvrtc")
    if found:
        candidates.append(found)
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(str(candidate))
        except OSError:
            continue
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        return lib
    return None


def _nvrtc_compile(lib, code, name, options):
    """(result code, log) of compiling ``code`` with ``options``."""
    prog = ctypes.c_void_p()
    status = lib.nvrtcCreateProgram(ctypes.byref(prog), code.encode(), name.encode(), 0, None,
                                    None)
    assert status == 0, lib.nvrtcGetErrorString(status).decode()
    try:
        encoded = [o.encode() for o in options]
        result = lib.nvrtcCompileProgram(prog, len(encoded),
                                         (ctypes.c_char_p * len(encoded))(*encoded))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        return result, log.value.decode(errors="replace")
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


@pytest.fixture(scope="module")
def libnvrtc():
    lib = _nvrtc_library()
    if lib is None:
        pytest.skip("no libnvrtc found (CUDA toolkit or the nvidia-cuda-nvrtc wheel)")
    return lib


@pytest.mark.parametrize("arch", ARCHS)
def test_nvrtc_module_compiles(libnvrtc, arch):
    sources = default_sources()
    options = [*nvrtc.options(sources), f"-arch=compute_{arch}", "-fdevice-syntax-only"]
    result, log = _nvrtc_compile(libnvrtc, nvrtc.module_code(sources), "tinygen_kernels.cu",
                                 options)
    if result != 0 and "-fdevice-syntax-only" in log:  # an NVRTC older than the option
        result, log = _nvrtc_compile(libnvrtc, nvrtc.module_code(sources),
                                     "tinygen_kernels.cu", options[:-1])
    assert result == 0, (f"NVRTC ({libnvrtc.nvrtcGetErrorString(result).decode()}) with "
                         f"{options}:\n{log}")


def test_nvrtc_reports_errors(libnvrtc):
    # The check above can fail: a kernel that uses a host-only function is refused.
    code = ('#include "common.cuh"\n'
            'extern "C" __global__ void bad_f32(float* y) { y[0] = printf_host_only(); }\n')
    result, log = _nvrtc_compile(libnvrtc, code, "bad.cu",
                                 [f"-I{kernel_dir()}", "-arch=compute_80", "-fdevice-syntax-only"])
    assert result != 0 and "printf_host_only" in log
