// Batch normalisation: per-channel statistics, normalise-and-affine, and the backward pass.
//
// Layout (as tinygen.backend.reference.batch_norm, which has the maths): the input is a
// contiguous (N, C, L) array; channel c's M = N * L values are element m = i * L + k at
// x[i * C * L + c * L + k].  Per-channel vectors (mean, scale, sums, ...) are float64
// (C,) arrays whatever the input's type, and every sum is accumulated in double.
//
// Reductions (train statistics, backward sums) run on a (C, S) grid: block (c, s) reduces
// chunk s of channel c (`chunk` consecutive values m; S = ceil(M / chunk) chosen in
// Python so that the GPU has enough blocks when C is small).  A block writes its chunk's
// partial result; the LAST block of the channel to finish (a per-channel atomic ticket)
// merges the S partials in chunk order, so the result does not depend on which block
// ran when, and the whole reduction is one launch.  With S == 1 the block finalises
// directly.  The statistics are two-pass per chunk (its mean, then the squared
// deviations from it) merged with Chan et al.'s formula: no sum(x^2) - sum(x)^2
// cancellation anywhere.
//
// Elementwise kernels (normalise, input gradient) use a grid-stride loop over the flat
// index and track (channel, position in row) incrementally: no division per element.
#include "common.cuh"

