"""Every kernels/*.cu follows the contract and compiles with nvcc for sm_80 and sm_90.

nvcc: one call per file with both gencode targets and the AOT build's flags
(standalone: a file may rely on common.cuh only); the files are separate tests, so
pytest-xdist spreads them.  Nothing is cached: every run compiles the files as they are
now.  The NVRTC path's code generation (the module cupy builds, to cubin) is
test_nvrtc_codegen.py's."""
import re
import shutil
import subprocess

import pytest

from tinygen.backend.cuda_kernels import build_script
from tinygen.backend.cuda_kernels.source import blank_comments, default_sources, kernel_dir

ARCHS = (80, 90)
KERNEL_FILES = sorted(kernel_dir().glob("*.cu"))


def _toolkit():
    return build_script.load().find_cuda_toolkit()


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
    cmd = [nvcc, *build_script.load().nvcc_device_flags(), "-fatbin", *gencode,
           f"-I{kernel_dir()}", str(path), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
    assert out.stat().st_size > 0
