// Test-only kernels for tests/backend/cuda/test_emulator_check.py: planted bugs the
// checked emulator (kernels/emulation_check.h) must report, each beside its correct twin
// that it must pass.  Compiled only by the emulator, with kernels/ on the include path.
#include "common.cuh"

// --- a missing barrier: y = x reversed through shared memory ---------------------------------
extern "C" __global__ void planted_reverse_f64(const double* x, double* y, int with_barrier) {
    __shared__ double tile[256];
    tile[threadIdx.x] = x[threadIdx.x];
    if (with_barrier) __syncthreads();
    y[threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}

// --- off by one: y[i] = x[i] + x[i + 1] for i < n, reading x[n] (x has n elements) unless
// `guarded`; and a shared array written one past its end unless `guarded` ---------------------
extern "C" __global__ void planted_neighbour_sum_f64(const double* x, double* y, int n,
                                                     int guarded) {
    const int i = threadIdx.x;
    if (i < n) y[i] = x[i] + ((guarded && i + 1 >= n) ? 0.0 : x[i + 1]);
}

extern "C" __global__ void planted_shared_overrun_f64(double* y, int guarded) {
    __shared__ double tile[32];
    const int i = threadIdx.x;
    if (i < 32 || !guarded) tile[i] = i;  // blockDim.x = 33: thread 32 overruns
    __syncthreads();
    if (i < 32) y[i] = tile[i];
}

// --- an uninitialised read: each block's sum of x, from a shared array that only the first
// `written` threads of the first `blocks_writing` blocks fill -----------------------------------
extern "C" __global__ void planted_partial_fill_f64(const double* x, double* total, int written,
                                                    int blocks_writing) {
    __shared__ double values[64];
    if ((int)threadIdx.x < written && (int)blockIdx.x < blocks_writing) {
        values[threadIdx.x] = x[threadIdx.x];
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0.0;
        for (unsigned t = 0; t < blockDim.x; ++t) s += values[t];
        total[blockIdx.x] = s;
    }
}

// --- the fence discipline: each block writes a partial sum, the last block adds them ----------
// mode 0: tg_is_last_block (correct); 1: no release fence (the writer does not fence before
// the ticket); 2: no acquire fence (tg_is_last_block as it was before issue 13: the winner
// reads right after the ticket); 3: as 2, but reading the partials with volatile loads (the
// CUDA programming guide's pattern); 4: no ticket at all (block 0 reads the others'
// partials, assuming they ran first).
__device__ bool planted_last_block(int* ticket, int mode) {
    __shared__ int last;
    if (mode != 1) __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(ticket, 1) == (int)gridDim.x - 1;
        if (last) *ticket = 0;
    }
    __syncthreads();
    return last != 0;
}

extern "C" __global__ void planted_grid_sum_f64(const double* x, double* partial, int* ticket,
                                                double* total, int mode) {
    __shared__ double scratch[256];
    const double mine = tg_block_sum(x[blockIdx.x * blockDim.x + threadIdx.x], scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = mine;
    bool last;
    if (mode == 0) {
        last = tg_is_last_block(ticket, (int)gridDim.x);
    } else if (mode == 4) {
        __syncthreads();
        last = blockIdx.x == gridDim.x - 1;
    } else {
        last = planted_last_block(ticket, mode);
    }
    if (!last || threadIdx.x != 0) return;
    double s = 0.0;
    if (mode == 3) {
        const volatile double* p = partial;
        for (unsigned b = 0; b < gridDim.x; ++b) s += p[b];
    } else {
        for (unsigned b = 0; b < gridDim.x; ++b) s += partial[b];
    }
    total[0] = s;
}

// --- blocks touching each other's data with no ordering ---------------------------------------
// Block b adds 1 to x[b] and reads x[b - 1] (the previous block's element): a cross-block
// read of data another block wrote (`shift` = 1), or each block on its own (`shift` = 0).
extern "C" __global__ void planted_neighbour_block_f64(double* x, double* y, int shift) {
    if (threadIdx.x != 0) return;
    const unsigned b = blockIdx.x;
    x[b] += 1.0;
    y[b] = b >= (unsigned)shift ? x[b - shift] : 0.0;
}

// --- an atomic and a plain access to one word in one barrier interval --------------------------
extern "C" __global__ void planted_atomic_and_plain_f64(double* total, double* seen,
                                                        int with_barrier) {
    atomicAdd(total, 1.0);
    if (with_barrier) __syncthreads();
    if (threadIdx.x == 0) seen[0] = total[0];
}

// --- __launch_bounds__: every path refuses a bigger block ------------------------------------
extern "C" __global__ void __launch_bounds__(64) planted_bounded_f64(double* y) {
    __shared__ double tile[64];
    tile[threadIdx.x] = threadIdx.x;
    __syncthreads();
    y[threadIdx.x] = tile[threadIdx.x];
}

// --- __trap(): the launch fails, naming the thread and the place ------------------------------
extern "C" __global__ void planted_trap_f64(double* y, int bad) {
    if ((int)threadIdx.x == bad) __trap();
    __syncthreads();
    y[blockIdx.x * blockDim.x + threadIdx.x] = 1.0;
}
