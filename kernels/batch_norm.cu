// Batch normalisation: per-channel statistics, normalise-and-affine, and the backward pass.
//
// Layout (as tinygen.backend.reference.batch_norm, which has the maths): the input is a
// contiguous (N, C, L) array; channel c's M = N * L values are element m = i * L + k at
// x[i * C * L + c * L + k].  Per-channel vectors (mean, scale, sums, ...) are float64
// (C,) arrays whatever the input's type, and every sum is accumulated in double.
//
// Vector loads: with `vector` = V > 1 (16 bytes: 4 floats or 2 doubles; Python passes it
// when L % V == 0 and the arrays are 16-byte aligned) every access moves V consecutive
// values of one row (one channel) with one 16-byte load or store; with V = 1, scalars.
//
// Reductions (train statistics, backward sums) run on a (C, S) grid: block (c, s) reduces
// chunk s of channel c (`chunk` consecutive values m, a multiple of V; S chosen in Python
// so that the GPU has enough blocks when C is small).  The statistics are ONE pass over x:
// each thread keeps (count, mean, M2) by Welford's update, a V-vector at a time (Chan et
// al.'s merge of the vector's own mean and M2: one reciprocal per vector); the threads'
// triples merge in a shared-memory tree (Chan again), and the block writes its chunk's
// (mean, M2).  The LAST block of the channel (a per-channel atomic ticket, common.cuh's
// tg_is_last_block) merges the S partials in a tree as well: its threads each merge a
// strided share in order, then the block tree.  The order of every merge is fixed, so
// results do not depend on which block ran when, and a reduction is one launch.  No
// sum(x^2) - sum(x)^2 cancellation anywhere.  The finalising thread also writes the
// per-channel coefficients of the normalisation, scale = weight * inv_std and
// shift = bias, so the training forward is two launches: statistics, then
// y = (x - mean) * scale + shift (the mean subtracted first, not folded into the shift:
// float64 stays exact to its last bits when |mean| >> std).
//
// Elementwise kernels (normalise, input gradient) run a grid-stride loop over V-vectors of
// the flat index and track (channel, position in row) incrementally: no division per
// element.  The input gradient's per-channel coefficients are recomputed only when a
// thread's channel changes, with 1/M from the host: no division at all.
#include "common.cuh"

