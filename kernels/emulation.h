// emulation.h: the CUDA language for host C++, so that g++ runs kernels/*.cu on the CPU.
//
// Included by common.cuh only when TINYGEN_CUDA_EMULATION is defined (never by nvcc or
// NVRTC).  tinygen/backend/cuda_kernels/emulator.py compiles one translation unit that
// includes every kernel file and exports, per extern "C" __global__ entry point NAME,
//     extern "C" int tg_emu_NAME(const unsigned grid[3], const unsigned block[3], void** args)
// (args as for cudaLaunchKernel: args[i] points at the i-th argument's value), which
// calls tg_emu::launch below; it returns 0, or 1 with the reason in tg_emu::last_error().
//
// How a launch runs: the blocks one after another on the calling OS thread; the threads
// of a block as cooperative fibers (ucontext), switched round-robin: a fiber runs until it
// reaches __syncthreads() or returns.  When every fiber of the block is waiting at a
// barrier or has returned (returned threads count as arrived, as on sm_70+), the barrier
// opens and the waiting fibers run on.  Hence:
//   - __shared__ is `static`: one block lives at a time, on one OS thread;
//   - atomicAdd is a plain read-modify-write: fibers never interrupt each other;
//   - threadIdx/blockIdx/blockDim/gridDim are globals, set before a fiber is switched in;
//   - fibers waiting at DIFFERENT __syncthreads() calls in one barrier phase (a barrier
//     in divergent control flow, undefined behaviour on a GPU) fail the launch with
//     both source locations;
//   - within a phase the fibers run in thread order, or in reverse order after
//     tg_emu::set_reverse_order(true): a race between threads of a block (a missing
//     __syncthreads) shows up as results that depend on the order;
//   - __trap() ends the launch with an error naming the thread and the place.
//
// The checked build (TINYGEN_CUDA_CHECK defined, the kernels compiled with
// -fsanitize=thread): every load and store of kernel code calls a __tsan_* hook of
// emulation_check.h (the race/memory/init checker, compiled as its own translation unit),
// and this file tells that checker what the compiler cannot see: which fiber runs,
// when a block starts and a barrier opens, and every atomic and fence.  __shared__
// arrays are each followed by a 64-byte guard object (tg_shared_guard_N): the checker
// finds both in the symbol table, and an access to a guard is out of bounds.
#pragma once

#ifndef TINYGEN_CUDA_EMULATION
#error "emulation.h is the CPU emulator's CUDA layer: include common.cuh instead"
#endif

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// --- the CUDA built-in types and variables --------------------------------------------------
struct uint3 {
    unsigned x, y, z;
};

// The 16-byte vector types (kernels load and store through them: LDG.128 / STG.128).
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) double2 {
    double x, y;
};

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

// Set by the scheduler before it switches a fiber in (see the barrier's compiler fence).
inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

// --- the checker's hooks (the checked build only; emulation_check.h implements them) ---------
#ifdef TINYGEN_CUDA_CHECK
extern "C" {
void tg_check_block_begin(unsigned linear_block, unsigned threads);
void tg_check_thread(unsigned thread);
void tg_check_barrier_open();
void tg_check_fence(const void* pc);
void tg_check_atomic(const void* address, unsigned bytes, const void* pc);
}
#define TG_EMU_NOINLINE_UNCHECKED __attribute__((noinline, no_sanitize_thread))
#endif

// --- execution-space qualifiers -------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// __restrict__ is a GNU C++ keyword already.

// One block at a time: a static is that block's shared memory.
#ifdef TINYGEN_CUDA_CHECK
// A guard object, then the array (gcc lays them out array first, guard after; the
// checker verifies which arrays got a guard).  __COUNTER__ makes the guard names unique.
#define TG_EMU_SHARED_WITH_GUARD(n) \
    __attribute__((used, aligned(16))) static char tg_shared_guard_##n[64]; \
    __attribute__((aligned(16))) static
