// Test-only kernels for tests/backend/cuda/test_emulator.py: they pin the emulator's
// semantics (barriers, shared memory, thread/block numbering, atomics, math overloads).
// Compiled only by the emulator, with kernels/ on the include path.
#include "common.cuh"

#include <type_traits>

// The math functions have float overloads, as in CUDA (a double result would silently
// change float32 kernels' rounding under emulation only).
static_assert(std::is_same_v<decltype(exp(1.0f)), float>);
static_assert(std::is_same_v<decltype(log(1.0f)), float>);
static_assert(std::is_same_v<decltype(tanh(1.0f)), float>);
static_assert(std::is_same_v<decltype(sqrt(1.0f)), float>);
static_assert(std::is_same_v<decltype(rsqrt(1.0f)), float>);
static_assert(std::is_same_v<decltype(fabs(1.0f)), float>);
static_assert(std::is_same_v<decltype(fma(1.0f, 1.0f, 1.0f)), float>);
static_assert(std::is_same_v<decltype(min(1.0f, 2.0f)), float>);
static_assert(std::is_same_v<decltype(max(1, 2)), int>);
static_assert(std::is_same_v<decltype(exp(1.0)), double>);

// Each block sums its block's slice of x with the shared-memory tree of common.cuh.
extern "C" __global__ void selftest_block_sum_f64(const double* x, double* sums,
                                                  long long count) {
    __shared__ double scratch[1024];
    const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const long long block = blockIdx.x + (long long)gridDim.x * blockIdx.y;
    const long long i = block * (blockDim.x * blockDim.y * blockDim.z) + tid;
    const double total = tg_block_sum(i < count ? x[i] : 0.0, scratch);
    if (tid == 0) sums[block] = total;
}

// y = x reversed within each block, through shared memory: needs the barrier whatever
// order the threads run in.
extern "C" __global__ void selftest_reverse_f64(const double* x, double* y) {
    __shared__ double tile[1024];
    const long long base = (long long)blockIdx.x * blockDim.x;
    tile[threadIdx.x] = x[base + threadIdx.x];
    __syncthreads();
    y[base + threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}

// The same without the barrier: a race, whose outcome depends on the thread order.
extern "C" __global__ void selftest_racy_reverse_f64(const double* x, double* y) {
    __shared__ double tile[1024];
    const long long base = (long long)blockIdx.x * blockDim.x;
    tile[threadIdx.x] = x[base + threadIdx.x];
    y[base + threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}

// Threads at or past `active` return at once; the others still meet at barriers
// (returned threads count as arrived) and sum their values.
extern "C" __global__ void selftest_early_return_f64(const double* x, double* total,
                                                     int active) {
    __shared__ double values[1024];
    if ((int)threadIdx.x >= active) return;
    values[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0.0;
        for (int t = 0; t < active; ++t) s += values[t];
        total[0] = s;
    }
    __syncthreads();
}

// Odd and even threads wait at different barriers: undefined on a GPU, an error here.
extern "C" __global__ void selftest_divergent_barrier_f64(double* y) {
    if (threadIdx.x % 2) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    y[threadIdx.x] = 1.0;
}

// Every thread writes its coordinates: out[global thread][0..5] = threadIdx.xyz, blockIdx.xyz
// and out[...][6..11] = blockDim.xyz, gridDim.xyz.
extern "C" __global__ void selftest_coordinates(int* out) {
    const long long block =
        blockIdx.x + (long long)gridDim.x * (blockIdx.y + (long long)gridDim.y * blockIdx.z);
    const long long thread =
        threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int* o = out + 12 * (block * blockDim.x * blockDim.y * blockDim.z + thread);
    o[0] = threadIdx.x; o[1] = threadIdx.y; o[2] = threadIdx.z;
    o[3] = blockIdx.x; o[4] = blockIdx.y; o[5] = blockIdx.z;
    o[6] = blockDim.x; o[7] = blockDim.y; o[8] = blockDim.z;
    o[9] = gridDim.x; o[10] = gridDim.y; o[11] = gridDim.z;
}

// Counts and sums with atomicAdd (float, double and int) over a grid-stride loop.
extern "C" __global__ void selftest_atomics(const double* x, double* total_d, float* total_f,
                                            int* count, long long n) {
    for (long long i = tg_thread_index(); i < n; i += tg_grid_stride()) {
        atomicAdd(total_d, x[i]);
        atomicAdd(total_f, (float)x[i]);
        atomicAdd(count, 1);
    }
}

// Every scalar parameter type, written back as double, and min/max of ints and floats.
extern "C" __global__ void selftest_scalars(double* out, int i, long long q, float f,
                                            double d) {
    out[0] = i;
    out[1] = (double)q;
    out[2] = f;
    out[3] = d;
    out[4] = min(i, -7);
    out[5] = max(f, 0.25f);
    out[6] = tg_infinity<double>();
    out[7] = -tg_infinity<float>();
}
