// CUDA runtime queries for tinygen._C, implemented in device_info.cu (compiled by nvcc)
// and bound in module.cpp (compiled by the C++ compiler, which never sees CUDA headers).
#pragma once

#include <string>

namespace tinygen {

// Version of the CUDA runtime linked in, encoded as 1000*major + 10*minor (13000 = 13.0).
int runtime_version();

// Latest CUDA version the installed driver supports, same encoding; 0 without a driver.
int driver_version();

// Number of CUDA devices; 0 (not an error) when there is no device or no usable driver.
// Throws std::runtime_error for any other CUDA error.
int device_count();

}  // namespace tinygen
