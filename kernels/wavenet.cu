// Fast WaveNet generation: one step of EVERY layer for one new sample, B sequences at once.
//
// What a step computes is tinygen/backend/reference/wavenet.py (read it first: the ring
// buffers of past layer inputs, the dilated conv as k mat-vecs, the gate, the residual
// and skip 1x1 convs, the two output layers).  L + 1 launches do the whole step:
//   layer l  (B x P blocks, one launch per layer, l = 0 .. L-1) block (b, p) computes
//            the gate outputs of its share p of the R gate channels for sequence b: it
//            reads the layer's input h_l (see below) and its ring taps, runs its
//            columns of the dilated conv (2 x its channels of the 2R outputs) and the
//            gate, and stores them in gates (B, L, R);
//   heads    (B x G blocks) the skip 1x1 convs -- as much work as the dilated convs
//            when S is large, and independent of one another -- split over G blocks
//            per sequence, each summing a share of the layers; the last of them (a
//            ticket per sequence) adds the shares and runs the output layers.
// The layers depend on one another in order; blocks cannot wait for one another inside
// a launch (nothing guarantees they run at the same time), so each layer is its own
// launch and the launch boundary is the only grid-wide ordering.  Within a launch no
// block reads what another block of the same launch writes: race-free by construction.
//   h_l      = embed(previous) for l = 0, else h_{l-1} + res_b + res_w g_{l-1}: every
//            block of launch l computes it from hidden (h_{l-1}) and gates (g_{l-1}),
//            both written by launch l-1 (the residual 1x1 conv is repeated by each of
//            the P blocks: R*R multiply-adds, against the 2kR*R/P of its conv share);
//            block p = 0 stores h_l in hidden for launch l+1 (two buffers, l % 2: launch
//            l reads buffer (l-1) % 2 and writes buffer l % 2) and in the layer's ring;
//   taps     tap k-1 is h_l itself (as T, as the ring stores it); taps 0 .. k-2 are ring
//            slots of earlier steps, never the one block 0 writes now.
// Why more than one block per sequence: a step reads every weight once per sequence,
// (2k + 1) R^2 values per layer from L2; a block per sequence (the design before this
// one) streams them through one SM, P blocks through P SMs, each reading R^2 + 2kR^2/P.
// The price is L + 1 launches instead of two (a launch gap each on the GPU; the host
// checks the layer launches' arguments once, launch.launch_each).
// The threads of a block share each mat-vec's outputs and, when there are fewer outputs
// than threads, its inputs (block_matvec).  Activations live in shared memory (in double,
// whatever T is); every sum is accumulated in double.
//
// A step's time t is a launch argument, or (t < 0) read from t_device[0]: the CUDA graph
// of tinygen/backend/cuda_kernels/wavenet.py (generate with graph=True) replays one
// step's launches with the same arguments every step, and its last node, wavenet_advance,
// adds one to t_device.
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
// Workspaces: hidden (2, B, R), gates (B, L, R) and partial (B, G, S) in double,
// tickets (B) ints (zero before the heads launch; each sequence's last block resets its
// own).
//
// The entry points declare __launch_bounds__(256, 1): the grids are small (B x P or
// B x G blocks), so registers matter more than blocks per SM; with (256) alone ptxas
// capped them at 64 and spilled around the slow-path division calls.
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

// out[i] = sum_j w_t[j * n_cols + column(i)] x[j] for the n_out columns column(i) = c0 + i
// (i < split), c1 + i - split (i >= split) of a transposed (input-major) mat-vec, with
// the block's threads: when n_out < blockDim.x, nt / n_out threads share each output,
// each a strided share of the inputs, and their partial sums are added in a fixed
// order.  Every thread of the block calls it (barriers inside); `scratch` holds
// blockDim.x doubles, `out` n_out (neither may alias x).
template <class T>
__device__ void block_matvec(const T* __restrict__ w_t, const double* x, int n_in, int n_cols,
                             int c0, int c1, int split, int n_out, double* out,
                             double* scratch) {
    const int tid = threadIdx.x;
    const int nt = blockDim.x;
    if (n_out >= nt) {  // one thread per output: nothing to share
        for (int i = tid; i < n_out; i += nt) {
            out[i] = column_dot(w_t, x, n_in, n_cols, i < split ? c0 + i : c1 + i - split);
        }
        __syncthreads();
        return;
    }
    const int groups = nt / n_out;  // threads per output
    const int i = tid % n_out;
    const int group = tid / n_out;
    if (group < groups) {
        const T* w = w_t + (long long)group * n_cols + (i < split ? c0 + i : c1 + i - split);
        const long long step = (long long)groups * n_cols;  // a pointer step, no multiply
        double acc = 0.0;
        for (int j = group; j < n_in; j += groups, w += step) acc += (double)*w * x[j];
        scratch[group * n_out + i] = acc;
    }
    __syncthreads();
    if (tid < n_out) {
        double sum = 0.0;
        for (int s = 0; s < groups; ++s) sum += scratch[s * n_out + tid];
        out[tid] = sum;
    }
    __syncthreads();  // out is complete, and scratch free, for every thread
}

