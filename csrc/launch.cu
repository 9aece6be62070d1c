// The generic kernel launcher: looks a kernel up in the generated table, checks the
// call against it and hands it to cudaLaunchKernel.
#include "launch.h"

#include <cuda_runtime.h>

#include <cstring>
#include <stdexcept>

#include "kernel_table.h"

namespace tinygen {

namespace {

const KernelEntry& find_kernel(const std::string& name) {
    for (int i = 0; i < kKernelCount; ++i) {
        if (name == kKernelTable[i].name) return kKernelTable[i];
    }
    throw std::invalid_argument("unknown CUDA kernel '" + name + "' (tinygen._C has " +
                                std::to_string(kKernelCount) + " kernels; kernel_names() " +
                                "lists them)");
}

}  // namespace

std::vector<std::string> kernel_names() {
    std::vector<std::string> names;
    for (int i = 0; i < kKernelCount; ++i) names.emplace_back(kKernelTable[i].name);
    return names;
}

std::string kernel_type_codes(const std::string& name) { return find_kernel(name).type_codes; }

void launch_kernel(const std::string& name, const std::array<unsigned, 3>& grid,
                   const std::array<unsigned, 3>& block, std::uintptr_t stream,
                   const std::string& type_codes, const std::string& payload) {
    const KernelEntry& kernel = find_kernel(name);
    if (type_codes != kernel.type_codes) {
        throw std::invalid_argument(
            name + ": called with parameter types '" + type_codes + "' but the compiled kernel " +
            "takes '" + kernel.type_codes + "' (f d i q: float double int long long; upper " +
            "case: a pointer)");
    }
    const std::size_t slots_size = 8 * static_cast<std::size_t>(kernel.arity);
    if (payload.size() != slots_size) {
        throw std::invalid_argument(name + ": " + std::to_string(payload.size()) +
                                    " bytes of arguments, expected " +
                                    std::to_string(slots_size) + " (8 per parameter)");
    }
    // Copied into 8-byte aligned slots; args[i] points at the i-th value.
    std::vector<unsigned long long> slots(kernel.arity);
    std::vector<void*> args(kernel.arity);
    if (kernel.arity) std::memcpy(slots.data(), payload.data(), slots_size);
    for (int i = 0; i < kernel.arity; ++i) args[i] = &slots[i];
    cudaError_t err = cudaLaunchKernel(kernel.function, dim3(grid[0], grid[1], grid[2]),
                                       dim3(block[0], block[1], block[2]), args.data(), 0,
                                       reinterpret_cast<cudaStream_t>(stream));
    if (err == cudaSuccess) err = cudaGetLastError();
    if (err != cudaSuccess) {
        cudaGetLastError();  // clear the non-sticky error so later calls do not see it
        throw std::runtime_error("launching CUDA kernel " + name + ": " +
                                 cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
    }
}

}  // namespace tinygen
