"""The one set of compiler flags for kernels/*.cu, on both GPU paths.

Both GPU paths must compile the same code the same way, or a kernel validated on one
path (denormals, division, contraction into FMA) behaves differently on the other:

    NVRTC   cupy.RawModule(code, options=nvrtc_user_options(dir)): cupy then adds its
            own options (``cupy_nvrtc_options`` spells out the list it hands NVRTC)
    nvcc    the AOT extension tinygen._C (_cuda_build.py: ``nvcc_device_flags``)

The numerics, decided explicitly (``FLOAT_MATH``), the same on both paths:

    -ftz=true        float32 denormals flush to zero.  cupy appends ``-ftz=true`` after
                     the caller's options to every NVRTC compile (NVRTC keeps the last
                     of repeated options), so the run-time path cannot have anything
                     else; nvcc's default is false, so the AOT build says true.  What
                     it costs: float32 results below 2^-126 (1.2e-38) become 0 --
                     ``tg_sigmoid`` of x < -87 returns 0 instead of a denormal, and a
                     batch norm variance below 1e-38 is 0 (then eps dominates anyway).
                     float64 is never flushed.
    -prec-div=true   IEEE round-to-nearest division and square root (the defaults of
    -prec-sqrt=true  both compilers, written down): batch norm divides by per-channel
                     constants and the reference comparisons are to 1e-5 relative.
    -fmad=true       a * b + c contracts to one FMA (the default of both): the conv
                     main loop's speed is its FFMA count, and contraction rounds once
                     instead of twice.  The CPU emulator (g++) does not contract, so
                     emulator and GPU results differ in the last bits; tests compare
                     with tolerances, never bit for bit.

Anything else is language level (``LANGUAGE``) or where files are (-I).

Standard library only: _cuda_build.py loads this file by path at build time.
"""
from __future__ import annotations

LANGUAGE = ("-std=c++17",)
FLOAT_MATH = ("-ftz=true", "-prec-div=true", "-prec-sqrt=true", "-fmad=true")

# What cupy does to a RawModule's options before NVRTC sees them (cupy 13 and 14:
# cupy/_core/core.pyx assemble_cupy_compiler_options, cupy/cuda/compiler.py
# _compile_with_cache_cuda and _compile_using_nvrtc_no_warning):
#   cccl include dirs + the caller's options + -I<cupy include> [+ -I<CUDA include>]
#   + -ftz=true + -arch=sm_XX (cubin; compute_XX and PTX only under
#   CUPY_COMPILE_WITH_PTX) + --device-as-default-execution-space
CUPY_APPENDED_FLOAT_MATH = ("-ftz=true",)
CUPY_EXECUTION_SPACE = "--device-as-default-execution-space"


def nvrtc_user_options(kernel_dir) -> tuple:
    """The options tinygen passes to cupy.RawModule."""
    return LANGUAGE + FLOAT_MATH + (f"-I{kernel_dir}",)


def cupy_nvrtc_options(user_options, arch: int, cupy_header_dir=None,
                       cuda_include_dir=None) -> tuple:
    """The option vector cupy hands NVRTC for RawModule(options=user_options) on an
    sm_``arch`` device.  Include directories only matter to code that #includes system
    or cupy headers, which kernels/*.cu may not (the contract): without cupy installed,
    callers pass none."""
    options = tuple(user_options)
    if cupy_header_dir:
        cccl = tuple(f"-I{cupy_header_dir}/cupy/_cccl/{part}"
                     for part in ("cub", "thrust", "libcudacxx"))
        options = cccl + options + (f"-I{cupy_header_dir}",)
    if cuda_include_dir:
        options += (f"-I{cuda_include_dir}",)
    return options + CUPY_APPENDED_FLOAT_MATH + (f"-arch=sm_{arch}", CUPY_EXECUTION_SPACE)


def nvcc_device_flags() -> tuple:
    """The flags the AOT nvcc build gives every .cu file (besides -O3, -I and -gencode)."""
    return LANGUAGE + FLOAT_MATH


def effective_float_math(options) -> dict:
    """{flag name: value} as the compiler sees it: the last of repeated options wins
    (NVRTC warns when the values differ)."""
    found = {}
    for option in options:
        name, sep, value = option.lstrip("-").partition("=")
        if sep and name in ("ftz", "prec-div", "prec-sqrt", "fmad"):
            found[name] = value
    return found