#define TG_EMU_SHARED_EXPAND(n) TG_EMU_SHARED_WITH_GUARD(n)
#define __shared__ TG_EMU_SHARED_EXPAND(__COUNTER__)
#else
#define __shared__ static
#endif

// --- math: CUDA has float and double overloads of the unsuffixed names ----------------------
using std::ceil;
using std::cos;
using std::erf;
using std::exp;
using std::expm1;
using std::fabs;
using std::floor;
using std::fma;
using std::fmax;
using std::fmin;
using std::isinf;
using std::isnan;
using std::log;
using std::log1p;
using std::pow;
using std::sin;
using std::sqrt;
using std::tanh;

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }

// CUDA's min/max: for floating point fminf/fmin semantics (a NaN operand loses), for
// integers the usual; mixed arguments meet in their common type.
template <class A, class B,
          class = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> min(A a, B b) {
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point_v<C>) {
        return std::fmin(C(a), C(b));
    } else {
        return C(b) < C(a) ? C(b) : C(a);
    }
}

template <class A, class B,
          class = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> max(A a, B b) {
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point_v<C>) {
        return std::fmax(C(a), C(b));
    } else {
        return C(a) < C(b) ? C(b) : C(a);
    }
}

inline float __int_as_float(int v) { return std::bit_cast<float>(v); }
inline int __float_as_int(float v) { return std::bit_cast<int>(v); }
inline double __longlong_as_double(long long v) { return std::bit_cast<double>(v); }
inline long long __double_as_longlong(double v) { return std::bit_cast<long long>(v); }

// --- atomics: fibers switch only at barriers, so a plain read-modify-write is atomic --------
// (In the checked build the checker is told, and the read-modify-write itself is not
// instrumented: it must not count as a plain load and store.)
#ifdef TINYGEN_CUDA_CHECK
template <class T>
TG_EMU_NOINLINE_UNCHECKED T tg_emu_atomic_add(T* address, T value) {
    tg_check_atomic(address, sizeof(T), __builtin_return_address(0));
    T old = *address;
    *address = old + value;
    return old;
}
#else
template <class T>
inline T tg_emu_atomic_add(T* address, T value) {
    T old = *address;
    *address = old + value;
    return old;
}
#endif
inline float atomicAdd(float* address, float value) { return tg_emu_atomic_add(address, value); }
inline double atomicAdd(double* address, double value) { return tg_emu_atomic_add(address, value); }
inline int atomicAdd(int* address, int value) { return tg_emu_atomic_add(address, value); }
inline unsigned atomicAdd(unsigned* address, unsigned value) {
    return tg_emu_atomic_add(address, value);
}
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    return tg_emu_atomic_add(address, value);
}

// Blocks run one after another on one OS thread: a block's global writes are visible to
// every later block without a fence.  What a GPU needs (the fence discipline of
// common.cuh's tg_is_last_block) the checked build verifies.
#ifdef TINYGEN_CUDA_CHECK
TG_EMU_NOINLINE_UNCHECKED inline void __threadfence() {
    tg_check_fence(__builtin_return_address(0));
}
#else
inline void __threadfence() {}
#endif

// __trap(): the launch fails with the thread, block and place (see tg_emu::trap).
#define __trap() ::tg_emu::trap(__FILE__, __LINE__)

// --- the scheduler ----------------------------------------------------------------------------
#define __syncthreads() ::tg_emu::barrier(__FILE__, __LINE__)

