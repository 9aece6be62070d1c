"""The NVRTC path: the kernels compiled at run time by cupy.RawModule, once per process.

The module's code is the same translation unit the emulator and the AOT table compile
(``KernelSources.translation_unit``: one ``#include`` per kernel file, the kernel
directory on the include path), headed by a digest of every file's contents: cupy's
disk cache (~/.cupy/kernel_cache) is keyed by the code text and the options only, so
without the digest an edited kernel or common.cuh would keep running its stale binary.
"""
import threading

from . import compile_flags

_modules = {}
_lock = threading.Lock()


def module_code(sources):
    return (f"// tinygen CUDA kernels; sources sha256 {sources.digest}\n"
            + sources.translation_unit())


def options(sources):
    """What RawModule gets: the one flag set (compile_flags; cupy adds -ftz=true, the
    device's -arch=sm_XX and --device-as-default-execution-space after these)."""
    return compile_flags.nvrtc_user_options(sources.directory)


def module(sources):
    """The cupy.RawModule of ``sources`` (compiled lazily by cupy, per device)."""
    import cupy

    with _lock:
        found = _modules.get(sources.digest)
        if found is None:
            found = _modules[sources.digest] = cupy.RawModule(code=module_code(sources),
                                                              options=options(sources))
        return found


def launch(sources, signature, grid, block, values):
    """Launch on the current device and stream; ``values`` from ``launch.pack_arguments``
    (cupy arrays, and numpy scalars whose dtype fixes the C type cupy passes)."""
    function = module(sources).get_function(signature.name)
    function(grid, block, tuple(values))
