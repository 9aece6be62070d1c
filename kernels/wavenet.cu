// Fast WaveNet generation: one step of EVERY layer for one new sample, B sequences at once.
//
// What a step computes is tinygen/backend/reference/wavenet.py (read it first: the ring
// buffers of past layer inputs, the dilated conv as k mat-vecs, the gate, the residual
// and skip 1x1 convs, the two output layers).  One launch does the whole step: block b
// runs sequence b through all layers in order, the layers separated by __syncthreads(),
// so no grid-wide synchronisation is needed; the block's threads share the output
// channels of each mat-vec.  The activations of the sequence live in shared memory (in
// double, whatever T is); every sum is accumulated in double.
//
// Optionally (sample != 0) the block then draws the next code from softmax(logits /
// temperature) with the given uniform, by inverting the CDF exactly as
// tinygen.models.wavenet's _sample does (cumulative sum in index order, first index
// whose CDF exceeds u * total), so the next step can be launched with no round trip
// to the host.
//
// Packed weights (tinygen/backend/cuda_kernels/wavenet.py: pack), one T array.  Every
// mat-vec weight is stored TRANSPOSED, input-major: w_t[i * n_out + o] = W[o, i], so
// that the threads of a warp, one output channel each, read consecutive addresses.
//     embed     (Q, R)          row c: the embedding of code c (a row lookup)
//     embed_b   (R)
//     layer l, each `layer_stride` = k*R*2R + 2R + R*R + R + R*S + S values:
//       conv_t  (k*R, 2R)       conv_t[(j*R + r) * 2R + o] = conv_w[l, j, o, r]
//       conv_b  (2R)
//       res_t   (R, R)   res_b  (R)
//       skip_t  (R, S)   skip_b (S)
//     out1_t    (S, S)   out1_b (S)
//     out2_t    (S, Q)   out2_b (Q)
// The ring buffers are the reference's: ring (B, slots, R) in T; layer l's input at
// time t lives in slot ring_offsets[l] + t % ((k-1) * dilations[l] + 1).  previous (B):
// the codes x_{t-1}, -1 at t = 0 (the all-zero start input); cond (B, L, 2R), read only
// when has_cond: each layer's conditioning term of the gate; logits (B, Q) in T.
#include "common.cuh"

