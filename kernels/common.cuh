// common.cuh: the one header every kernels/<family>.cu includes first.
//
// The same kernel source is compiled three ways (see tinygen/backend/cuda_kernels):
//   nvcc    the ahead-of-time extension tinygen._C (sm_80, sm_90) and the compile tests;
//   NVRTC   at run time through cupy.RawModule: no host headers exist there (<cmath>,
//           <cstdio>, ... cannot be included), the math functions are built in;
//   g++     the CPU emulator (TINYGEN_CUDA_EMULATION defined): emulation.h supplies the
//           CUDA language (threadIdx, __syncthreads, __shared__, atomicAdd, math overloads).
//
// All kernel files are compiled TOGETHER, as one translation unit that #includes every
// kernels/*.cu: a helper defined at file scope in two families is a redefinition error.
// Put a family's helpers in `namespace <family>` (or name them <family>_...); only the
// entry points are seen in the global namespace.  Entry points come in float/double
// pairs written once each: TG_ENTRY_F32_F64 (at the end of this file: what it emits).
//
// What kernels may use besides plain C++ (the contract: tinygen/backend/cuda_kernels/__init__.py):
//   threadIdx, blockIdx, blockDim, gridDim, __syncthreads() (block-uniform control flow
//   only), static __shared__ arrays, atomicAdd (float, double, int), min/max, exp expf
//   log logf tanh tanhf sqrt sqrtf rsqrt rsqrtf fabs fabsf fma fmaf (float and double
//   overloads of the unsuffixed names), __threadfence, __trap, float4 and double2 (16-byte
//   vector loads and stores), volatile loads, __int_as_float __float_as_int
//   __longlong_as_double __double_as_longlong, and the tg_* helpers below.
// A kernel whose shared arrays are sized for a block size declares it with
// __launch_bounds__(N) on its entry points (a literal N: launch.py parses and enforces it).
// The checked emulator (emulation_check.h) runs every kernel test: races between
// barriers, blocks reading each other's data without tg_is_last_block's fences,
// uninitialised __shared__ reads and out-of-bounds accesses fail the test.
#pragma once

#ifdef TINYGEN_CUDA_EMULATION
#include "emulation.h"
#endif

// This thread's position in a 1-D launch, and the step of a grid-stride loop over
// `count` elements: `for (long long i = tg_thread_index(); i < count; i += tg_grid_stride())`.
// long long because count may exceed 2^31 while blockIdx.x * blockDim.x is unsigned.
__device__ __forceinline__ long long tg_thread_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long tg_grid_stride() {
    return (long long)gridDim.x * blockDim.x;
}

// +infinity of T (NVRTC has no INFINITY macro and no <limits>).
template <class T> __device__ __forceinline__ T tg_infinity();
template <> __device__ __forceinline__ float tg_infinity<float>() {
    return __int_as_float(0x7f800000);
}
template <> __device__ __forceinline__ double tg_infinity<double>() {
    return __longlong_as_double(0x7ff0000000000000LL);
}

// sigmoid(x) = 1 / (1 + exp(-x)), with exp of a non-positive number only: no overflow
// for large |x| of either sign, and full relative accuracy in the tails.
template <class T> __device__ __forceinline__ T tg_sigmoid(T x) {
    T e = exp(-fabs(x));
    T s = T(1) / (T(1) + e);
    return x >= T(0) ? s : e * s;
}

// sigmoid'(x) = sigmoid(x) (1 - sigmoid(x)) = e / (1 + e)^2 with e = exp(-|x|): no
// cancellation in 1 - s where s rounds to 1.
template <class T> __device__ __forceinline__ T tg_sigmoid_derivative(T x) {
    T e = exp(-fabs(x));
    T d = T(1) + e;
    return e / (d * d);
}

// tanh'(x) = 1 - tanh(x)^2 = 4 e / (1 + e)^2 with e = exp(-2|x|): 1 - t*t loses every
// digit once t rounds to +-1 (|x| > 9 in float), this form keeps them all.
template <class T> __device__ __forceinline__ T tg_tanh_derivative(T x) {
    T e = exp(T(-2) * fabs(x));
    T d = T(1) + e;
    return T(4) * e / (d * d);
}

// The sum of `value` over all threads of the block, returned to every thread.
// Every thread of the block must call it (it contains __syncthreads), none may have
// returned before; `scratch` is a __shared__ array of at least blockDim.x * blockDim.y *
// blockDim.z elements, free for reuse once the call returns.  A shared-memory tree:
// the same order of additions on the GPU and in the emulator.
template <class T> __device__ T tg_block_sum(T value, T* scratch) {
    const unsigned count = blockDim.x * blockDim.y * blockDim.z;
    const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    scratch[tid] = value;
    __syncthreads();
    unsigned half = 1;
    while (half < count) half <<= 1;  // the smallest power of two >= count, halved below
    for (half >>= 1; half > 0; half >>= 1) {
        if (tid < half && tid + half < count) scratch[tid] += scratch[tid + half];
        __syncthreads();
    }
    T total = scratch[0];
    __syncthreads();  // everyone has read scratch[0] before anyone may overwrite it
    return total;
}

