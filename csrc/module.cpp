// pybind11 bindings of tinygen._C, the optional ahead-of-time CUDA extension.
//
// Each csrc/*.cu file is compiled by nvcc and exposes plain C++ functions declared in a
// csrc/*.h header; this file (and any other csrc/*.cpp) binds them with pybind11 and is
// compiled by the ordinary C++ compiler. Kernels themselves live in kernels/*.cu, which
// is on nvcc's include path: a wrapper csrc/<family>.cu #includes "<family>.cu" and adds
// the host-side launchers.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <vector>

#include "device_info.h"

#ifndef TINYGEN_COMPILED_ARCHS
#error "TINYGEN_COMPILED_ARCHS (e.g. 80,90) is set by setup.py from TINYGEN_CUDA_ARCHS"
#endif

namespace py = pybind11;

namespace {

std::vector<int> compiled_archs() { return {TINYGEN_COMPILED_ARCHS}; }

}  // namespace

PYBIND11_MODULE(_C, m) {
    m.doc() = "tinygen's optional ahead-of-time CUDA extension";

    m.def("runtime_version", &tinygen::runtime_version,
          "CUDA runtime version linked in, as 1000*major + 10*minor (13000 = 13.0).");
    m.def("driver_version", &tinygen::driver_version,
          "Latest CUDA version the driver supports (same encoding); 0 without a driver.");
    m.def("device_count", &tinygen::device_count,
          "Number of CUDA devices; 0 when there is no device or no usable driver.");
    m.def("compiled_archs", &compiled_archs,
          "SM architectures the kernels were compiled for, e.g. [80, 90].");
}