namespace wavenet {

// Upper limits of the channel counts (static shared memory); pack() checks them.
constexpr int kMaxResidual = 256;
constexpr int kMaxSkip = 512;
constexpr int kMaxClasses = 1024;
constexpr int kMaxKernelSize = 4;
constexpr int kMaxThreads = 256;  // threads per block at most (Python launches <= this)

// sum_i w_t[i * n_out + o] * x[i]: output o of a transposed (input-major) mat-vec.
template <class T>
__device__ __forceinline__ double column_dot(const T* __restrict__ w_t, const double* x,
                                             int n_in, int n_out, int o) {
    double acc = 0.0;
    for (int i = 0; i < n_in; ++i) acc += (double)w_t[(long long)i * n_out + o] * x[i];
    return acc;
}

// The largest value over the block (every thread calls it; `scratch` as tg_block_sum's).
__device__ double block_max(double value, double* scratch) {
    const unsigned count = blockDim.x;
    const unsigned tid = threadIdx.x;
    scratch[tid] = value;
    __syncthreads();
    unsigned half = 1;
    while (half < count) half <<= 1;
    for (half >>= 1; half > 0; half >>= 1) {
        if (tid < half && tid + half < count) scratch[tid] = max(scratch[tid], scratch[tid + half]);
        __syncthreads();
    }
    const double result = scratch[0];
    __syncthreads();
    return result;
}

// Inverse-CDF draw from softmax(out[:Q] / temperature) with the uniform u; `out` is
// overwritten (scaled logits, then the CDF).  Returns the code in every thread.
__device__ long long draw(double* out, double* scratch, int Q, double temperature, double u) {
    const int tid = threadIdx.x;
    const int nt = blockDim.x;
    double local_max = -tg_infinity<double>();
    for (int q = tid; q < Q; q += nt) {
        out[q] /= temperature;
        local_max = max(local_max, out[q]);
    }
    const double top = block_max(local_max, scratch);
    for (int q = tid; q < Q; q += nt) out[q] = exp(out[q] - top);
    __syncthreads();
    if (tid == 0) {  // the cumulative sum in index order, as numpy's cumsum
        for (int q = 1; q < Q; ++q) out[q] += out[q - 1];
    }
    __syncthreads();
    // searchsorted(cdf, u * total, side='right') = how many CDF values are <= u * total
    const double target = u * out[Q - 1];
    double below = 0.0;
    for (int q = tid; q < Q; q += nt) below += out[q] <= target ? 1.0 : 0.0;
    const long long index = (long long)tg_block_sum(below, scratch);
    return index < Q - 1 ? index : Q - 1;
}

template <class T>
__device__ void step(const T* __restrict__ params, const long long* __restrict__ dilations,
                     const long long* __restrict__ ring_offsets, T* __restrict__ ring,
                     const T* __restrict__ cond, const long long* __restrict__ previous,
                     T* __restrict__ logits, const double* __restrict__ uniforms,
                     long long* __restrict__ sampled, int n_layers, int R, int S, int Q, int k,
                     long long slots, long long t, int has_cond, double temperature,
                     int sample) {
    __shared__ double h[kMaxResidual];
    __shared__ double taps[kMaxKernelSize * kMaxResidual];
    __shared__ double z[2 * kMaxResidual];
    __shared__ double g[kMaxResidual];
    __shared__ double skip[kMaxSkip];
    __shared__ double y[kMaxSkip];
    __shared__ double out[kMaxClasses];
    __shared__ double scratch[kMaxThreads];
    const int tid = threadIdx.x;
    const int nt = blockDim.x;
    const long long b = blockIdx.x;
    const int R2 = 2 * R;

    const T* embed = params;
    const T* embed_b = embed + (long long)Q * R;
    const T* layers = embed_b + R;
    const long long layer_stride =
        (long long)k * R * R2 + R2 + (long long)R * R + R + (long long)R * S + S;
    const T* out1_t = layers + n_layers * layer_stride;
    const T* out1_b = out1_t + (long long)S * S;
    const T* out2_t = out1_b + S;
    const T* out2_b = out2_t + (long long)S * Q;
    T* my_ring = ring + b * slots * R;

    const long long code = previous[b];  // -1: the all-zero start input
    for (int r = tid; r < R; r += nt) {
        h[r] = (double)embed_b[r] + (code >= 0 ? (double)embed[code * R + r] : 0.0);
    }
    for (int s = tid; s < S; s += nt) skip[s] = 0.0;

    for (int l = 0; l < n_layers; ++l) {
        const long long d = dilations[l];
        const long long base = ring_offsets[l];
        const long long size = (k - 1) * d + 1;
        const T* conv_t = layers + l * layer_stride;
        const T* conv_b = conv_t + (long long)k * R * R2;
        const T* res_t = conv_b + R2;
        const T* res_b = res_t + (long long)R * R;
        const T* skip_t = res_b + R;
        const T* skip_b = skip_t + (long long)R * S;

        T* now = my_ring + (base + t % size) * R;
        for (int r = tid; r < R; r += nt) now[r] = (T)h[r];
        __syncthreads();
        // tap j multiplies the layer's input at t - (k-1-j) d (tap k-1: the one just written)
        for (int i = tid; i < k * R; i += nt) {
            const int j = i / R;
            const int r = i - j * R;
            long long slot = (t - (k - 1 - j) * d) % size;
            if (slot < 0) slot += size;
            taps[i] = (double)my_ring[(base + slot) * R + r];
        }
        __syncthreads();
        for (int o = tid; o < R2; o += nt) {
            const double c = has_cond ? (double)cond[(b * n_layers + l) * R2 + o] : 0.0;
            z[o] = (double)conv_b[o] + c + column_dot(conv_t, taps, k * R, R2, o);
        }
        __syncthreads();
        for (int r = tid; r < R; r += nt) g[r] = tanh(z[r]) * tg_sigmoid(z[R + r]);
        __syncthreads();
        // residual and skip outputs side by side: R + S independent dot products
        for (int o = tid; o < R + S; o += nt) {
            if (o < R) {
                h[o] += (double)res_b[o] + column_dot(res_t, g, R, R, o);
            } else {
                skip[o - R] += (double)skip_b[o - R] + column_dot(skip_t, g, R, S, o - R);
            }
        }
        __syncthreads();
    }

    for (int s = tid; s < S; s += nt) skip[s] = max(skip[s], 0.0);
    __syncthreads();
    for (int s = tid; s < S; s += nt) {
        y[s] = max((double)out1_b[s] + column_dot(out1_t, skip, S, S, s), 0.0);
    }
    __syncthreads();
    for (int q = tid; q < Q; q += nt) {
        const T value = (T)((double)out2_b[q] + column_dot(out2_t, y, S, Q, q));
        logits[b * Q + q] = value;
        out[q] = (double)value;  // the draw sees the logits as returned
    }
    if (!sample) return;
    __syncthreads();
    const long long drawn = draw(out, scratch, Q, temperature, uniforms[b]);
    if (tid == 0) sampled[b] = drawn;
}

}  // namespace wavenet

// --- entry points -----------------------------------------------------------------------------
extern "C" __global__ void __launch_bounds__(256) wavenet_step_f32(const float* __restrict__ params,
                                            const long long* __restrict__ dilations,
                                            const long long* __restrict__ ring_offsets,
                                            float* __restrict__ ring,
                                            const float* __restrict__ cond,
                                            const long long* __restrict__ previous,
                                            float* __restrict__ logits,
                                            const double* __restrict__ uniforms,
                                            long long* __restrict__ sampled,
                                            int n_layers,
                                            int residual,
                                            int skip,
                                            int classes,
                                            int kernel_size,
                                            long long slots,
                                            long long t,
                                            int has_cond,
                                            double temperature,
                                            int sample) {
    wavenet::step(params, dilations, ring_offsets, ring, cond, previous, logits, uniforms,
                  sampled, n_layers, residual, skip, classes, kernel_size, slots, t, has_cond,
                  temperature, sample);
}

extern "C" __global__ void __launch_bounds__(256) wavenet_step_f64(const double* __restrict__ params,
                                            const long long* __restrict__ dilations,
                                            const long long* __restrict__ ring_offsets,
                                            double* __restrict__ ring,
                                            const double* __restrict__ cond,
                                            const long long* __restrict__ previous,
                                            double* __restrict__ logits,
                                            const double* __restrict__ uniforms,
                                            long long* __restrict__ sampled,
                                            int n_layers,
                                            int residual,
                                            int skip,
                                            int classes,
                                            int kernel_size,
                                            long long slots,
                                            long long t,
                                            int has_cond,
                                            double temperature,
                                            int sample) {
    wavenet::step(params, dilations, ring_offsets, ring, cond, previous, logits, uniforms,
                  sampled, n_layers, residual, skip, classes, kernel_size, slots, t, has_cond,
                  temperature, sample);
}