namespace batch_norm {

// Threads per block at most (the size of the scratch arrays; the entry points'
// __launch_bounds__): any block size up to this works.
constexpr int kMaxThreads = 256;

// --- V-vector loads and stores --------------------------------------------------------------
template <class T, int V> struct Vector;
template <> struct Vector<float, 4> { using type = float4; };
template <> struct Vector<double, 2> { using type = double2; };

// out[0..V) = p[0..V) as doubles; p is 16-byte aligned when V > 1.
template <class T, int V>
__device__ __forceinline__ void load(const T* __restrict__ p, double (&out)[V]) {
    if constexpr (V == 1) {
        out[0] = (double)p[0];
    } else {
        using Packed = typename Vector<T, V>::type;
        const Packed v = *reinterpret_cast<const Packed*>(p);
        out[0] = (double)v.x;
        out[1] = (double)v.y;
        if constexpr (V == 4) {
            out[2] = (double)v.z;
            out[3] = (double)v.w;
        }
    }
}

template <class T, int V>
__device__ __forceinline__ void store(T* __restrict__ p, const double (&in)[V]) {
    if constexpr (V == 1) {
        p[0] = (T)in[0];
    } else {
        typename Vector<T, V>::type v;
        v.x = (T)in[0];
        v.y = (T)in[1];
        if constexpr (V == 4) {
            v.z = (T)in[2];
            v.w = (T)in[3];
        }
        *reinterpret_cast<typename Vector<T, V>::type*>(p) = v;
    }
}

// --- the walk over one chunk of one channel ----------------------------------------------------
// Calls visit(offset) for this thread's V-vectors among the values m in [begin, end) of one
// channel (m = begin + V * threadIdx.x, stepping V * blockDim.x; begin, end and length are
// multiples of V), where `offset` is m's position relative to the channel's first value:
// (m / length) * row_stride + m % length.
template <int V, class Visit>
__device__ void for_chunk(long long begin, long long end, long long length,
                          long long row_stride, Visit visit) {
    long long m = begin + (long long)V * threadIdx.x;
    if (m >= end) return;
    long long row = m / length;
    long long k = m - row * length;
    const long long step = (long long)V * blockDim.x;
    const long long step_rows = step / length;
    const long long step_k = step - step_rows * length;
    for (; m < end; m += step) {
        visit(row * row_stride + k);
        row += step_rows;
        k += step_k;
        if (k >= length) {
            k -= length;
            ++row;
        }
    }
}

// Number of values in chunk s of a channel of `count` values.
__device__ __forceinline__ long long chunk_size(long long s, long long chunk, long long count) {
    return min(chunk, count - s * chunk);
}

// True in every thread of the block that must finalise channel c: the only block when
// there is one chunk, else the last of the channel's blocks to get here.  Every thread
// of the block calls it, after its partial results are written.
__device__ __forceinline__ bool last_block_of_channel(int* tickets, long long c) {
    return gridDim.y == 1 || tg_is_last_block(tickets + c, (int)gridDim.y);
}

// --- Welford / Chan ------------------------------------------------------------------------------
// (count, mean, M2) of some values; M2 = sum of squared deviations from the mean.
struct Moments {
    double count, mean, m2;
};

// Chan et al.'s merge: the moments of the union of a's and b's values.
__device__ __forceinline__ Moments merge(Moments a, Moments b) {
    const double count = a.count + b.count;
    if (b.count == 0.0) return a;
    if (a.count == 0.0) return b;
    const double share = b.count / count;
    const double delta = b.mean - a.mean;
    return {count, a.mean + delta * share, a.m2 + b.m2 + delta * delta * a.count * share};
}

// The moments of the whole block, in thread 0 (every thread calls it): a shared-memory tree
// of Chan merges in a fixed order.
__device__ Moments block_moments(Moments mine) {
    __shared__ double counts[kMaxThreads];
    __shared__ double means[kMaxThreads];
    __shared__ double m2s[kMaxThreads];
    const unsigned tid = threadIdx.x;
    counts[tid] = mine.count;
    means[tid] = mine.mean;
    m2s[tid] = mine.m2;
    __syncthreads();
    unsigned half = 1;
    while (half < blockDim.x) half <<= 1;
    for (half >>= 1; half > 0; half >>= 1) {
        if (tid < half && tid + half < blockDim.x) {
            const Moments merged = merge({counts[tid], means[tid], m2s[tid]},
                                         {counts[tid + half], means[tid + half], m2s[tid + half]});
            counts[tid] = merged.count;
            means[tid] = merged.mean;
            m2s[tid] = merged.m2;
        }
        __syncthreads();
    }
    const Moments total{counts[0], means[0], m2s[0]};
    __syncthreads();  // the arrays are free again when this returns
    return total;
}

// --- training statistics ----------------------------------------------------------------
// mean, biased var, inv_std = 1 / sqrt(var + eps), scale = weight * inv_std and
// shift = bias of every channel (weight 1 and bias 0 when absent); when
// update_running, also running = (1 - momentum) * running + momentum * batch, with the
// batch's unbiased variance var * M / (M - 1) (as PyTorch), in the running arrays' type T.
constexpr int kUpdateRunning = 1, kHasWeight = 2, kHasBias = 4;

template <class T, int V>
__device__ void train_stats(const T* __restrict__ x, const T* __restrict__ weight,
                            const T* __restrict__ bias, double* __restrict__ partial_mean,
                            double* __restrict__ partial_m2, int* __restrict__ tickets,
                            double* __restrict__ mean, double* __restrict__ var,
                            double* __restrict__ inv_std, double* __restrict__ scale,
                            double* __restrict__ shift, T* __restrict__ running_mean,
                            T* __restrict__ running_var, long long n, long long channels,
                            long long length, long long chunk, double eps, double momentum,
                            int flags) {
    const long long c = blockIdx.x;
    const long long s = blockIdx.y;
    const long long splits = gridDim.y;
    const long long count = n * length;
    const long long begin = s * chunk;
    const long long end = begin + chunk_size(s, chunk, count);
    const T* xc = x + c * length;

    Moments mine{0.0, 0.0, 0.0};
    for_chunk<V>(begin, end, length, channels * length, [&](long long at) {
        double v[V];
        load<T, V>(xc + at, v);
        double sum = 0.0;
        for (int j = 0; j < V; ++j) sum += v[j];
        const double vmean = sum * (1.0 / V);
        double vm2 = 0.0;
        for (int j = 0; j < V; ++j) vm2 += (v[j] - vmean) * (v[j] - vmean);
        mine = merge(mine, {(double)V, vmean, vm2});
    });
    const Moments chunk_moments = block_moments(mine);
    if (threadIdx.x == 0) {
        partial_mean[c * splits + s] = chunk_moments.mean;
        partial_m2[c * splits + s] = chunk_moments.m2;
    }
    if (!last_block_of_channel(tickets, c)) return;

    // The last block: thread t merges partials t, t + blockDim.x, ... in order, then the tree.
    Moments all{0.0, 0.0, 0.0};
    for (long long t = threadIdx.x; t < splits; t += blockDim.x) {
        all = merge(all, {(double)chunk_size(t, chunk, count), partial_mean[c * splits + t],
                          partial_m2[c * splits + t]});
    }
    all = block_moments(all);
    if (threadIdx.x != 0) return;
    const double v = all.m2 / (double)count;
    const double is = 1.0 / sqrt(v + eps);
    const double sc = ((flags & kHasWeight) ? (double)weight[c] : 1.0) * is;
    mean[c] = all.mean;
    var[c] = v;
    inv_std[c] = is;
    scale[c] = sc;
    shift[c] = (flags & kHasBias) ? (double)bias[c] : 0.0;
    if (flags & kUpdateRunning) {
        const double unbiased = v * ((double)count / (double)(count - 1));
        running_mean[c] = (T)((1.0 - momentum) * (double)running_mean[c] + momentum * all.mean);
        running_var[c] = (T)((1.0 - momentum) * (double)running_var[c] + momentum * unbiased);
    }
}

// --- elementwise: the walk over V-vectors of the flat (N, C, L) index ---------------------------
// Calls visit(i, c) for this thread's V-vectors (first element i, its channel c); total and
// length are multiples of V.
template <int V, class Visit>
__device__ void for_each_vector(long long total, long long channels, long long length,
                                Visit visit) {
    long long i = V * tg_thread_index();
    if (i >= total) return;
    const long long step = V * tg_grid_stride();
    long long k = i % length;
    long long c = (i / length) % channels;
    const long long step_k = step % length;
    const long long step_c = (step / length) % channels;
    for (; i < total; i += step) {
        visit(i, c);
        k += step_k;
        c += step_c;
        if (k >= length) {
            k -= length;
            ++c;
        }
        if (c >= channels) c -= channels;
    }
}

// y = (x - mean[c]) * scale[c] + shift[c], computed in double, stored as T.
template <class T, int V>
__device__ void normalize_affine(const T* __restrict__ x, const double* __restrict__ mean,
                                 const double* __restrict__ scale,
                                 const double* __restrict__ shift, T* __restrict__ y,
                                 long long total, long long channels, long long length) {
    for_each_vector<V>(total, channels, length, [&](long long i, long long c) {
        const double m = mean[c];
        const double a = scale[c];
        const double b = shift[c];
        double v[V];
        load<T, V>(x + i, v);
        for (int j = 0; j < V; ++j) v[j] = (v[j] - m) * a + b;
        store<T, V>(y + i, v);
    });
}

// --- backward sums --------------------------------------------------------------------------
// sum_g[c] = sum(g) and sum_gc[c] = centered_scale[c] * sum(g * (x - mean[c])): with
// centered_scale = inv_std that is sum(g * xhat) (dweight), with ones the raw sum.
template <class T, int V>
__device__ void backward_sums(const T* __restrict__ g, const T* __restrict__ x,
                              const double* __restrict__ mean,
                              const double* __restrict__ centered_scale,
                              double* __restrict__ partial_g, double* __restrict__ partial_gc,
                              int* __restrict__ tickets, double* __restrict__ sum_g,
                              double* __restrict__ sum_gc, long long n, long long channels,
                              long long length, long long chunk) {
    __shared__ double scratch[kMaxThreads];
    const long long c = blockIdx.x;
    const long long s = blockIdx.y;
    const long long splits = gridDim.y;
    const long long count = n * length;
    const long long begin = s * chunk;
    const long long end = begin + chunk_size(s, chunk, count);
    const long long first = c * length;
    const double m = mean[c];

    double a = 0.0;
    double b = 0.0;
    for_chunk<V>(begin, end, length, channels * length, [&](long long at) {
        double gv[V], xv[V];
        load<T, V>(g + first + at, gv);
        load<T, V>(x + first + at, xv);
        for (int j = 0; j < V; ++j) {
            a += gv[j];
            b += gv[j] * (xv[j] - m);
        }
    });
    a = tg_block_sum(a, scratch);
    b = tg_block_sum(b, scratch);
    if (threadIdx.x == 0) {
        partial_g[c * splits + s] = a;
        partial_gc[c * splits + s] = b;
    }
    if (!last_block_of_channel(tickets, c)) return;
    // The last block: strided shares in order, then the tree.
    double total_g = 0.0;
    double total_gc = 0.0;
    for (long long t = threadIdx.x; t < splits; t += blockDim.x) {
        total_g += partial_g[c * splits + t];
        total_gc += partial_gc[c * splits + t];
    }
    total_g = tg_block_sum(total_g, scratch);
    total_gc = tg_block_sum(total_gc, scratch);
    if (threadIdx.x == 0) {
        sum_g[c] = total_g;
        sum_gc[c] = total_gc * centered_scale[c];
    }
}

// --- input gradient -------------------------------------------------------------------------
// dx = weight[c] * inv_std[c] * (g - sum_g[c] / M - xhat * sum_g_xhat[c] / M),
// xhat = (x - mean[c]) * inv_std[c], as dx = a g + b (x - mean) + d with the per-channel
// a = weight inv_std, b = -a inv_std sum_g_xhat / M, d = -a sum_g / M (inv_count = 1 / M).
template <class T, int V>
__device__ void backward_input(const T* __restrict__ g, const T* __restrict__ x,
                               const double* __restrict__ mean,
                               const double* __restrict__ inv_std,
                               const double* __restrict__ weight,
                               const double* __restrict__ sum_g,
                               const double* __restrict__ sum_g_xhat, T* __restrict__ dx,
                               long long total, long long channels, long long length,
                               double inv_count) {
    long long cached = -1;
    double a = 0.0, b = 0.0, d = 0.0, m = 0.0;
    for_each_vector<V>(total, channels, length, [&](long long i, long long c) {
        if (c != cached) {  // a new channel: its coefficients, no division
            const double s = inv_std[c];
            a = weight[c] * s;
            b = -a * s * (sum_g_xhat[c] * inv_count);
            d = -a * (sum_g[c] * inv_count);
            m = mean[c];
            cached = c;
        }
        double gv[V], xv[V];
        load<T, V>(g + i, gv);
        load<T, V>(x + i, xv);
        for (int j = 0; j < V; ++j) gv[j] = a * gv[j] + b * (xv[j] - m) + d;
        store<T, V>(dx + i, gv);
    });
}

// The vector width a launch uses: Python passes 16 / sizeof(T) or 1.
template <class T> constexpr int kVector = 16 / sizeof(T);

}  // namespace batch_norm

