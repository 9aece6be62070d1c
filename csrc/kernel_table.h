// The table of kernels in tinygen._C: one entry per extern "C" __global__ entry point of
// kernels/*.cu.  _cuda_build.py generates kernel_table.cu (in the build directory): it
// #includes every kernel file, then this header, and defines kKernelTable with
// kernel_entry(...) calls.  Plain C++: launch.cu (nvcc) and the generated file use it.
#pragma once

namespace tinygen {

struct KernelEntry {
    const char* name;
    const void* function;    // the host stub, as cudaLaunchKernel wants it
    int arity;
    const char* type_codes;  // one letter per parameter (see TypeCode)
};

// Defined in the generated kernel_table.cu; kKernelCount entries (plus an end marker).
extern const KernelEntry kKernelTable[];
extern const int kKernelCount;

// Parameter type codes, as tinygen/backend/cuda_kernels/source.py writes them from the
// parsed signature: f d i q for float, double, int, long long; upper case for a pointer
// to one (const or not).  Derived here from the compiled function type, so a parser
// that misreads a signature makes the launch fail instead of passing wrong bytes.
// Any other parameter type has no TypeCode: a compile error, as the contract wants.
template <class T> struct TypeCode;
template <> struct TypeCode<float> { static constexpr char value = 'f'; };
template <> struct TypeCode<double> { static constexpr char value = 'd'; };
template <> struct TypeCode<int> { static constexpr char value = 'i'; };
template <> struct TypeCode<long long> { static constexpr char value = 'q'; };
template <class T> struct TypeCode<T*> {
    static constexpr char value = TypeCode<T>::value - 'a' + 'A';
};
template <class T> struct TypeCode<const T> : TypeCode<T> {};

template <class... P>
KernelEntry kernel_entry(const char* name, void (*kernel)(P...)) {
    static constexpr char codes[] = {TypeCode<P>::value..., '\0'};
    return {name, reinterpret_cast<const void*>(kernel), static_cast<int>(sizeof...(P)), codes};
}

}  // namespace tinygen
