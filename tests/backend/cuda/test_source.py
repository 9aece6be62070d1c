"""Parsing kernel entry points, and the one translation unit all three paths compile."""
from pathlib import Path

import pytest

from tinygen.backend.cuda_kernels import build_script, emulator, nvrtc
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
    table, names = build_script.load().kernel_table_source()
    assert unit in table and names == list(sources.signatures)
    for name in names:
        assert f'kernel_entry("{name}", &{name})' in table


def test_kernel_dir_is_the_repository_one_in_a_checkout():
    assert (kernel_dir() / "common.cuh").is_file() and (kernel_dir() / "emulation.h").is_file()


# --- TG_ENTRY_F32_F64 (kernels/common.cuh) -----------------------------------------------------
ENTRY_POINTS = Path(__file__).with_name("entry_points.txt")


def _listing(sources):
    return [f"{sig.path.name}\t{sig.max_threads}\t{sig}" for sig in sources.signatures.values()]


def test_entry_points_are_those_of_the_hand_written_pairs():
    """The macro form lists the same kernels, in the same order, with the same parameters
    and block bounds as the hand-written extern "C" pairs it replaced.  After changing an
    entry point on purpose: python -c "from tests.backend.cuda.test_source import *;
    print(*_listing(default_sources()), sep=chr(10))" (below the header of the file)."""
    expected = [line for line in ENTRY_POINTS.read_text().splitlines()
                if line and not line.startswith("#")]
    assert _listing(default_sources()) == expected


def test_entry_macro_reads_as_its_float_and_double_twins():
    text = '''#include "common.cuh"
    extern "C" __global__ void first_f32(float* y) {}
    // TG_ENTRY_F32_F64(commented_out, , , (T* y), y[0] = 0)
    TG_ENTRY_F32_F64(pair_scale, __launch_bounds__(256, 2), __launch_bounds__(128),
        (const T* __restrict__ x, T *y, double* partial, long  long n, T a, int k),
        fam::scale<T, 2, (3 > 1)>(x, y, partial, n, a, k))
    TG_ENTRY_F32_F64(pair_copy,TG_NO_LAUNCH_BOUNDS,TG_NO_LAUNCH_BOUNDS,(),fam::copy<T>())
    '''
    first, f32, f64, copy32, copy64 = parse_signatures(text, "t.cu")
    assert first.name == "first_f32"
    assert str(f32) == ("pair_scale_f32(const float* x, float* y, double* partial, long long n, "
                        "float a, int k)")
    assert str(f64) == ("pair_scale_f64(const double* x, double* y, double* partial, "
                        "long long n, double a, int k)")
    assert (f32.max_threads, f64.max_threads) == (256, 128)
    assert f32.line == f64.line == 4 and f32.type_codes == "FFDqfi" and f64.type_codes == "DDDqdi"
    assert (str(copy32), str(copy64)) == ("pair_copy_f32()", "pair_copy_f64()")
    assert copy32.max_threads is None and copy64.max_threads is None


@pytest.mark.parametrize("call, problem", [
    ("TG_ENTRY_F32_F64(k, , , (T* y))", r"t.cu:1: TG_ENTRY_F32_F64 takes \(name, bounds_f32, "
                                        r"bounds_f64, \(params\), body...\), got 4"),
    ("TG_ENTRY_F32_F64(k-1, , , (T* y), y[0] = 0)", r"'k-1' is not a kernel name"),
    ("TG_ENTRY_F32_F64(k, , , T* y, y[0] = 0)", r"the fourth argument must be the parameter "
                                                r"list in parentheses, got 'T\* y'"),
    ("TG_ENTRY_F32_F64(k, 256, , (T* y), y[0] = 0)", r"bounds must be __launch_bounds__"),
    ("TG_ENTRY_F32_F64(k, __launch_bounds__(N), , (T* y), y[0] = 0)",
     r"kernel k_f32: __launch_bounds__ must start with a literal thread count, got 'N'"),
    ("TG_ENTRY_F32_F64(k, , , (T** y), y[0] = 0)", r"kernel k_f32: parameter 'float\*\* y'"),
    ("TG_ENTRY_F32_F64(k, , , (T* y), f(y)", r"TG_ENTRY_F32_F64\( is never closed"),
])
def test_entry_macro_refuses_calls_outside_the_contract(call, problem):
    with pytest.raises(KernelSourceError, match=problem):
        parse_signatures(call, "t.cu")


def test_a_misread_signature_fails_the_emulator_build(tmp_path, monkeypatch):
    """The emulator's launchers assert that each parsed signature is the compiled one: a
    parser reading a TG_ENTRY_F32_F64 parameter list wrongly cannot pass wrong bytes."""
    monkeypatch.setenv("TINYGEN_CACHE", str(tmp_path))
    kernel = tmp_path / "misread.cu"
    kernel.write_text('#include "common.cuh"\n'
                      "#define float double  // the compiler sees double where the parser "
                      "reads float\n"
                      "TG_ENTRY_F32_F64(misread_scale, TG_NO_LAUNCH_BOUNDS, TG_NO_LAUNCH_BOUNDS,\n"
                      "                 (T* y, float a), y[0] = a)\n")
    try:
        emulator.compiler()
    except emulator.EmulatorUnavailable as exc:
        pytest.skip(str(exc))
    with pytest.raises(emulator.EmulatorBuildError,
                       match=r"misread.cu:3: misread_scale_f32: the parsed signature "
                             r"misread_scale_f32\(float\* y, float a\) is not the compiled one"):
        emulator.library(KernelSources(kernel_dir(), files=[kernel]), check=False)