namespace tg_emu {

constexpr unsigned kMaxThreadsPerBlock = 1024;
// Each fiber's stack, below a guard page (an overflow faults instead of silently
// corrupting the neighbouring fiber's stack).  Kernels keep little on the stack.
constexpr std::size_t kStackBytes = 128 * 1024;

enum class Fiber : unsigned char { Runnable, AtBarrier, Finished };

struct Scheduler {
    std::mutex mutex;  // one launch at a time (ctypes releases the GIL during a call)
    ucontext_t scheduler_context;
    std::vector<ucontext_t> contexts = std::vector<ucontext_t>(kMaxThreadsPerBlock);
    std::vector<Fiber> states = std::vector<Fiber>(kMaxThreadsPerBlock);
    std::vector<const char*> barrier_files = std::vector<const char*>(kMaxThreadsPerBlock);
    std::vector<int> barrier_lines = std::vector<int>(kMaxThreadsPerBlock);
    char* stacks = nullptr;  // mmap'ed once, for kMaxThreadsPerBlock fibers
    std::size_t slot_bytes = 0;
    unsigned current = 0;  // the fiber running now
    void (*body)(void*) = nullptr;
    void* body_context = nullptr;
    bool reverse_order = false;
    bool trapped = false;
    std::string error;
};

inline Scheduler scheduler;

inline const char* last_error() { return scheduler.error.c_str(); }
inline void set_reverse_order(bool reverse) { scheduler.reverse_order = reverse; }

inline void barrier(const char* file, int line) {
    Scheduler& s = scheduler;
    const unsigned me = s.current;
    s.states[me] = Fiber::AtBarrier;
    s.barrier_files[me] = file;
    s.barrier_lines[me] = line;
    swapcontext(&s.contexts[me], &s.scheduler_context);
    // Another fiber ran meanwhile: threadIdx and __shared__ data changed behind the
    // compiler's back, so nothing may be kept in registers across this point.
    asm volatile("" ::: "memory");
}

inline std::string coords(unsigned x, unsigned y, unsigned z) {
    return "(" + std::to_string(x) + ", " + std::to_string(y) + ", " + std::to_string(z) + ")";
}

// __trap(): record why, and leave the fiber for good (run_block ends the launch).
[[noreturn]] inline void trap(const char* file, int line) {
    Scheduler& s = scheduler;
    s.error = std::string("__trap() in thread ") +
              coords(threadIdx.x, threadIdx.y, threadIdx.z) + " of block " +
              coords(blockIdx.x, blockIdx.y, blockIdx.z) + " at " + file + ":" +
              std::to_string(line);
    s.trapped = true;
    s.states[s.current] = Fiber::Finished;
    swapcontext(&s.contexts[s.current], &s.scheduler_context);
    __builtin_unreachable();  // the scheduler never resumes a trapped fiber
}

inline void fiber_main() {
    Scheduler& s = scheduler;
    s.body(s.body_context);
    s.states[s.current] = Fiber::Finished;
    // returning resumes uc_link, the scheduler
}

inline bool allocate_stacks() {
    Scheduler& s = scheduler;
    if (s.stacks) return true;
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    s.slot_bytes = page + kStackBytes;
    void* memory = mmap(nullptr, s.slot_bytes * kMaxThreadsPerBlock, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) {
        s.error = "cannot map the fiber stacks (" + std::to_string(kMaxThreadsPerBlock) +
                  " x " + std::to_string(kStackBytes / 1024) + " KiB)";
        return false;
    }
    s.stacks = static_cast<char*>(memory);
    for (unsigned t = 0; t < kMaxThreadsPerBlock; ++t) {
        mprotect(s.stacks + t * s.slot_bytes, page, PROT_NONE);  // stacks grow down
    }
    return true;
}

inline std::string thread_coords(unsigned t) {
    return coords(t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y));
}

// Runs every thread of the current block (blockIdx is set) to completion.
inline bool run_block(unsigned threads) {
    Scheduler& s = scheduler;
    const std::size_t page = s.slot_bytes - kStackBytes;
    for (unsigned t = 0; t < threads; ++t) {
        ucontext_t& c = s.contexts[t];
        getcontext(&c);
        c.uc_stack.ss_sp = s.stacks + t * s.slot_bytes + page;
        c.uc_stack.ss_size = kStackBytes;
        c.uc_link = &s.scheduler_context;
        makecontext(&c, fiber_main, 0);
        s.states[t] = Fiber::Runnable;
    }
#ifdef TINYGEN_CUDA_CHECK
    tg_check_block_begin(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z),
                         threads);
