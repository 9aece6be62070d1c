"""Build the optional CUDA extension ``tinygen._C`` (used by setup.py only).

Layout of the extension:

    kernels/*.cu    hand-written CUDA C++, one file per op family (also JIT-compiled
                    at run time through NVRTC by tinygen.backend; on the include path here)
    csrc/*.cu       compiled by nvcc: launch.cu (the generic launcher: any kernel by
                    name through cudaLaunchKernel) and device_info.cu (runtime queries)
    kernel_table.cu generated here into the build directory (write_kernel_table): it
                    #includes every kernels/*.cu and lists each extern "C" entry point
                    for launch.cu (csrc/kernel_table.h)
    csrc/*.h        plain C++ declarations shared by the .cu and .cpp files
    csrc/*.cpp      compiled by the ordinary C++ compiler with pybind11: the bindings
                    (module.cpp holds PYBIND11_MODULE(_C, m))

The extension is optional: the package works without it. So `build_ext` below skips
it with one clear line when there is no CUDA toolkit (or TINYGEN_NO_CUDA_EXT=1), and
turns any failure while building it into a warning that carries the compiler's output.
pip hides a successful build's output: `pip install -v` shows it, and `tinygen info`
says whether tinygen._C was built.

Environment:
    CUDA_HOME / CUDA_PATH   toolkit root (else the nvcc found on PATH decides)
    TINYGEN_NO_CUDA_EXT=1   never build the extension
    TINYGEN_CUDA_ARCHS      SM architectures to build for, e.g. "80;90" (the default)

This module has no import-time side effects and needs only the standard library and
setuptools, so tests can import it (tests/test_cuda_extension.py).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from setuptools.command.build_ext import build_ext as _build_ext

EXTENSION_NAME = "tinygen._C"
DEFAULT_ARCHS = (80, 90)
SKIP_NO_TOOLKIT = "tinygen: no CUDA toolkit found; skipping the optional tinygen._C extension"
SKIP_BY_ENV = "tinygen: TINYGEN_NO_CUDA_EXT is set; skipping the optional tinygen._C extension"

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"
KERNELS = ROOT / "kernels"
# The kernel signature parser the run-time launchers use (standard library only).
KERNEL_SOURCE_PARSER = ROOT / "tinygen" / "backend" / "cuda_kernels" / "source.py"
# The one flag set of both GPU paths (standard library only).
COMPILE_FLAGS = ROOT / "tinygen" / "backend" / "cuda_kernels" / "compile_flags.py"

# Where libcudart lives inside a toolkit: the classic layout, then the targets/ one.
_LIB_SUBDIRS = ("lib64", "targets/x86_64-linux/lib", "lib")


@dataclass(frozen=True)
class CudaToolkit:
    root: Path
    nvcc: Path
    include_dir: Path
    lib_dir: Path


def _toolkit_at(root: str | os.PathLike | None) -> CudaToolkit | None:
    """The toolkit rooted at `root` if it has nvcc, cuda_runtime.h and libcudart."""
    if not root:
        return None
    root = Path(root)
    nvcc = root / "bin" / "nvcc"
    include_dir = root / "include"
    if not (nvcc.is_file() and (include_dir / "cuda_runtime.h").is_file()):
        return None
    for sub in _LIB_SUBDIRS:
        lib_dir = root / sub
        if lib_dir.is_dir() and any(lib_dir.glob("libcudart*")):
            return CudaToolkit(root, nvcc, include_dir, lib_dir)
    return None


def _root_reported_by(nvcc: str) -> str | None:
    """Ask nvcc where it lives: `nvcc -dryrun` prints `#$ TOP=<root>/bin/..`.

    This finds the toolkit when the nvcc on PATH is a wrapper script or a copy
    (e.g. /usr/local/bin/nvcc exec-ing /usr/local/cuda-13.0/bin/nvcc).
    """
    try:
        out = subprocess.run(
            [nvcc, "-dryrun", "-c", "tinygen_probe.cu", "-o", os.devnull],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"^#\$ TOP=(.+)$", out.stdout + out.stderr, re.MULTILINE)
    return os.path.normpath(match.group(1).strip()) if match else None


def find_cuda_toolkit(environ=None) -> CudaToolkit | None:
    """Locate a usable CUDA toolkit, or return None.

    Order: $CUDA_HOME, $CUDA_PATH, then `nvcc` on $PATH (its parent's parent; if that is
    not a full toolkit, the same for the resolved symlink, then the root nvcc reports).
    """
    env = os.environ if environ is None else environ
    for var in ("CUDA_HOME", "CUDA_PATH"):
        toolkit = _toolkit_at(env.get(var))
        if toolkit:
            return toolkit
    nvcc = shutil.which("nvcc", path=env.get("PATH", ""))
    if not nvcc:
        return None
    for root in (Path(nvcc).parent.parent, Path(nvcc).resolve().parent.parent):
        toolkit = _toolkit_at(root)
        if toolkit:
            return toolkit
    return _toolkit_at(_root_reported_by(nvcc))


def parse_archs(spec: str | None) -> list[int]:
    """'80;90' (or '8.0, 9.0', 'sm_80 sm_90') -> [80, 90]; None/'' -> the default."""
    if spec is None or not spec.strip():
        return list(DEFAULT_ARCHS)
    archs = []
    for token in re.split(r"[;,\s]+", spec.strip()):
        if not token:
            continue
        number = token.lower().removeprefix("sm_").removeprefix("compute_").replace(".", "")
        if not re.fullmatch(r"\d{2,3}", number):
            raise ValueError(f"TINYGEN_CUDA_ARCHS: bad architecture {token!r} (expected e.g. '80;90')")
        archs.append(int(number))
    return sorted(set(archs))


def nvcc_gencode_flags(archs: list[int]) -> list[str]:
    """SASS for every arch, plus PTX of the newest so that later GPUs can JIT it."""
    flags = []
    for arch in archs:
        flags += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
    newest = max(archs)
    flags += ["-gencode", f"arch=compute_{newest},code=compute_{newest}"]
    return flags


def skip_reason(environ=None) -> str | None:
    """Why the extension will not be built, or None if it will be attempted."""
    env = os.environ if environ is None else environ
    if env.get("TINYGEN_NO_CUDA_EXT", "").strip().lower() not in ("", "0", "false", "no"):
        return SKIP_BY_ENV
    if find_cuda_toolkit(env) is None:
        return SKIP_NO_TOOLKIT
    return None


def nvcc_compile_flags(archs: list[int], threads: int = 1) -> list[str]:
    """Every flag of the nvcc compile of a .cu file of the extension, but -c and -o."""
    return ["-O3", *nvcc_device_flags(), "-Xcompiler", "-fPIC", "--threads", str(threads),
            f"-I{CSRC}", f"-I{KERNELS}", *nvcc_gencode_flags(archs)]


class CudaBuildError(Exception):
    pass


def _load_by_path(name, path):
    """A standard-library-only module of tinygen, loaded by path: tinygen itself (and
    its dependencies) need not be importable at build time."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _kernel_source_module():
    return _load_by_path("_tinygen_kernel_source", KERNEL_SOURCE_PARSER)


