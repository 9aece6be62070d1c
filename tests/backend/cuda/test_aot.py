"""The AOT path: argument packing, and tinygen._C's kernel table and launcher when built."""
import struct

import numpy as np
import pytest

from tinygen.backend.cuda_kernels import aot
from tinygen.backend.cuda_kernels.launch import pack_arguments
from tinygen.backend.cuda_kernels.source import default_sources, parse_signatures

try:
    from tinygen import _C
except ImportError:
    _C = None

needs_C = pytest.mark.skipif(_C is None, reason="tinygen._C is not built")


class _Pointer:
    def __init__(self, ptr):
        self.data = type("Memory", (), {"ptr": ptr})()


def test_pack_puts_each_argument_in_an_8_byte_slot():
    (sig,) = parse_signatures('extern "C" __global__ void k_f32(const float* x, double* y, '
                              'int i, long long q, float f, double d) {}')
    values = [_Pointer(0x1000), _Pointer(0x2008), np.int32(-5), np.int64(2**40), np.float32(0.5),
              np.float64(-2.25)]
    payload = aot.pack(sig, values)
    assert len(payload) == 8 * 6
    assert struct.unpack("<QQi4xqf4xd", payload) == (0x1000, 0x2008, -5, 2**40, 0.5, -2.25)


def test_missing_extension_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_C(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "tinygen" and fromlist and "_C" in fromlist:
            raise ImportError("No module named 'tinygen._C'")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_C)
    with pytest.raises(RuntimeError, match=r"'aot' CUDA kernels need the extension tinygen._C.*"
                                           r"set_impl\('cuda', 'nvrtc'\)"):
        aot.extension()


@needs_C
def test_extension_has_every_kernel_with_the_parsed_types():
    sources = default_sources()
    assert _C.kernel_names() == list(sources.signatures), (
        "tinygen._C was built from other kernels than kernels/*.cu holds now: rebuild it "
        "(pip install -e .)")
    for name, sig in sources.signatures.items():
        assert _C.kernel_type_codes(name) == sig.type_codes, name


@needs_C
def test_extension_refuses_calls_that_do_not_match_the_kernel():
    with pytest.raises(ValueError, match="unknown CUDA kernel 'no_such_kernel'"):
        _C.launch("no_such_kernel", (1, 1, 1), (1, 1, 1), 0, "", b"")
    name = "gated_activation_forward_f32"
    with pytest.raises(ValueError, match=r"called with parameter types 'DFqq' but the compiled "
                                         r"kernel takes 'FFqq'"):
        _C.launch(name, (1, 1, 1), (1, 1, 1), 0, "DFqq", bytes(32))
    with pytest.raises(ValueError, match=r"24 bytes of arguments, expected 32"):
        _C.launch(name, (1, 1, 1), (1, 1, 1), 0, "FFqq", bytes(24))


@needs_C
def test_launch_errors_carry_cudas_message():
    # p_count = q_count = 0: the kernel touches no memory, so this is safe on a GPU too.
    sig = default_sources().signature("gated_activation_forward_f32")
    x = np.zeros(0, np.float32)
    values, _ = pack_arguments(sig, (x, x, 0, 0))
    payload = aot.pack(sig, [_Pointer(0), _Pointer(0), *values[2:]])
    if _C.device_count() > 0:
        _C.launch(sig.name, (1, 1, 1), (32, 1, 1), 0, sig.type_codes, payload)
        return
    with pytest.raises(RuntimeError, match=r"launching CUDA kernel gated_activation_forward_f32: "
                                           r"cuda\w+: "):
        _C.launch(sig.name, (1, 1, 1), (32, 1, 1), 0, sig.type_codes, payload)
