// Fast WaveNet generation: one step of EVERY layer for one new sample, B sequences at once.
//
// What a step computes is tinygen/backend/reference/wavenet.py (read it first: the ring
// buffers of past layer inputs, the dilated conv as k mat-vecs, the gate, the residual
// and skip 1x1 convs, the two output layers).  Two launches do the whole step:
//   chain  (B blocks) block b runs sequence b's residual chain through all layers in
//          order, the layers separated by __syncthreads() (each layer needs the one
//          before: no grid-wide synchronisation exists to split it), and stores each
//          layer's gate output;
//   heads  (B x G blocks) the skip 1x1 convs -- as much work as the chain when S is large,
//          and independent of one another -- split over G blocks per sequence, each
//          summing a share of the layers; the last of them (a ticket per sequence)
//          adds the shares and runs the output layers.
// So the serial chain per sequence no longer carries the skip convs, and they run on G
// SMs per sequence instead of one.  The threads of a block share the output channels of
// each mat-vec.  Activations live in shared memory (in double, whatever T is); every sum
// is accumulated in double.
//
// Optionally (sample != 0) the heads' last block then draws the next code from softmax(logits /
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
// Workspaces: gates (B, L, R) and partial (B, G, S) in double, tickets (B) ints (zero
// before the heads launch; each sequence's last block resets its own).
//
// The entry points declare __launch_bounds__(256, 1): the grids are small (B or B x G
// blocks), so registers matter more than blocks per SM; with (256) alone ptxas capped
// them at 64 and spilled around the slow-path division calls.
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

// Where a layer's weights are in the packed array.
template <class T>
struct LayerWeights {
    const T* conv_t;
    const T* conv_b;
    const T* res_t;
    const T* res_b;
    const T* skip_t;
    const T* skip_b;
};

template <class T>
__device__ __forceinline__ LayerWeights<T> layer_weights(const T* params, int l, int R, int S,
                                                         int Q, int k) {
    const int R2 = 2 * R;
    const long long stride =
        (long long)k * R * R2 + R2 + (long long)R * R + R + (long long)R * S + S;
    LayerWeights<T> w;
    w.conv_t = params + (long long)Q * R + R + l * stride;  // past embed and embed_b
    w.conv_b = w.conv_t + (long long)k * R * R2;
    w.res_t = w.conv_b + R2;
    w.res_b = w.res_t + (long long)R * R;
    w.skip_t = w.res_b + R;
    w.skip_b = w.skip_t + (long long)R * S;
    return w;
}

// Phase 1, one block per sequence: the residual chain, layer after layer (each needs the
// previous one's output): ring write, taps, dilated conv, gate, residual 1x1 conv.  The
// gate outputs go to gates (B, L, R) in double for phase 2; the skip convolutions, which
// feed nothing back into the chain, are left to phase 2.
template <class T>
__device__ void chain(const T* __restrict__ params, const long long* __restrict__ dilations,
                      const long long* __restrict__ ring_offsets, T* __restrict__ ring,
                      const T* __restrict__ cond, const long long* __restrict__ previous,
                      double* __restrict__ gates, int n_layers, int R, int S, int Q, int k,
                      long long slots, long long t, int has_cond) {
    __shared__ double h[kMaxResidual];
    __shared__ double taps[kMaxKernelSize * kMaxResidual];
    __shared__ double z[2 * kMaxResidual];
    __shared__ double g[kMaxResidual];
    const int tid = threadIdx.x;
    const int nt = blockDim.x;
    const long long b = blockIdx.x;
    const int R2 = 2 * R;
    const T* embed = params;
    const T* embed_b = embed + (long long)Q * R;
    T* my_ring = ring + b * slots * R;

    const long long code = previous[b];  // -1: the all-zero start input
    for (int r = tid; r < R; r += nt) {
        h[r] = (double)embed_b[r] + (code >= 0 ? (double)embed[code * R + r] : 0.0);
    }
    for (int l = 0; l < n_layers; ++l) {
        const LayerWeights<T> w = layer_weights(params, l, R, S, Q, k);
        const long long d = dilations[l];
        const long long base = ring_offsets[l];
        const long long size = (k - 1) * d + 1;
        const long long position = t % size;  // one 64-bit modulo per layer, not per tap
        T* now = my_ring + (base + position) * R;
        for (int r = tid; r < R; r += nt) now[r] = (T)h[r];
        __syncthreads();
        // tap j multiplies the layer's input at t - (k-1-j) d (tap k-1: the one just written)
        for (int i = tid; i < k * R; i += nt) {
            const int j = i / R;
            const int r = i - j * R;
            long long slot = position - (k - 1 - j) * d;  // (k-1-j) d < size
            if (slot < 0) slot += size;
            taps[i] = (double)my_ring[(base + slot) * R + r];
        }
        __syncthreads();
        for (int o = tid; o < R2; o += nt) {
            const double c = has_cond ? (double)cond[(b * n_layers + l) * R2 + o] : 0.0;
            z[o] = (double)w.conv_b[o] + c + column_dot(w.conv_t, taps, k * R, R2, o);
        }
        __syncthreads();
        for (int r = tid; r < R; r += nt) {
            g[r] = tanh(z[r]) * tg_sigmoid(z[R + r]);
            gates[(b * n_layers + l) * R + r] = g[r];
        }
        __syncthreads();
        for (int o = tid; o < R; o += nt) {
            h[o] += (double)w.res_b[o] + column_dot(w.res_t, g, R, R, o);
        }
        __syncthreads();
    }
}