#endif
    for (;;) {
        for (unsigned k = 0; k < threads; ++k) {
            const unsigned t = s.reverse_order ? threads - 1 - k : k;
            if (s.states[t] != Fiber::Runnable) continue;
            threadIdx = {t % blockDim.x, (t / blockDim.x) % blockDim.y,
                         t / (blockDim.x * blockDim.y)};
            s.current = t;
#ifdef TINYGEN_CUDA_CHECK
            tg_check_thread(t);
#endif
            swapcontext(&s.scheduler_context, &s.contexts[t]);
            if (s.trapped) return false;
        }
        // Every fiber now waits at a barrier or has finished: open the barrier.
        unsigned first = threads;
        for (unsigned t = 0; t < threads; ++t) {
            if (s.states[t] != Fiber::AtBarrier) continue;
            if (first == threads) {
                first = t;
            } else if (s.barrier_lines[t] != s.barrier_lines[first] ||
                       std::strcmp(s.barrier_files[t], s.barrier_files[first]) != 0) {
                s.error = "divergent __syncthreads() in block " +
                          coords(blockIdx.x, blockIdx.y, blockIdx.z) + ": thread " +
                          thread_coords(first) + " waits at " + s.barrier_files[first] + ":" +
                          std::to_string(s.barrier_lines[first]) + " but thread " +
                          thread_coords(t) + " at " + s.barrier_files[t] + ":" +
                          std::to_string(s.barrier_lines[t]) +
                          " (a barrier must be reached by every thread of the block)";
                return false;
            }
            s.states[t] = Fiber::Runnable;
        }
        if (first == threads) return true;  // all finished
#ifdef TINYGEN_CUDA_CHECK
        tg_check_barrier_open();
#endif
    }
}

inline int run(const unsigned grid[3], const unsigned block[3], void (*body)(void*),
               void* context) {
    Scheduler& s = scheduler;
    std::lock_guard<std::mutex> lock(s.mutex);
    s.error.clear();
    s.trapped = false;
    const unsigned long long threads =
        static_cast<unsigned long long>(block[0]) * block[1] * block[2];
    if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0 || threads == 0) {
        s.error = "empty launch: grid " + coords(grid[0], grid[1], grid[2]) + ", block " +
                  coords(block[0], block[1], block[2]);
        return 1;
    }
    if (threads > kMaxThreadsPerBlock) {
        s.error = "block " + coords(block[0], block[1], block[2]) + " has " +
                  std::to_string(threads) + " threads; at most " +
                  std::to_string(kMaxThreadsPerBlock) + " are allowed";
        return 1;
    }
    if (!allocate_stacks()) return 1;
    s.body = body;
    s.body_context = context;
    gridDim = dim3(grid[0], grid[1], grid[2]);
    blockDim = dim3(block[0], block[1], block[2]);
    for (unsigned z = 0; z < grid[2]; ++z) {
        for (unsigned y = 0; y < grid[1]; ++y) {
            for (unsigned x = 0; x < grid[0]; ++x) {
                blockIdx = {x, y, z};
                if (!run_block(static_cast<unsigned>(threads))) return 1;
            }
        }
    }
    return 0;
}

// Calls `kernel` with its arguments unpacked from args[i] (each points at a value).
template <class... P, std::size_t... I>
inline void call_unpacked(void (*kernel)(P...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<P>*>(args[I])...);
}

template <class... P>
inline int launch(void (*kernel)(P...), const unsigned grid[3], const unsigned block[3],
                  void** args) {
    struct Call {
        void (*kernel)(P...);
        void** args;
    } call{kernel, args};
    auto body = [](void* context) {
        Call* c = static_cast<Call*>(context);
        call_unpacked(c->kernel, c->args, std::index_sequence_for<P...>{});
    };
    return run(grid, block, body, &call);
}

}  // namespace tg_emu
