"""Parsing kernel entry points, and the one translation unit all three paths compile."""
import sys

import pytest

from tinygen.backend.cuda_kernels import emulator, nvrtc
from tinygen.backend.cuda_kernels.source import (
    KernelSourceError, KernelSources, default_sources, kernel_dir, parse_signatures)


def test_parses_entry_points_with_comments_restrict_and_launch_bounds():
    text = '''
    #include "common.cuh"
    // extern "C" __global__ void commented_out_f32(float* x)  -- not an entry point
    /* extern "C" __global__ void also_commented(int n) */
    extern "C" __global__ void __launch_bounds__(256) scale_f32(const float* __restrict__ x,
                                                               float *y,
                                                               long   long n, float a,
                                                               const int k) { }
    extern "C" __global__ void empty_f64() {}
    '''
    first, second = parse_signatures(text, "t.cu")
    assert str(first) == "scale_f32(const float* x, float* y, long long n, float a, int k)"
    assert first.type_codes == "FFqfi" and first.line == 5
    assert [p.dtype_name for p in first.params] == ["float32", "float32", "int64", "float32",
                                                    "int32"]
    assert second.name == "empty_f64" and second.params == ()


@pytest.mark.parametrize("declaration, problem", [
    ('extern "C" __global__ void k(unsigned n) {}', r"parameter 'unsigned n' is outside"),
    ('extern "C" __global__ void k(int n = 3) {}', r"parameter 'int n = 3' is outside"),
    ('extern "C" __global__ void k(size_t n) {}', r"parameter 'size_t n'"),
    ('extern "C" __global__ void k(float** p) {}', r"parameter 'float\*\* p'"),
    ('extern "C" __global__ void k(floaty) {}', r"parameter 'floaty'"),
    ('extern "C" __global__ void k(int n, int n) {}', r"repeated parameter name"),
    ('template <class T> __global__ void k(T* x) {}', r"t.cu:1: a __global__ function outside"),
    ('__global__ void k(float* x) {}', r"t.cu:1: a __global__ function outside"),
])
def test_refuses_signatures_outside_the_contract(declaration, problem):
    with pytest.raises(KernelSourceError, match=problem):
        parse_signatures(declaration, "t.cu")


def _kernel_dir_copy(tmp_path):
    for path in kernel_dir().iterdir():
        if path.suffix in (".cuh", ".h"):
            (tmp_path / path.name).write_text(path.read_text())
    return tmp_path


def test_a_kernel_defined_twice_is_refused(tmp_path):
    directory = _kernel_dir_copy(tmp_path)
    for name in ("a.cu", "b.cu"):
        (directory / name).write_text('extern "C" __global__ void twice_f32(float* x) {}\n')
    with pytest.raises(KernelSourceError, match=r"b.cu:1: kernel twice_f32 is also defined at "
                                                r".*a.cu:1"):
        KernelSources(directory).signatures


def test_digest_follows_every_file_including_headers(tmp_path):
    directory = _kernel_dir_copy(tmp_path)
    (directory / "k.cu").write_text('#include "common.cuh"\n')
    before = KernelSources(directory).digest
    assert KernelSources(directory).digest == before
    (directory / "common.cuh").write_text((directory / "common.cuh").read_text() + "\n// edit\n")
    assert KernelSources(directory).digest != before


def test_all_paths_compile_the_same_translation_unit():
    sources = default_sources()
    unit = sources.translation_unit()
    assert unit == "".join(f'#include "{p.name}"\n' for p in sorted(kernel_dir().glob("*.cu")))
    assert nvrtc.module_code(sources).endswith(unit)
    assert sources.digest in nvrtc.module_code(sources)  # cupy's cache key changes with it
    assert f"-I{sources.directory}" in nvrtc.options(sources)
    assert unit in emulator.translation_unit(sources)
    sys.path.insert(0, str(kernel_dir().parent))
    try:
        import _cuda_build
    finally:
        sys.path.pop(0)
    table, names = _cuda_build.kernel_table_source()
    assert unit in table and names == list(sources.signatures)
    for name in names:
        assert f'kernel_entry("{name}", &{name})' in table


def test_kernel_dir_is_the_repository_one_in_a_checkout():
    assert (kernel_dir() / "common.cuh").is_file() and (kernel_dir() / "emulation.h").is_file()