// --- entry points -----------------------------------------------------------------------------
// backward_input declares __launch_bounds__(256, 1): with (256) alone ptxas held it at 48
// registers and spilled on sm_90 (NVRTC, -ftz); it takes 56, 4 blocks of 256 per SM.
// Each dispatches on `vector` (uniform over the grid) to the V-vector or the scalar body.
#define TG_BN_DISPATCH(T, CALL)                                    \
    if (vector == batch_norm::kVector<T>) {                        \
        CALL(T, batch_norm::kVector<T>);                           \
    } else {                                                       \
        CALL(T, 1);                                                \
    }

#define TG_BN_TRAIN_STATS(T, V)                                                                \
    batch_norm::train_stats<T, V>(x, weight, bias, partial_mean, partial_m2, tickets, mean,   \
                                  var, inv_std, scale, shift, running_mean, running_var, n,   \
                                  channels, length, chunk, eps, momentum, flags)

TG_ENTRY_F32_F64(batch_norm_train_stats, __launch_bounds__(256), __launch_bounds__(256),
    (const T* __restrict__ x, const T* __restrict__ weight, const T* __restrict__ bias,
     double* __restrict__ partial_mean, double* __restrict__ partial_m2,
     int* __restrict__ tickets, double* __restrict__ mean, double* __restrict__ var,
     double* __restrict__ inv_std, double* __restrict__ scale, double* __restrict__ shift,
     T* __restrict__ running_mean, T* __restrict__ running_var, long long n, long long channels,
     long long length, long long chunk, int vector, double eps, double momentum, int flags),
    TG_BN_DISPATCH(T, TG_BN_TRAIN_STATS))

