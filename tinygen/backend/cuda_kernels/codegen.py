"""Code generation of the NVRTC path without a GPU: the run-time module compiled to
cubin exactly as cupy.RawModule compiles it on a device, for any sm_XX.

NVRTC is a library: it needs no driver and no GPU, so the machine code that the GPU
would run can be produced (and read, with cuobjdump / nvdisasm) anywhere libnvrtc is
found: the CUDA toolkit, or the PyPI wheel nvidia-cuda-nvrtc (tinygen's test extras
install it).  Used by the tests (every kernel and dtype compiles for sm_80 and sm_90;
no kernel spills) and by ``python -m benchmarks.kernel_static``.

The option vector is ``compile_flags.cupy_nvrtc_options`` (what cupy hands NVRTC)
plus ``-Xptxas -v``, which only makes ptxas report each kernel's registers, spills and
shared memory into the program log; it changes no code.

Results are cached on disk (``$TINYGEN_CODEGEN_CACHE``, default
``~/.cache/tinygen/codegen``), keyed by the code, the options and NVRTC's version; a
file lock makes concurrent test workers wait for one compile instead of repeating it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from . import build_script, compile_flags, nvrtc

ARCHS = (80, 90)
REPORT_OPTIONS = ("-Xptxas", "-v")
CACHE_ENTRIES = 24  # builds kept on disk
# Where the PyPI wheels put their files, under a site-packages directory.
_WHEEL_LIB_DIRS = ("nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib", "nvidia/cu12/lib")
_WHEEL_BIN_DIRS = ("nvidia/cu13/bin", "nvidia/cuda_cuobjdump/bin", "nvidia/cuda_nvdisasm/bin",
                   "nvidia/cu12/bin")


class CodegenUnavailable(RuntimeError):
    """No libnvrtc (or no cuobjdump / nvdisasm) on this machine."""


class CompileError(RuntimeError):
    pass


@functools.lru_cache(maxsize=None)
def _toolkit_root():
    """The CUDA toolkit's root, found as setup.py finds it, or None."""
    build = build_script.load()
    if build is not None:  # a checkout: the same search as the AOT build
        toolkit = build.find_cuda_toolkit()
        return toolkit.root if toolkit else None
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return None


def _wheel_dirs(subdirs):
    for entry in sys.path:
        for sub in subdirs:
            path = Path(entry or ".") / sub
            if path.is_dir():
                yield path


def find_tool(name):
    """cuobjdump / nvdisasm / ptxas: from PATH, the toolkit, or a PyPI wheel; or None."""
    found = shutil.which(name)
    if found:
        return found
    root = _toolkit_root()
    if root and (root / "bin" / name).is_file():
        return str(root / "bin" / name)
    for directory in _wheel_dirs(_WHEEL_BIN_DIRS):
        if (directory / name).is_file():
            return str(directory / name)
    return None


def sass(cubin_path):
    """The SASS listing of a cubin file (``cuobjdump -sass``).

    cuobjdump runs nvdisasm for the listing and finds it only on PATH or in NVDISASM_PATH:
    the PyPI wheels put the two in separate packages, so the one found is named to it, and
    a missing one is a CodegenUnavailable naming the package rather than cuobjdump's
    "Could not find executable file 'nvdisasm'"."""
    cuobjdump, nvdisasm = find_tool("cuobjdump"), find_tool("nvdisasm")
    for name, tool in (("cuobjdump", cuobjdump), ("nvdisasm", nvdisasm)):
        if tool is None:
            raise CodegenUnavailable(
                f"no {name}: install the CUDA toolkit or `pip install nvidia-cuda-{name}`")
    env = dict(os.environ, NVDISASM_PATH=str(Path(nvdisasm).parent))
    done = subprocess.run([cuobjdump, "-sass", str(cubin_path)], capture_output=True,
                          text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"cuobjdump -sass {cubin_path} failed: {done.stderr.strip()}")
    return done.stdout


class Nvrtc:
    """libnvrtc through ctypes (the few calls code generation needs)."""

    def __init__(self, path):
        self.path = str(path)
        self._lib = lib = ctypes.CDLL(self.path)
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        major, minor = ctypes.c_int(), ctypes.c_int()
        lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
        self.version = (major.value, minor.value)

    def compile(self, code, name, options):
        """(cubin bytes or None, log text, status message)."""
        lib = self._lib
        program = ctypes.c_void_p()
        status = lib.nvrtcCreateProgram(ctypes.byref(program), code.encode(), name.encode(),
                                        0, None, None)
        if status:
            raise CompileError(lib.nvrtcGetErrorString(status).decode())
        try:
            encoded = [o.encode() for o in options]
            status = lib.nvrtcCompileProgram(program, len(encoded),
                                             (ctypes.c_char_p * len(encoded))(*encoded))
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(program, log)
            cubin = None
            if status == 0:
                lib.nvrtcGetCUBINSize(program, ctypes.byref(size))
                buffer = ctypes.create_string_buffer(size.value)
                lib.nvrtcGetCUBIN(program, buffer)
                cubin = buffer.raw
            return cubin, log.value.decode(errors="replace"), lib.nvrtcGetErrorString(
                status).decode()
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(program))


