"""tinygen's hand-written CUDA kernels (kernels/*.cu) and the three ways to run them.

The kernels
    kernels/<family>.cu holds one op family's kernels; kernels/common.cuh is included
    first by each (helpers: grid-stride indices, stable sigmoid and derivatives, a block
    reduction).  The contract every file follows, so that all three paths below compile
    it: kernel bodies are __device__ templates on float/double; the entry points are
    ``extern "C" __global__ void <family>_<what>_f32(...)`` and ``..._f64`` wrappers,
    each pair written once as ``TG_ENTRY_F32_F64(<family>_<what>, bounds_f32,
    bounds_f64, (params), body)`` (common.cuh shows what it emits), whose parameters are ``T*``/``const T*`` (T in float, double, int, long long),
    ``int``, ``long long``, ``float`` or ``double``, optionally declared
``__launch_bounds__(N)`` with a literal N (every path then refuses bigger blocks,
as a GPU does); only static ``__shared__`` arrays;
    ``__syncthreads()`` only in block-uniform control flow; no warp intrinsics; host
    headers only under the emulator.  ``source`` parses the entry points and refuses
    anything else with the file and line.  All kernel files are compiled together, as
    one translation unit: a family's helpers go in its own namespace.

The three paths, one source
    NVRTC (``nvrtc``)     at run time with cupy.RawModule, once per process (cupy keeps
                          the binary in its disk cache): the default for cupy arrays.
    AOT (``aot``)         tinygen._C, built by setup.py with nvcc for sm_80 and sm_90
                          when a toolkit is present (csrc/launch.cu + a generated table
                          of every entry point); ``set_impl("cuda", "aot")`` selects it.
    emulator              g++ compiles the kernels as host C++ (kernels/emulation.h):
                          blocks in sequence, a block's threads as fibers switching at
                          __syncthreads().  Runs numpy arrays: how kernels are tested on
                          machines without a GPU.  By default it is also a race /
                          memory / initialisation checker (kernels/emulation_check.h).

``launch(name, grid, block, args)`` (``launch``) checks the arguments against the
parsed signature (arity, dtypes, contiguity, one device, block size) and picks the
path by the arrays: numpy -> emulator, cupy -> NVRTC or AOT.  Family modules
(``<family>.py`` here) implement exactly the functions of
``tinygen.backend.numba_kernels.<family>`` with it, allocating outputs with their
inputs' array module; ``tinygen.backend.kernels._REGISTRY`` names each one for the
'cuda' device as impls "nvrtc" and "aot" (the same module: ``launch`` reads the
selected impl).  cupy is imported only when a cupy array arrives.
"""
from .launch import launch  # noqa: F401