namespace batch_norm {

// Threads per block of the reduction kernels at most (the size of their scratch arrays);
// any block size up to this works.
constexpr int kMaxReduceThreads = 256;

// Calls visit(offset) for this thread's share of the values m in [begin, end) of one
// channel (m = begin + threadIdx.x, stepping blockDim.x), where `offset` is m's position
// relative to the channel's first value: (m / length) * row_stride + m % length.
template <class Visit>
__device__ void for_chunk(long long begin, long long end, long long length,
                          long long row_stride, Visit visit) {
    long long m = begin + threadIdx.x;
    if (m >= end) return;
    long long row = m / length;
    long long k = m - row * length;
    const long long step = blockDim.x;
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

// --- training statistics ----------------------------------------------------------------
// mean, biased var and inv_std = 1 / sqrt(var + eps) of every channel; when
// update_running, also running = (1 - momentum) * running + momentum * batch, with the
// batch's unbiased variance var * M / (M - 1) (as PyTorch), in the running arrays' type T.
template <class T>
__device__ void train_stats(const T* __restrict__ x, double* __restrict__ partial_mean,
                            double* __restrict__ partial_m2, int* __restrict__ tickets,
                            double* __restrict__ mean, double* __restrict__ var,
                            double* __restrict__ inv_std, T* __restrict__ running_mean,
                            T* __restrict__ running_var, long long n, long long channels,
                            long long length, long long chunk, double eps, double momentum,
                            int update_running) {
    __shared__ double scratch[kMaxReduceThreads];
    const long long c = blockIdx.x;
    const long long s = blockIdx.y;
    const long long splits = gridDim.y;
    const long long count = n * length;
    const long long begin = s * chunk;
    const long long end = begin + chunk_size(s, chunk, count);
    const T* xc = x + c * length;
    const long long row_stride = channels * length;

    double sum = 0.0;
    for_chunk(begin, end, length, row_stride, [&](long long at) { sum += (double)xc[at]; });
    const double chunk_mean = tg_block_sum(sum, scratch) / (double)(end - begin);
    double squares = 0.0;
    for_chunk(begin, end, length, row_stride, [&](long long at) {
        const double d = (double)xc[at] - chunk_mean;
        squares += d * d;
    });
    const double chunk_m2 = tg_block_sum(squares, scratch);
    if (threadIdx.x == 0) {
        partial_mean[c * splits + s] = chunk_mean;
        partial_m2[c * splits + s] = chunk_m2;
    }
    if (!last_block_of_channel(tickets, c) || threadIdx.x != 0) return;

    // Chan et al.: M2 = sum_s (M2_s + n_s (mean_s - mean)^2), chunk by chunk in order.
    double total = 0.0;
    for (long long t = 0; t < splits; ++t) {
        total += (double)chunk_size(t, chunk, count) * partial_mean[c * splits + t];
    }
    const double m = total / (double)count;
    double m2 = 0.0;
    for (long long t = 0; t < splits; ++t) {
        const double d = partial_mean[c * splits + t] - m;
        m2 += partial_m2[c * splits + t] + (double)chunk_size(t, chunk, count) * d * d;
    }
    const double v = m2 / (double)count;
    mean[c] = m;
    var[c] = v;
    inv_std[c] = 1.0 / sqrt(v + eps);
    if (update_running) {
        const double unbiased = v * ((double)count / (double)(count - 1));
        running_mean[c] = (T)((1.0 - momentum) * (double)running_mean[c] + momentum * m);
        running_var[c] = (T)((1.0 - momentum) * (double)running_var[c] + momentum * unbiased);
    }
}

// --- normalise and affine (training and evaluation forward) --------------------------------
// y = (x - mean[c]) * scale[c] + shift[c], computed in double, stored as T.
template <class T>
__device__ void normalize_affine(const T* __restrict__ x, const double* __restrict__ mean,
                                 const double* __restrict__ scale,
                                 const double* __restrict__ shift, T* __restrict__ y,
                                 long long total, long long channels, long long length) {
    long long i = tg_thread_index();
    if (i >= total) return;
    const long long step = tg_grid_stride();
    long long k = i % length;
    long long c = (i / length) % channels;
    const long long step_k = step % length;
    const long long step_c = (step / length) % channels;
    for (; i < total; i += step) {
        y[i] = (T)(((double)x[i] - mean[c]) * scale[c] + shift[c]);
        k += step_k;
        c += step_c;
        if (k >= length) {
            k -= length;
            ++c;
        }
        if (c >= channels) c -= channels;
    }
}

// --- backward sums --------------------------------------------------------------------------
// sum_g[c] = sum(g) and sum_gc[c] = centered_scale[c] * sum(g * (x - mean[c])): with
// centered_scale = inv_std that is sum(g * xhat) (dweight), with ones the raw sum.
template <class T>
__device__ void backward_sums(const T* __restrict__ g, const T* __restrict__ x,
                              const double* __restrict__ mean,
                              const double* __restrict__ centered_scale,
                              double* __restrict__ partial_g, double* __restrict__ partial_gc,
                              int* __restrict__ tickets, double* __restrict__ sum_g,
                              double* __restrict__ sum_gc, long long n, long long channels,
                              long long length, long long chunk) {
    __shared__ double scratch[kMaxReduceThreads];
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
    for_chunk(begin, end, length, channels * length, [&](long long at) {
        const double gv = (double)g[first + at];
        a += gv;
        b += gv * ((double)x[first + at] - m);
    });
    a = tg_block_sum(a, scratch);
    b = tg_block_sum(b, scratch);
    if (threadIdx.x == 0) {
        partial_g[c * splits + s] = a;
        partial_gc[c * splits + s] = b;
    }
    if (!last_block_of_channel(tickets, c) || threadIdx.x != 0) return;
    double total_g = 0.0;
    double total_gc = 0.0;
    for (long long t = 0; t < splits; ++t) {
        total_g += partial_g[c * splits + t];
        total_gc += partial_gc[c * splits + t];
    }
    sum_g[c] = total_g;
    sum_gc[c] = total_gc * centered_scale[c];
}

// --- input gradient -------------------------------------------------------------------------
// dx = weight[c] * inv_std[c] * (g - sum_g[c] / M - xhat * sum_g_xhat[c] / M),
// xhat = (x - mean[c]) * inv_std[c].
template <class T>
__device__ void backward_input(const T* __restrict__ g, const T* __restrict__ x,
                               const double* __restrict__ mean,
                               const double* __restrict__ inv_std,
                               const double* __restrict__ weight,
                               const double* __restrict__ sum_g,
                               const double* __restrict__ sum_g_xhat, T* __restrict__ dx,
                               long long n, long long channels, long long length) {
    const long long total = n * channels * length;
    const double count = (double)(n * length);
    long long i = tg_thread_index();
    if (i >= total) return;
    const long long step = tg_grid_stride();
    long long k = i % length;
    long long c = (i / length) % channels;
    const long long step_k = step % length;
    const long long step_c = (step / length) % channels;
    for (; i < total; i += step) {
        const double s = inv_std[c];
        const double xhat = ((double)x[i] - mean[c]) * s;
        dx[i] = (T)(weight[c] * s *
                    ((double)g[i] - sum_g[c] / count - xhat * (sum_g_xhat[c] / count)));
        k += step_k;
        c += step_c;
        if (k >= length) {
            k -= length;
            ++c;
        }
        if (c >= channels) c -= channels;
    }
}

}  // namespace batch_norm

// --- entry points -----------------------------------------------------------------------------
extern "C" __global__ void __launch_bounds__(256) batch_norm_train_stats_f32(const float* __restrict__ x,
                                                      double* __restrict__ partial_mean,
                                                      double* __restrict__ partial_m2,
                                                      int* __restrict__ tickets,
                                                      double* __restrict__ mean,
                                                      double* __restrict__ var,
                                                      double* __restrict__ inv_std,
                                                      float* __restrict__ running_mean,
                                                      float* __restrict__ running_var,
                                                      long long n,
                                                      long long channels,
                                                      long long length,
                                                      long long chunk,
                                                      double eps,
                                                      double momentum,
                                                      int update_running) {
    batch_norm::train_stats(x, partial_mean, partial_m2, tickets, mean, var, inv_std,
                            running_mean, running_var, n, channels, length, chunk, eps,
                            momentum, update_running);
}

extern "C" __global__ void __launch_bounds__(256) batch_norm_train_stats_f64(const double* __restrict__ x,
                                                      double* __restrict__ partial_mean,
                                                      double* __restrict__ partial_m2,
                                                      int* __restrict__ tickets,
                                                      double* __restrict__ mean,
                                                      double* __restrict__ var,
                                                      double* __restrict__ inv_std,
                                                      double* __restrict__ running_mean,
                                                      double* __restrict__ running_var,
                                                      long long n,
                                                      long long channels,
                                                      long long length,
                                                      long long chunk,
                                                      double eps,
                                                      double momentum,
                                                      int update_running) {
    batch_norm::train_stats(x, partial_mean, partial_m2, tickets, mean, var, inv_std,
                            running_mean, running_var, n, channels, length, chunk, eps,
                            momentum, update_running);
}

extern "C" __global__ void __launch_bounds__(256) batch_norm_normalize_affine_f32(const float* __restrict__ x,
                                                           const double* __restrict__ mean,
                                                           const double* __restrict__ scale,
                                                           const double* __restrict__ shift,
                                                           float* __restrict__ y,
                                                           long long total,
                                                           long long channels,
                                                           long long length) {
    batch_norm::normalize_affine(x, mean, scale, shift, y, total, channels, length);
}

extern "C" __global__ void __launch_bounds__(256) batch_norm_normalize_affine_f64(const double* __restrict__ x,
                                                           const double* __restrict__ mean,
                                                           const double* __restrict__ scale,
                                                           const double* __restrict__ shift,
                                                           double* __restrict__ y,
                                                           long long total,
                                                           long long channels,
                                                           long long length) {
    batch_norm::normalize_affine(x, mean, scale, shift, y, total, channels, length);
}

extern "C" __global__ void __launch_bounds__(256) batch_norm_backward_sums_f32(const float* __restrict__ g,
                                                        const float* __restrict__ x,
                                                        const double* __restrict__ mean,
                                                        const double* __restrict__ centered_scale,
                                                        double* __restrict__ partial_g,
                                                        double* __restrict__ partial_gc,
                                                        int* __restrict__ tickets,
                                                        double* __restrict__ sum_g,
                                                        double* __restrict__ sum_gc,
                                                        long long n,
                                                        long long channels,
                                                        long long length,
                                                        long long chunk) {
    batch_norm::backward_sums(g, x, mean, centered_scale, partial_g, partial_gc, tickets, sum_g,
                              sum_gc, n, channels, length, chunk);
}

extern "C" __global__ void __launch_bounds__(256) batch_norm_backward_sums_f64(const double* __restrict__ g,
                                                        const double* __restrict__ x,
                                                        const double* __restrict__ mean,
                                                        const double* __restrict__ centered_scale,
                                                        double* __restrict__ partial_g,
                                                        double* __restrict__ partial_gc,
                                                        int* __restrict__ tickets,
                                                        double* __restrict__ sum_g,
                                                        double* __restrict__ sum_gc,
                                                        long long n,
                                                        long long channels,
                                                        long long length,
                                                        long long chunk) {
    batch_norm::backward_sums(g, x, mean, centered_scale, partial_g, partial_gc, tickets, sum_g,
                              sum_gc, n, channels, length, chunk);
}

extern "C" __global__ void __launch_bounds__(256) batch_norm_backward_input_f32(const float* __restrict__ g,
                                                         const float* __restrict__ x,
                                                         const double* __restrict__ mean,
                                                         const double* __restrict__ inv_std,
                                                         const double* __restrict__ weight,
                                                         const double* __restrict__ sum_g,
                                                         const double* __restrict__ sum_g_xhat,
                                                         float* __restrict__ dx,
                                                         long long n,
                                                         long long channels,
                                                         long long length) {
    batch_norm::backward_input(g, x, mean, inv_std, weight, sum_g, sum_g_xhat, dx, n, channels,
                               length);
}

extern "C" __global__ void __launch_bounds__(256) batch_norm_backward_input_f64(const double* __restrict__ g,
                                                         const double* __restrict__ x,
                                                         const double* __restrict__ mean,
                                                         const double* __restrict__ inv_std,
                                                         const double* __restrict__ weight,
                                                         const double* __restrict__ sum_g,
                                                         const double* __restrict__ sum_g_xhat,
                                                         double* __restrict__ dx,
                                                         long long n,
                                                         long long channels,
                                                         long long length) {
    batch_norm::backward_input(g, x, mean, inv_std, weight, sum_g, sum_g_xhat, dx, n, channels,
                               length);
}