def nvcc_device_flags() -> list[str]:
    """The language and floating-point flags of every nvcc compile: the same set the
    NVRTC path uses (tinygen/backend/cuda_kernels/compile_flags.py says why)."""
    return list(_load_by_path("_tinygen_compile_flags", COMPILE_FLAGS).nvcc_device_flags())


def kernel_table_source(kernel_dir: Path = KERNELS) -> tuple[str, list[str]]:
    """The C++ of kernel_table.cu and the kernel names it lists."""
    sources = _kernel_source_module().KernelSources(kernel_dir)
    names = list(sources.signatures)
    entries = "".join(f'    kernel_entry("{name}", &{name}),\n' for name in names)
    text = ("// Generated by _cuda_build.py: every kernel of kernels/*.cu, and the table that\n"
            "// csrc/launch.cu looks kernels up in.\n"
            + sources.translation_unit()
            + '\n#include "kernel_table.h"\n\nnamespace tinygen {\n\n'
            + "const KernelEntry kKernelTable[] = {\n" + entries
            + "    {nullptr, nullptr, 0, nullptr},  // end marker: never empty\n};\n"
            + f"const int kKernelCount = {len(names)};\n\n}}  // namespace tinygen\n")
    return text, names


def write_kernel_table(directory: Path) -> Path:
    """Write kernel_table.cu into `directory` (the build's temporary directory)."""
    text, names = kernel_table_source()
    path = Path(directory) / "kernel_table.cu"
    path.write_text(text, encoding="utf-8")
    print(f"tinygen: kernel table of {len(names)} kernels from {KERNELS}", flush=True)
    return path


def _run(cmd: list[str], env=None) -> None:
    """Run a compiler; on failure raise with its full output (pip would hide it)."""
    print(" ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise CudaBuildError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}):\n{output}")
    if output:
        print(output, flush=True)


def _warn(message: str) -> None:
    bar = "=" * 78
    print(f"\n{bar}\nWARNING: {message}\n{bar}\n", file=sys.stderr, flush=True)