#define TG_BN_NORMALIZE(T, V) \
    batch_norm::normalize_affine<T, V>(x, mean, scale, shift, y, total, channels, length)

TG_ENTRY_F32_F64(batch_norm_normalize_affine, __launch_bounds__(256), __launch_bounds__(256),
    (const T* __restrict__ x, const double* __restrict__ mean, const double* __restrict__ scale,
     const double* __restrict__ shift, T* __restrict__ y, long long total, long long channels,
     long long length, int vector),
    TG_BN_DISPATCH(T, TG_BN_NORMALIZE))

#define TG_BN_BACKWARD_SUMS(T, V)                                                          \
    batch_norm::backward_sums<T, V>(g, x, mean, centered_scale, partial_g, partial_gc,    \
                                    tickets, sum_g, sum_gc, n, channels, length, chunk)

TG_ENTRY_F32_F64(batch_norm_backward_sums, __launch_bounds__(256), __launch_bounds__(256),
    (const T* __restrict__ g, const T* __restrict__ x, const double* __restrict__ mean,
     const double* __restrict__ centered_scale, double* __restrict__ partial_g,
     double* __restrict__ partial_gc, int* __restrict__ tickets, double* __restrict__ sum_g,
     double* __restrict__ sum_gc, long long n, long long channels, long long length,
     long long chunk, int vector),
    TG_BN_DISPATCH(T, TG_BN_BACKWARD_SUMS))

#define TG_BN_BACKWARD_INPUT(T, V)                                                          \
    batch_norm::backward_input<T, V>(g, x, mean, inv_std, weight, sum_g, sum_g_xhat, dx,   \
                                     total, channels, length, inv_count)

TG_ENTRY_F32_F64(batch_norm_backward_input, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* __restrict__ g, const T* __restrict__ x, const double* __restrict__ mean,
     const double* __restrict__ inv_std, const double* __restrict__ weight,
     const double* __restrict__ sum_g, const double* __restrict__ sum_g_xhat,
     T* __restrict__ dx, long long total, long long channels, long long length,
     double inv_count, int vector),
    TG_BN_DISPATCH(T, TG_BN_BACKWARD_INPUT))

#undef TG_BN_DISPATCH
#undef TG_BN_TRAIN_STATS
#undef TG_BN_NORMALIZE
#undef TG_BN_BACKWARD_SUMS
#undef TG_BN_BACKWARD_INPUT
