// pybind11 bindings of tinygen._C, the optional ahead-of-time CUDA extension.
//
// Each csrc/*.cu file is compiled by nvcc and exposes plain C++ functions declared in a
// csrc/*.h header; this file (and any other csrc/*.cpp) binds them with pybind11 and is
// compiled by the ordinary C++ compiler. Kernels themselves live in kernels/*.cu: the
// build generates a table of all their entry points (kernel_table.h), and one generic
// launcher (launch.cu) runs any of them by name.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <vector>

#include "device_info.h"
#include "launch.h"

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

    m.def("kernel_names", &tinygen::kernel_names,
          "Names of the compiled kernels (the extern \"C\" entry points of kernels/*.cu).");
    m.def("kernel_type_codes", &tinygen::kernel_type_codes, py::arg("name"),
          "Parameter type codes of a kernel: f d i q (float double int long long), upper "
          "case for a pointer.");
    m.def("launch", &tinygen::launch_kernel, py::arg("name"), py::arg("grid"), py::arg("block"),
          py::arg("stream"), py::arg("type_codes"), py::arg("payload"),
          py::call_guard<py::gil_scoped_release>(),
          "Launch kernel `name` on `stream` (cudaStream_t as int) with `payload` (bytes): one "
          "8-byte slot per parameter. Use tinygen.backend.cuda_kernels.launch, which checks "
          "the arguments and builds the payload.");
}
