// CUDA runtime queries: the only place of tinygen._C that includes cuda_runtime.h for them.
#include "device_info.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace tinygen {

namespace {

void check(cudaError_t err, const char* what) {
    if (err != cudaSuccess) {
        throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(err) + ": " +
                                 cudaGetErrorString(err));
    }
}

}  // namespace

int runtime_version() {
    int version = 0;
    check(cudaRuntimeGetVersion(&version), "cudaRuntimeGetVersion");
    return version;
}

int driver_version() {
    // Succeeds with 0 when no driver is installed.
    int version = 0;
    check(cudaDriverGetVersion(&version), "cudaDriverGetVersion");
    return version;
}

int device_count() {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    switch (err) {
        case cudaSuccess:
            return count;
        case cudaErrorNoDevice:            // a driver, but no GPU
        case cudaErrorInsufficientDriver:  // no driver, or one older than this runtime
            cudaGetLastError();            // clear the sticky "last error"
            return 0;
        default:
            check(err, "cudaGetDeviceCount");
            return 0;
    }
}

}  // namespace tinygen
