// The gated activation tanh(a) * sigmoid(b) of PixelCNN and WaveNet, fused.
//
// Layout (as tinygen.backend.numba_kernels.pooling.gated_forward/gated_backward):
// x is a contiguous (P, 2, Q) array, a = x[:, 0, :] and b = x[:, 1, :]; the forward
// output and the upstream gradient g are (P, Q); the backward output is (P, 2, Q).
// Element i of a (P, Q) array is (p, q) = (i / Q, i % Q); a sits at p * 2Q + q and b
// Q elements later.  One thread per (p, q) in a grid-stride loop.
#include "common.cuh"

namespace gated_activation {

template <class T>
__device__ void forward(const T* __restrict__ x, T* __restrict__ out, long long p_count,
                        long long q_count) {
    const long long count = p_count * q_count;
    for (long long i = tg_thread_index(); i < count; i += tg_grid_stride()) {
        const long long p = i / q_count;
        const long long a_at = i + p * q_count;  // p * 2Q + q
        out[i] = tanh(x[a_at]) * tg_sigmoid(x[a_at + q_count]);
    }
}

// d/da = g (1 - tanh(a)^2) sigmoid(b),  d/db = g tanh(a) sigmoid(b) (1 - sigmoid(b)),
// both derivative factors in their cancellation-free forms (common.cuh).
template <class T>
__device__ void backward(const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx,
                         long long p_count, long long q_count) {
    const long long count = p_count * q_count;
    for (long long i = tg_thread_index(); i < count; i += tg_grid_stride()) {
        const long long p = i / q_count;
        const long long a_at = i + p * q_count;
        const T a = x[a_at];
        const T b = x[a_at + q_count];
        dx[a_at] = g[i] * tg_tanh_derivative(a) * tg_sigmoid(b);
        dx[a_at + q_count] = g[i] * tanh(a) * tg_sigmoid_derivative(b);
    }
}

}  // namespace gated_activation

TG_ENTRY_F32_F64(gated_activation_forward, TG_NO_LAUNCH_BOUNDS, TG_NO_LAUNCH_BOUNDS,
    (const T* __restrict__ x, T* __restrict__ out, long long p_count, long long q_count),
    gated_activation::forward(x, out, p_count, q_count))

TG_ENTRY_F32_F64(gated_activation_backward, TG_NO_LAUNCH_BOUNDS, TG_NO_LAUNCH_BOUNDS,
    (const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx, long long p_count,
     long long q_count),
    gated_activation::backward(g, x, dx, p_count, q_count))
