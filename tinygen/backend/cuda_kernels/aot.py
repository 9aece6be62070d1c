"""The AOT path: kernels compiled by nvcc into tinygen._C when the package was built.

setup.py (via _cuda_build.py) compiles a generated table of every entry point (name,
host stub, parameter type codes derived from the compiled function type) with
csrc/launch.cu; ``_C.launch`` checks name, arity and type codes against the table
and calls cudaLaunchKernel on the given stream.  Arguments travel as 8-byte slots
(one per parameter, little-endian) in a bytes object.
"""
import struct

_SLOT = {"F": "<Q", "D": "<Q", "I": "<Q", "Q": "<Q",  # pointers: the device address
         "f": "<f4x", "d": "<d", "i": "<i4x", "q": "<q"}


def extension():
    """tinygen._C, or a clear error when it was not built."""
    try:
        from tinygen import _C
    except ImportError as exc:
        raise RuntimeError(
            "the 'aot' CUDA kernels need the extension tinygen._C, which is not built "
            f"({exc}); build it with a CUDA toolkit (`pip install -v -e .`) or select the "
            "NVRTC kernels: tinygen.backend.kernels.set_impl('cuda', 'nvrtc')") from None
    return _C


def pack(signature, values):
    """The argument slots of ``values`` (cupy arrays and numpy scalars, checked)."""
    slots = []
    for param, value in zip(signature.params, values):
        code = param.type_code
        slots.append(struct.pack(_SLOT[code], value.data.ptr if param.is_pointer else
                                 value.item()))
    return b"".join(slots)


def launch(signature, grid, block, values):
    import cupy

    stream = cupy.cuda.get_current_stream().ptr
    extension().launch(signature.name, grid, block, stream, signature.type_codes,
                       pack(signature, values))