// Phase 2, a (B, G) grid: block (b, s) adds the skip outputs of its share of the layers
// (layers s, s + G, ...) for sequence b, all S channels, into partial (B, G, S); the
// last of the sequence's G blocks (ticket b) adds the G partials in order and runs the
// output layers (relu, 1x1 conv, relu, 1x1 conv) and the optional draw.
template <class T>
__device__ void heads(const T* __restrict__ params, const double* __restrict__ gates,
                      double* __restrict__ partial, int* __restrict__ tickets,
                      T* __restrict__ logits, const double* __restrict__ uniforms,
                      long long* __restrict__ sampled, int n_layers, int R, int S, int Q,
                      int k, double temperature, int sample) {
    __shared__ double g[kMaxResidual];
    __shared__ double skip[kMaxSkip];
    __shared__ double y[kMaxSkip];
    __shared__ double out[kMaxClasses];
    __shared__ double scratch[kMaxThreads];
    const int tid = threadIdx.x;
    const int nt = blockDim.x;
    const long long b = blockIdx.x;
    const long long share = blockIdx.y;
    const long long shares = gridDim.y;

    for (int s = tid; s < S; s += nt) skip[s] = 0.0;
    for (long long l = share; l < n_layers; l += shares) {
        const LayerWeights<T> w = layer_weights(params, (int)l, R, S, Q, k);
        for (int r = tid; r < R; r += nt) g[r] = gates[(b * n_layers + l) * R + r];
        __syncthreads();
        for (int s = tid; s < S; s += nt) {
            skip[s] += (double)w.skip_b[s] + column_dot(w.skip_t, g, R, S, s);
        }
        __syncthreads();  // g is rewritten next
    }
    for (int s = tid; s < S; s += nt) partial[(b * shares + share) * S + s] = skip[s];
    if (!tg_is_last_block(tickets + b, (int)shares)) return;

    const T* out1_t = params + (long long)Q * R + R +
                      (long long)n_layers * ((long long)k * R * 2 * R + 2 * R +
                                             (long long)R * R + R + (long long)R * S + S);
    const T* out1_b = out1_t + (long long)S * S;
    const T* out2_t = out1_b + S;
    const T* out2_b = out2_t + (long long)S * Q;
    for (int s = tid; s < S; s += nt) {
        double total = 0.0;
        for (long long j = 0; j < shares; ++j) total += partial[(b * shares + j) * S + s];
        skip[s] = max(total, 0.0);
    }
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
TG_ENTRY_F32_F64(wavenet_chain, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* __restrict__ params, const long long* __restrict__ dilations,
     const long long* __restrict__ ring_offsets, T* __restrict__ ring,
     const T* __restrict__ cond, const long long* __restrict__ previous,
     double* __restrict__ gates, int n_layers, int residual, int skip, int classes,
     int kernel_size, long long slots, long long t, int has_cond),
    wavenet::chain(params, dilations, ring_offsets, ring, cond, previous, gates, n_layers,
                   residual, skip, classes, kernel_size, slots, t, has_cond))

TG_ENTRY_F32_F64(wavenet_heads, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* __restrict__ params, const double* __restrict__ gates,
     double* __restrict__ partial, int* __restrict__ tickets, T* __restrict__ logits,
     const double* __restrict__ uniforms, long long* __restrict__ sampled, int n_layers,
     int residual, int skip, int classes, int kernel_size, double temperature, int sample),
    wavenet::heads(params, gates, partial, tickets, logits, uniforms, sampled, n_layers,
                   residual, skip, classes, kernel_size, temperature, sample))