// One layer for a (B, P) grid (the file's header says who reads and writes what): block
// (b, p) of launch l makes h_l, writes it to hidden and the ring (p = 0 only), gathers
// the taps and computes the gate outputs of channels [p * chunk, (p + 1) * chunk) of R.
template <class T>
__device__ void layer(const T* __restrict__ params, const long long* __restrict__ dilations,
                      const long long* __restrict__ ring_offsets, T* __restrict__ ring,
                      const T* __restrict__ cond, const long long* __restrict__ previous,
                      double* __restrict__ hidden, double* __restrict__ gates, int n_layers,
                      int R, int S, int Q, int k, long long slots, long long t,
                      const long long* __restrict__ t_device, int has_cond, int l) {
    __shared__ double h[kMaxResidual];
    __shared__ double g[kMaxResidual];
    __shared__ double taps[kMaxKernelSize * kMaxResidual];
    __shared__ double z[2 * kMaxResidual];
    __shared__ double scratch[kMaxThreads];
    const int tid = threadIdx.x;
    const int nt = blockDim.x;
    const long long b = blockIdx.x;
    const long long batch = gridDim.x;
    const int p = blockIdx.y;
    const int R2 = 2 * R;

    // h_l: the embedding of the previous code, or h_{l-1} plus layer l-1's residual conv
    if (l == 0) {
        const T* embed = params;
        const T* embed_b = embed + (long long)Q * R;
        const long long code = previous[b];  // -1: the all-zero start input
        for (int r = tid; r < R; r += nt) {
            h[r] = (double)embed_b[r] + (code >= 0 ? (double)embed[code * R + r] : 0.0);
        }
    } else {
        const LayerWeights<T> before = layer_weights(params, l - 1, R, S, Q, k);
        const double* h_before = hidden + ((l - 1) % 2 * batch + b) * R;
        for (int r = tid; r < R; r += nt) g[r] = gates[(b * n_layers + l - 1) * R + r];
        __syncthreads();
        block_matvec(before.res_t, g, R, R, 0, 0, R, R, z, scratch);
        for (int r = tid; r < R; r += nt) h[r] = h_before[r] + ((double)before.res_b[r] + z[r]);
    }
    // t < 0: the step's time is in device memory (a replayed CUDA graph, whose launch
    // arguments are the same every step; wavenet_advance moves it on)
    if (t < 0) t = t_device[0];
    const long long d = dilations[l];
    const long long base = ring_offsets[l];
    const long long size = (k - 1) * d + 1;
    const long long position = t % size;
    T* my_ring = ring + b * slots * R;
    if (p == 0) {  // the one writer of h_l, for launch l + 1 and for later steps' taps
        T* now = my_ring + (base + position) * R;
        for (int r = tid; r < R; r += nt) now[r] = (T)h[r];
        if (l + 1 < n_layers) {
            for (int r = tid; r < R; r += nt) hidden[(l % 2 * batch + b) * R + r] = h[r];
        }
    }
    __syncthreads();
    // tap j multiplies the layer's input at t - (k-1-j) d: h_l for j = k-1, else the ring
    // slot position - (k-1-j) d, which is never `position` ((k-1-j) d lies in [1, size-1])
    for (int i = tid; i < k * R; i += nt) {
        const int j = i / R;
        const int r = i - j * R;
        if (j == k - 1) {
            taps[i] = (double)(T)h[r];  // what the ring holds: the input rounded to T
        } else {
            long long slot = position - (k - 1 - j) * d;
            if (slot < 0) slot += size;
            taps[i] = (double)my_ring[(base + slot) * R + r];
        }
    }
    __syncthreads();

    // this block's gate channels: conv columns r (tanh half) and R + r (sigmoid half)
    const int chunk = (R + (int)gridDim.y - 1) / (int)gridDim.y;
    const int first = p * chunk;
    const int count = min(R, first + chunk) - first;
    if (count <= 0) return;  // block-uniform: no barrier follows
    const LayerWeights<T> w = layer_weights(params, l, R, S, Q, k);
    block_matvec(w.conv_t, taps, k * R, R2, first, R + first, count, 2 * count, z, scratch);
    for (int i = tid; i < count; i += nt) {
        const int r = first + i;
        const T* c = cond + (b * n_layers + l) * R2;
        const double za = (double)w.conv_b[r] + (has_cond ? (double)c[r] : 0.0) + z[i];
        const double zb = (double)w.conv_b[R + r] + (has_cond ? (double)c[R + r] : 0.0) +
                          z[count + i];
        gates[(b * n_layers + l) * R + r] = tanh(za) * tg_sigmoid(zb);
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
TG_ENTRY_F32_F64(wavenet_layer, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* __restrict__ params, const long long* __restrict__ dilations,
     const long long* __restrict__ ring_offsets, T* __restrict__ ring,
     const T* __restrict__ cond, const long long* __restrict__ previous,
     double* __restrict__ hidden, double* __restrict__ gates, int n_layers, int residual,
     int skip, int classes, int kernel_size, long long slots, long long t,
     const long long* __restrict__ t_device, int has_cond, int layer),
    wavenet::layer(params, dilations, ring_offsets, ring, cond, previous, hidden, gates,
                   n_layers, residual, skip, classes, kernel_size, slots, t, t_device,
                   has_cond, layer))

TG_ENTRY_F32_F64(wavenet_heads, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* __restrict__ params, const double* __restrict__ gates,
     double* __restrict__ partial, int* __restrict__ tickets, T* __restrict__ logits,
     const double* __restrict__ uniforms, long long* __restrict__ sampled, int n_layers,
     int residual, int skip, int classes, int kernel_size, double temperature, int sample),
    wavenet::heads(params, gates, partial, tickets, logits, uniforms, sampled, n_layers,
                   residual, skip, classes, kernel_size, temperature, sample))

// The end of a replayed step (tinygen/backend/cuda_kernels/wavenet.py, StepGraph): the
// time in device memory moves on by one.  One thread; launch (1, 1) x (1, 1).
TG_ENTRY_F32_F64(wavenet_advance, __launch_bounds__(32), __launch_bounds__(32),
    (long long* t_device),
    if (threadIdx.x == 0 && blockIdx.x == 0) t_device[0] += 1)