class build_ext(_build_ext):
    """build_ext that builds tinygen._C only when it can, and never fails the install."""

    _inplace = False  # set by run()

    def run(self):
        # setuptools' run() clears self.inplace while building: remember it.
        self._inplace = bool(self.inplace or getattr(self, "editable_mode", False))
        reason = skip_reason() if any(e.name == EXTENSION_NAME for e in self.extensions) else None
        if reason:
            print(reason, flush=True)
            self._drop(EXTENSION_NAME)
        super().run()

    def _drop(self, name):
        # Dropped extensions have no output file, so setuptools must not look for one
        # (copy_extensions_to_source for editable installs, get_outputs for the wheel).
        self.extensions = [e for e in self.extensions if e.name != name]
        if self._inplace:
            # An older in-place build beside the sources would be imported instead, stale.
            package, _, module = name.rpartition(".")
            package_dir = self.get_finalized_command("build_py").get_package_dir(package)
            stale = Path(package_dir) / Path(self.get_ext_filename(module)).name
            if stale.is_file():
                print(f"tinygen: removing the stale in-place build {stale}", flush=True)
                stale.unlink()

    def build_extensions(self):
        for ext in list(self.extensions):
            if ext.name != EXTENSION_NAME:
                self.build_extension(ext)
                continue
            try:
                self._build_cuda_extension(ext)
            except Exception as exc:  # optional: any failure only costs the extension
                _warn(f"building the optional {EXTENSION_NAME} extension failed; tinygen works "
                      f"without it (CPU, cupy + NVRTC).\n{exc}")
                try:
                    os.remove(self.get_ext_fullpath(ext.name))
                except OSError:
                    pass
                self._drop(ext.name)

    def _build_cuda_extension(self, ext):
        toolkit = find_cuda_toolkit()
        if toolkit is None:
            raise CudaBuildError("the CUDA toolkit disappeared during the build")
        archs = parse_archs(os.environ.get("TINYGEN_CUDA_ARCHS"))
        import pybind11  # a build requirement; imported here so a missing one is a warning

        if not ext.sources:
            raise CudaBuildError(f"no csrc/*.cpp sources found under {CSRC}")
        print(f"tinygen: building {EXTENSION_NAME} with {toolkit.nvcc} for sm_{archs}", flush=True)

        # 1. nvcc: csrc/*.cu and the generated kernel table -> objects (files in
        #    parallel, gencode targets in parallel).
        obj_dir = Path(self.build_temp) / "tinygen_cuda"
        obj_dir.mkdir(parents=True, exist_ok=True)
        # The table (every kernel) takes longest: first in line.
        cu_sources = [write_kernel_table(obj_dir)] + sorted(CSRC.glob("*.cu"))
        cpus = os.cpu_count() or 1
        threads = max(1, cpus // max(1, len(cu_sources)))
        nvcc_flags = nvcc_compile_flags(archs, threads)
        objects = [str(obj_dir / (src.stem + ".cu.o")) for src in cu_sources]
        with ThreadPoolExecutor(max_workers=min(cpus, max(1, len(cu_sources)))) as pool:
            list(pool.map(lambda so: _run([str(toolkit.nvcc), *nvcc_flags, "-c", str(so[0]),
                                           "-o", so[1]]),
                          zip(cu_sources, objects)))

        # 2. The C++ compiler and linker: bindings + the nvcc objects + the CUDA runtime.
        # cudart is linked statically (as nvcc does by default): the module then needs no
        # LD_LIBRARY_PATH and cannot pick up another libcudart (cupy brings its own); at
        # run time it needs only the driver, and without one device_count() is 0.
        static = (toolkit.lib_dir / "libcudart_static.a").is_file()
        ext.include_dirs += [pybind11.get_include(), str(toolkit.include_dir), str(CSRC)]
        ext.define_macros += [("TINYGEN_COMPILED_ARCHS", ",".join(map(str, archs)))]
        ext.extra_compile_args += ["-std=c++17", "-O3", "-fvisibility=hidden"]
        ext.extra_objects += objects
        # setuptools relinks only when a source or a `depends` entry is newer than the
        # module; extra_objects are not looked at, so without this an edit of kernels/*.cu
        # rebuilds the objects and leaves the old kernels linked in _C.
        ext.depends += objects
        ext.library_dirs += [str(toolkit.lib_dir)]
        ext.libraries += ["cudart_static", "dl", "rt", "pthread"] if static else ["cudart"]
        if not static:
            ext.runtime_library_dirs += [str(toolkit.lib_dir)]
        ext.language = "c++"
        self._capture_compiler_output()
        self.build_extension(ext)

    def _capture_compiler_output(self):
        """Put the C++ compiler's and linker's output into the exception (and so into the
        warning). Newer setuptools runs them through `compiler.call`, older ones through
        `compiler.spawn`; both become _run, whose error build_extensions catches."""

        def run(cmd, env=None, **kwargs):
            _run([os.fspath(c) for c in cmd], env=env)

        self.compiler.call = run
        self.compiler.spawn = run