def _nvrtc_candidates():
    root = _toolkit_root()
    if root:
        for sub in ("lib64", "targets/x86_64-linux/lib", "lib"):
            yield from sorted((root / sub).glob("libnvrtc.so*"), reverse=True)
    for directory in _wheel_dirs(_WHEEL_LIB_DIRS):
        yield from sorted(directory.glob("libnvrtc.so*"), reverse=True)
    found = ctypes.util.find_library("nvrtc")
    if found:
        yield found


_nvrtc = None


def load_nvrtc():
    """The first libnvrtc that loads (toolkit, PyPI wheel, loader path)."""
    global _nvrtc
    if _nvrtc is None:
        for candidate in _nvrtc_candidates():
            if "builtins" in str(candidate):
                continue
            try:
                _nvrtc = Nvrtc(candidate)
                break
            except (OSError, AttributeError):
                continue
        else:
            raise CodegenUnavailable(
                "no libnvrtc found: install the CUDA toolkit or `pip install nvidia-cuda-nvrtc` "
                "(part of tinygen's test extras)")
    return _nvrtc


# --- ptxas's report ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Resources:
    """One kernel's resource use, as ptxas reports it."""
    registers: int
    spill_stores: int  # bytes
    spill_loads: int   # bytes
    stack: int         # bytes of stack frame
    shared: int        # bytes of static shared memory
    barriers: int

    @property
    def spills(self):
        return self.spill_stores + self.spill_loads


_FUNCTION = re.compile(r"Compiling entry function '(?P<name>\w+)' for '(?P<arch>sm_\d+)'")
_FRAME = re.compile(r"(?P<stack>\d+) bytes stack frame, (?P<stores>\d+) bytes spill stores, "
                    r"(?P<loads>\d+) bytes spill loads")
_USED = re.compile(r"Used (?P<regs>\d+) registers(?:, used (?P<barriers>\d+) barriers)?"
                   r"(?P<rest>.*)")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas_report(log):
    """{kernel name: Resources} from the ``-Xptxas -v`` lines of a compile log."""
    found, name, frame = {}, None, None
    for line in log.splitlines():
        match = _FUNCTION.search(line)
        if match:
            name, frame = match["name"], None
            continue
        if name is None:
            continue
        match = _FRAME.search(line)
        if match:
            frame = match
            continue
        match = _USED.search(line)
        if match:
            smem = _SMEM.search(match["rest"])
            found[name] = Resources(
                registers=int(match["regs"]),
                spill_stores=int(frame["stores"]) if frame else 0,
                spill_loads=int(frame["loads"]) if frame else 0,
                stack=int(frame["stack"]) if frame else 0,
                shared=int(smem.group(1)) if smem else 0,
                barriers=int(match["barriers"] or 0))
            name = None
    return found


# --- compiling the module ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Build:
    """The NVRTC module of some kernel sources for one sm_XX."""
    arch: int
    options: tuple
    nvrtc_version: tuple
    cubin: bytes
    log: str

    @property
    def resources(self):
        return parse_ptxas_report(self.log)


def module_options(sources, arch):
    """cupy's option vector for the module of ``sources`` on sm_``arch``, plus the report."""
    return compile_flags.cupy_nvrtc_options(nvrtc.options(sources), arch) + REPORT_OPTIONS


def cache_dir():
    return Path(os.environ.get("TINYGEN_CODEGEN_CACHE")
                or Path.home() / ".cache" / "tinygen" / "codegen")


def compile_module(sources, arch, *, cache=True):
    """The cubin (and ptxas report) of ``sources``' NVRTC module for sm_``arch``, as
    cupy would build it on such a device.  Raises CompileError with NVRTC's log."""
    lib = load_nvrtc()
    code = nvrtc.module_code(sources)
    options = module_options(sources, arch)
    key = hashlib.sha256("\0".join((code, *options, repr(lib.version), sources.digest))
                         .encode()).hexdigest()[:32]
    if not cache:
        return _compile(lib, code, options, arch)
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    cubin_path, meta_path = directory / f"{key}.cubin", directory / f"{key}.json"
    with open(directory / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process compiling the same: wait for it
        if cubin_path.is_file() and meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            cubin_path.touch()  # recently used: kept by _prune
            return Build(arch, options, lib.version, cubin_path.read_bytes(), meta["log"])
        build = _compile(lib, code, options, arch)
        for path, data in ((cubin_path, build.cubin),
                           (meta_path, json.dumps({"log": build.log}).encode())):
            temporary = path.with_suffix(path.suffix + ".tmp")
            temporary.write_bytes(data)
            temporary.replace(path)
    _prune(directory)
    return build


def _prune(directory, keep=CACHE_ENTRIES):
    """Delete all but the ``keep`` newest builds (each kernel edit makes a new one)."""
    builds = sorted(directory.glob("*.cubin"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in builds[keep:]:
        for path in (stale, stale.with_suffix(".json"), stale.with_suffix(".lock")):
            path.unlink(missing_ok=True)


def _compile(lib, code, options, arch):
    cubin, log, status = lib.compile(code, "tinygen_kernels.cu", options)
    if cubin is None:
        raise CompileError(f"NVRTC {lib.version} ({status}) for sm_{arch} with "
                           f"{' '.join(options)}:\n{log}")
    return Build(arch, tuple(options), lib.version, cubin, log)
