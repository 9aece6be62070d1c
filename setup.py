"""tinygen's packaging: the single source of its metadata (pyproject.toml holds only
the build system and tool settings).

The optional CUDA extension tinygen._C (csrc/, kernels/) is built by _cuda_build.py
when a CUDA toolkit is found, and skipped cleanly otherwise: see that file.
"""

import os
import re
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_py import build_py as _build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # setuptools.build_meta does not put the project on sys.path
import _cuda_build  # noqa: E402


def read_version():
    """tinygen/_version.py without importing tinygen (whose dependencies may be missing)."""
    text = (ROOT / "tinygen" / "_version.py").read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    if not match:
        raise RuntimeError("tinygen/_version.py defines no __version__")
    return match.group(1)


class build_py(_build_py):
    """Also ship kernels/*.cu inside the package (tinygen/_kernels/) for NVRTC.

    An editable install leaves them where they are: the backend then reads <repo>/kernels.
    """

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "tinygen" / "_kernels"
        for src in sorted(_cuda_build.KERNELS.glob("*")):
            if src.suffix in (".cu", ".cuh", ".h"):
                target.mkdir(parents=True, exist_ok=True)
                self.copy_file(str(src), str(target / src.name))


readme = ROOT / "README.md"

setup(
    name="tinygen",
    version=read_version(),
    description="A from-scratch autodiff engine with hand-written CUDA kernels, and "
                "VAE, GAN, PixelCNN and WaveNet built on it",
    long_description=readme.read_text(encoding="utf-8") if readme.is_file() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tinygen", "tinygen.*"]),
    # The embedded Fashion-MNIST subset (the fallback when no real copy is found) and
    # its MIT licence notice.
    package_data={"tinygen.data": ["fmnist_subset.npz", "FASHION_MNIST_LICENSE.txt"],
                  "tinygen.models": ["classifiers/*.npz"]},
    include_package_data=True,
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "numba>=0.58",
        # holds OpenBLAS at one thread while the conv kernels' own threads share out
        # a batch (tinygen/backend/numba_kernels/chunks.py)
        "threadpoolctl",
        "tqdm",
        "pillow",
    ],
    extras_require={
        # NVRTC and cuobjdump from PyPI (no GPU, no toolkit needed): CI compiles the
        # run-time CUDA module to sm_80/sm_90 machine code and reads it
        # (tests/backend/cuda/test_nvrtc_codegen.py, benchmarks/kernel_static.py).
        # mpi4py's wheels load the system's MPI at run time (Debian: openmpi-bin);
        # tests/distributed skip without one.
        "test": ["pytest", "hypothesis", "pytest-xdist", "mpi4py",
                 "nvidia-cuda-nvrtc>=13; sys_platform == 'linux'",
                 "nvidia-cuda-cuobjdump>=13; sys_platform == 'linux'",
                 "nvidia-cuda-nvdisasm>=13; sys_platform == 'linux'"],
        "mpi": ["mpi4py"],
        # cupy wheels are built per CUDA major version: cupy-cuda12x for CUDA 12.x
        # drivers/toolkits; with a CUDA 13 toolkit install cupy-cuda13x instead.
        "cuda": ["cupy-cuda12x"],
        # Only the benchmarks compare against PyTorch; the library never imports it.
        "bench": ["torch"],
    },
    entry_points={"console_scripts": ["tinygen = tinygen.cli:main"]},
    # Built by _cuda_build.build_ext only when possible; sources are the pybind11
    # bindings (csrc/*.cpp); the csrc/*.cu files go through nvcc in that command.
    ext_modules=[
        Extension(
            _cuda_build.EXTENSION_NAME,
            sources=sorted(os.path.relpath(p, ROOT) for p in _cuda_build.CSRC.glob("*.cpp")),
        )
    ],
    cmdclass={"build_ext": _cuda_build.build_ext, "build_py": build_py},
    zip_safe=False,
)