// True in every thread of the block that is the last of `count` blocks to take a ticket
// from `*ticket` (the "threadfence reduction": each block writes its partial results,
// then takes a ticket; the last one can read them all and finalise).  Every thread of
// the block must call it after its global writes.  The last block resets the ticket to
// 0, ready for the next launch with the same array.
//
// Both halves of the fence discipline (the CUDA memory model's release and acquire
// patterns; the checked emulator verifies them, emulation_check.h):
//   release  every thread fences after its writes and before the barrier that precedes
//            thread 0's atomic: no block's ticket is taken before its partials are
//            visible GPU-wide;
//   acquire  the winner's thread 0 fences after its atomic, before the barrier that
//            releases its block to read: without it the last block may read other
//            blocks' partials as stale lines of its SM's L1 (sm_70+ keeps global loads
//            in L1), the very values the ticket was meant to wait for.
__device__ __forceinline__ bool tg_is_last_block(int* ticket, int count) {
    __shared__ int last;
    __threadfence();  // release: this thread's writes reach every block before the ticket
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) {
        last = atomicAdd(ticket, 1) == count - 1;
        if (last) {
            *ticket = 0;
            __threadfence();  // acquire: the block's reads below come after the ticket
        }
    }
    __syncthreads();
    return last != 0;
}

// --- entry points: TG_ENTRY_F32_F64 ------------------------------------------------------
// Every kernel is a __device__ template on T (float or double); the launchers (NVRTC,
// the AOT table, the emulator) need one plain extern "C" __global__ function per dtype.
// Instead of writing that wrapper twice, a family writes it once:
//
//   TG_ENTRY_F32_F64(conv_split_sum, TG_NO_LAUNCH_BOUNDS, TG_NO_LAUNCH_BOUNDS,
//                    (const T* partial, T* out, int splits, long long count),
//                    conv::split_sum<T>(partial, out, splits, count))
//
// which emits (T is float in the first, double in the second):
//
//   namespace tg_entry_f32 {
//   extern "C" __global__ void conv_split_sum_f32(const T* partial, T* out, int splits,
//                                                 long long count)
//   { conv::split_sum<T>(partial, out, splits, count); }
//   }
//   using tg_entry_f32::conv_split_sum_f32;
//   ... the same in namespace tg_entry_f64 for conv_split_sum_f64.
//
// Arguments:
//   name        the entry point without its dtype suffix: <family>_<what>
//   bounds_f32  __launch_bounds__(threads[, min_blocks]) of name_f32, or
//               TG_NO_LAUNCH_BOUNDS; a literal thread count (launch.py enforces it)
//   bounds_f64  the same for name_f64 (a tile may fit twice per SM in float only)
//   (params)    the parameter list in parentheses, T for the dtype; other types as the
//               contract allows (a double* stays double* in both)
//   body...     the statement run by both, usually one call of the family's template;
//               T is in scope, so conv::split_sum<T> names the right instantiation
//
// Why namespaces: the preprocessor cannot replace T inside an argument, but name lookup
// can: tg_entry_f32::T is float, so a declaration inside namespace tg_entry_f32 reads
// `const T*` as `const float*`.  extern "C" gives the function its plain C name whatever
// namespace declares it (the symbol NVRTC, cuobjdump and the AOT table see is
// conv_split_sum_f32), and the using-declaration makes `&conv_split_sum_f32` work at
// global scope, where the AOT table and the emulator's launchers take the address.
//
// tinygen/backend/cuda_kernels/source.py parses these invocations (T replaced by float,
// then double) into the same signatures a hand-written pair would give; a family may
// still write a single extern "C" __global__ function by hand when it has no twin.
namespace tg_entry_f32 { typedef float T; }
namespace tg_entry_f64 { typedef double T; }

#define TG_NO_LAUNCH_BOUNDS

#define TG_ENTRY_F32_F64(name, bounds_f32, bounds_f64, params, ...)                        \
    namespace tg_entry_f32 {                                                               \
    extern "C" __global__ void bounds_f32 name##_f32 params { __VA_ARGS__; }               \
    }                                                                                      \
    using tg_entry_f32::name##_f32;                                                        \
    namespace tg_entry_f64 {                                                               \
    extern "C" __global__ void bounds_f64 name##_f64 params { __VA_ARGS__; }               \
    }                                                                                      \
    using tg_entry_f64::name##_f64;
