// The generic kernel launcher of tinygen._C (launch.cu, compiled by nvcc), bound in
// module.cpp.  Plain C++: module.cpp never sees CUDA headers.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace tinygen {

// Names of the kernels in the table, in table order.
std::vector<std::string> kernel_names();

// The parameter type codes of kernel `name` (see kernel_table.h); std::invalid_argument
// for an unknown name.
std::string kernel_type_codes(const std::string& name);

// Launches kernel `name` on `stream` (a cudaStream_t as an integer; 0: the default
// stream).  `type_codes` must equal the kernel's; `payload` holds one 8-byte slot per
// parameter (a pointer, or the scalar's value in its first bytes, little-endian).
// Throws std::invalid_argument for a call that does not match the kernel, and
// std::runtime_error with CUDA's error name and message when the launch fails.
void launch_kernel(const std::string& name, const std::array<unsigned, 3>& grid,
                   const std::array<unsigned, 3>& block, std::uintptr_t stream,
                   const std::string& type_codes, const std::string& payload);

}  // namespace tinygen
