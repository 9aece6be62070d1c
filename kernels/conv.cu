// Convolution family: conv2d forward, input gradient (= conv_transpose2d) and weight
// gradient over a list of kernel taps, as implicit GEMMs with shared-memory tiling.
//
// What is computed is tinygen/backend/reference/conv.py (read it first); the Python side
// that chooses grids and builds the tap tables is tinygen/backend/cuda_kernels/conv.py.
//
// One mechanism for every convolution.  A kernel never sees a mask: it gets the list of
// taps (i, j) to iterate, so a dense 3x3 conv passes all 9 taps and a 7x7 PixelCNN mask A
// passes the 24 it keeps -- masked taps are never loaded or multiplied.  The gated
// PixelCNN stacks (shifted kernels), RGB-grouped masks (a partly kept centre tap whose
// weight the caller zeroed), 1-D convs and WaveNet's dilated causal conv1d (height-1
// geometry, padding on the left only) are all just geometries + tap lists.  A separate
// 1-D kernel for the causal conv would not be faster: with height 1 the gather below
// degenerates to reading shifted, contiguous rows of x, which is what a 1-D kernel does.
//
// The three GEMMs (per group g; Cg = C/groups, Og = O/groups, T taps, P = Hout*Wout):
//
//   forward       y_g[o, col]   = sum_k W_g[o, k] * X_g[k, col]         k = (c, t)
//                 M = Og, K = Cg*T, columns = N*P; X_g is the implicit im2col matrix
//                 X_g[(c, t), (n, p, q)] = x[n, g*Cg + c, p*sh - pt + i_t*dh, q*sw - pl + j_t*dw]
//   input grad    gx_g[c, col]  = sum_k W_g^T[c, k] * GY_g[k, col]      k = (o, t)
//                 computed per stride phase (below): no multiplications by the zeros a
//                 stride-s transposed conv would otherwise insert
//   weight grad   gw_g[o, kc]   = sum_col GY_g[o, col] * X_g[kc, col]    kc = (c, t)
//                 the reduction runs over N*P columns: split-K, deterministic (below)
//
// Tiling.  A block of 256 threads (16 x 16) owns a (16*TM) x (16*TN) tile of the result;
// thread (ty, tx) accumulates the TM x TN register micro-tile at rows ty + 16*i, columns
// tx + 16*j (strided, so that the 16 threads of a half-warp read 16 consecutive shared
// words of B and write 16 consecutive output columns).  K is walked in slices of 16:
// each slice of A (16 x 16*TM) and B (16 x 16*TN) is gathered from global memory into
// registers while the previous slice is being multiplied out of shared memory, so the
// global latency hides behind the FMAs (register prefetch, one shared buffer).  Every
// thread gathers the same k of every slot it loads, so its (channel, tap) position is
// advanced by a counter instead of a division per element.  Edges: rows, columns and k
// beyond the problem load zeros and are never stored, so no size has to be a multiple
// of a tile.  Tile shapes: 64x64 (TM = TN = 4) when M is large; 32x128 (TM = 2, TN = 8)
// and 16x128 (TM = 1, TN = 8) when M (the output channels of a group, or the input
// channels for the input gradient) is small, so that few rows are wasted; these are
// capped at 128 registers so that two blocks share a multiprocessor.  And 128x128
// (TM = TN = 8, one block per multiprocessor, 200-255 registers) for large problems:
// per K step a thread then does 64 FMAs for 16 shared-memory reads instead of 16 for 8,
// which is what keeps the FMA pipes rather than shared memory busy.
//
// Shared tiles have one column of padding: the threads that store a slice walk down
// k, and an unpadded row of 64 words would put all 16 of them in one bank.
#include "common.cuh"

namespace conv {

constexpr int kSide = 16;       // the block is kSide x kSide threads (blockDim.x == 256)
constexpr int kSlice = 16;      // the K extent of one shared-memory tile
constexpr int kFar = -(1 << 29);  // a coordinate that fails every bounds test

// k = outer * n_taps + tap, moved forward kSlice at a time without a division.
struct TapCounter {
    int outer, tap, n_taps, step_outer, step_tap;

    __device__ void start(int k, int taps_per_outer)
    {
        n_taps = taps_per_outer;
        outer = k / taps_per_outer;
        tap = k - outer * taps_per_outer;
        step_outer = kSlice / taps_per_outer;
        step_tap = kSlice - step_outer * taps_per_outer;
    }

    __device__ void advance()
    {
        tap += step_tap;
        outer += step_outer;
        if (tap >= n_taps) {
            tap -= n_taps;
            ++outer;
        }
    }
};

// Of the rows first, first + 16, first + 32, ... (first = m0 + ty), how many lie below
// the end, given remaining = end - first.
__device__ __forceinline__ int rows_from(int remaining)
{
    return remaining > 0 ? (remaining + kSide - 1) / kSide : 0;
}

// ---------------------------------------------------------------------------------------
// The GEMM main loop shared by the three kernels.  Operands gathers one K slice into
// registers (fetch), moves to the next one (advance), and says how its B slice is laid
// out over the threads: kBColumnFastest (thread t holds k = t / 16 and columns
// t % 16 + 16 r) or k-fastest (k = t % 16, columns t / 16 + 16 r).  A is always
// k-fastest (k = t % 16, rows t / 16 + 16 r).
// ---------------------------------------------------------------------------------------
template <typename T, int TM, int TN, typename Operands>
__device__ void accumulate_tiles(Operands& ops, long long k_count, T (&acc)[TM][TN])
{
    __shared__ T a_tile[kSlice][kSide * TM + 1];
    __shared__ T b_tile[kSlice][kSide * TN + 1];
    const int tid = (int)threadIdx.x;
    const int tx = tid % kSide, ty = tid / kSide;

    for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j)
            acc[i][j] = T(0);

    T a_next[TM], b_next[TN];
    if (k_count > 0) ops.fetch(a_next, b_next);
    for (long long k0 = 0; k0 < k_count; k0 += kSlice) {
        for (int r = 0; r < TM; ++r) a_tile[tx][ty + kSide * r] = a_next[r];
        for (int r = 0; r < TN; ++r) {
            if (Operands::kBColumnFastest)
                b_tile[ty][tx + kSide * r] = b_next[r];
            else
                b_tile[tx][ty + kSide * r] = b_next[r];
        }
        __syncthreads();
        if (k0 + kSlice < k_count) {  // prefetch the next slice while this one is used
            ops.advance();
            ops.fetch(a_next, b_next);
        }
#pragma unroll
        for (int kk = 0; kk < kSlice; ++kk) {
            T a[TM], b[TN];
            for (int i = 0; i < TM; ++i) a[i] = a_tile[kk][ty + kSide * i];
            for (int j = 0; j < TN; ++j) b[j] = b_tile[kk][tx + kSide * j];
            for (int i = 0; i < TM; ++i)
                for (int j = 0; j < TN; ++j)
                    acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
}

// ---------------------------------------------------------------------------------------
// Forward: A = W_g restricted to the taps (Og x Cg*T), B = the implicit im2col X_g.
// ---------------------------------------------------------------------------------------
template <typename T, int TM, int TN>
struct ForwardOperands {
    static constexpr bool kBColumnFastest = true;
    const T* x;
    const T* w;
    const int* taps;  // (T, 2): i, j
    int in_per_group, height, width, kernel_w, kernel_area, dilation_h, dilation_w;
    // This thread's A rows m = m0 + ty + 16 r, an arithmetic progression: the weight
    // offset of the first, the step, and how many of them exist.
    long long w_row;
    long long w_row_step;
    int rows;
    TapCounter ka;        // the k this thread loads of A: (c, t)
    long long x_image[TN];  // offset of x[n, g*Cg]
    int ih0[TN], iw0[TN];   // the input position of tap (0, 0); kFar for no column
    TapCounter kb;

    __device__ void fetch(T (&a)[TM], T (&b)[TN]) const
    {
        const bool ka_ok = ka.outer < in_per_group;
        long long w_off = 0;
        if (ka_ok)
            w_off = (long long)ka.outer * kernel_area + taps[2 * ka.tap] * kernel_w
                    + taps[2 * ka.tap + 1];
        for (int r = 0; r < TM; ++r)
            a[r] = (ka_ok && r < rows) ? w[w_row + r * w_row_step + w_off] : T(0);

        const bool kb_ok = kb.outer < in_per_group;
        int di = 0, dj = 0;
        long long plane = 0;
        if (kb_ok) {
            di = taps[2 * kb.tap] * dilation_h;
            dj = taps[2 * kb.tap + 1] * dilation_w;
            plane = (long long)kb.outer * height * width;
        }
        for (int r = 0; r < TN; ++r) {
            const int ih = ih0[r] + di, iw = iw0[r] + dj;
            const bool ok = kb_ok && ih >= 0 && ih < height && iw >= 0 && iw < width;
            b[r] = ok ? x[x_image[r] + plane + (long long)ih * width + iw] : T(0);
        }
    }

    __device__ void advance()
    {
        ka.advance();
        kb.advance();
    }
};

template <typename T, int TM, int TN>
__device__ void conv_forward(const T* x, const T* w, const int* taps, T* y, int batch,
                             int channels, int height, int width, int out_channels,
                             int out_height, int out_width, int kernel_h, int kernel_w,
                             int n_taps, int groups, int stride_h, int stride_w, int pad_top,
                             int pad_left, int dilation_h, int dilation_w)
{
    const int tid = (int)threadIdx.x;
    const int tx = tid % kSide, ty = tid / kSide;
    const int g = (int)blockIdx.z;
    const int in_per_group = channels / groups, out_per_group = out_channels / groups;
    const int m0 = (int)blockIdx.y * kSide * TM;
    const long long n0 = (long long)blockIdx.x * kSide * TN;
    const long long plane_out = (long long)out_height * out_width;
    const long long columns = (long long)batch * plane_out;

    ForwardOperands<T, TM, TN> ops;
    ops.x = x;
    ops.w = w;
    ops.taps = taps;
    ops.in_per_group = in_per_group;
    ops.height = height;
    ops.width = width;
    ops.kernel_w = kernel_w;
    ops.kernel_area = kernel_h * kernel_w;
    ops.dilation_h = dilation_h;
    ops.dilation_w = dilation_w;
    ops.w_row = (long long)(g * out_per_group + m0 + ty) * in_per_group * ops.kernel_area;
    ops.w_row_step = (long long)kSide * in_per_group * ops.kernel_area;
    ops.rows = rows_from(out_per_group - m0 - ty);
    ops.ka.start(tx, n_taps);
    for (int r = 0; r < TN; ++r) {
        const long long col = n0 + tx + kSide * r;
        ops.x_image[r] = 0;
        ops.ih0[r] = kFar;
        ops.iw0[r] = kFar;
        if (col < columns) {
            const long long n = col / plane_out;
            const int pix = (int)(col - n * plane_out);
            const int p = pix / out_width, q = pix - (pix / out_width) * out_width;
            ops.x_image[r] = (n * channels + (long long)g * in_per_group) * height * width;
            ops.ih0[r] = p * stride_h - pad_top;
            ops.iw0[r] = q * stride_w - pad_left;
        }
    }
    ops.kb.start(ty, n_taps);

    T acc[TM][TN];
    accumulate_tiles<T, TM, TN>(ops, (long long)in_per_group * n_taps, acc);

    for (int j = 0; j < TN; ++j) {
        const long long col = n0 + tx + kSide * j;
        if (col >= columns) continue;
        const long long n = col / plane_out;
        const long long pix = col - n * plane_out;
        for (int i = 0; i < TM; ++i) {
            const int m = m0 + ty + kSide * i;
            if (m < out_per_group)
                y[(n * out_channels + g * out_per_group + m) * plane_out + pix] = acc[i][j];
        }
    }
}

// ---------------------------------------------------------------------------------------
// Input gradient (the transposed convolution), one stride phase at a time.
//
// gx[n, c, h, w] receives grad_y[n, o, p, q] * W[o, c, i, j] wherever
// h + pt = p*sh + i*dh (and likewise for w).  With stride sh only the taps whose i*dh is
// congruent to h + pt modulo sh can reach row h, so the rows of gx split into sh phases
// ph = (h + pt) mod sh, each fed by its own subset of the taps: per phase the transposed
// conv is a dense GEMM with no structural zeros (sh*sw times less work than gathering
// over all taps and testing divisibility).  Within phase ph, rows are h = h0 + sh*m with
// h0 = (ph - pt) mod sh; writing h + pt = ph + sh*a_h and i*dh = ph + sh*b_i gives
// p = a_h - b_i, no division.  The host sorts the taps by phase into rows (i, j, b_i, b_j)
// and passes where each phase's taps start.  Every gx element belongs to exactly one
// (group, phase, column) and is written once (zero if its phase has no taps): no atomics.
//
// A = W_g^T restricted to the phase's taps (Cg x Og*Tph), B[(o, t), col] = grad_y gathered.
// ---------------------------------------------------------------------------------------
template <typename T, int TM, int TN>
struct InputGradOperands {
    static constexpr bool kBColumnFastest = true;
    const T* grad_y;
    const T* w;
    const int* taps;  // this phase's rows of (i, j, b_i, b_j)
    int out_per_group, in_per_group, out_height, out_width, kernel_w, kernel_area;
    long long w_col;      // offset of weight[g*Og, c] for this thread's first row c
    int rows;             // of its rows c = m0 + ty + 16 r, how many exist
    TapCounter ka;        // (o, t)
    long long gy_image[TN];  // offset of grad_y[n, g*Og]
    int ah[TN], aw[TN];      // kFar for no column
    TapCounter kb;

    __device__ void fetch(T (&a)[TM], T (&b)[TN]) const
    {
        const bool ka_ok = ka.outer < out_per_group;
        long long w_off = 0;
        if (ka_ok)
            w_off = (long long)ka.outer * in_per_group * kernel_area
                    + taps[4 * ka.tap] * kernel_w + taps[4 * ka.tap + 1];
        for (int r = 0; r < TM; ++r)
            a[r] = (ka_ok && r < rows) ? w[w_col + r * kSide * kernel_area + w_off] : T(0);

        const bool kb_ok = kb.outer < out_per_group;
        int bi = 0, bj = 0;
        long long plane = 0;
        if (kb_ok) {
            bi = taps[4 * kb.tap + 2];
            bj = taps[4 * kb.tap + 3];
            plane = (long long)kb.outer * out_height * out_width;
        }
        for (int r = 0; r < TN; ++r) {
            const int p = ah[r] - bi, q = aw[r] - bj;
            const bool ok = kb_ok && p >= 0 && p < out_height && q >= 0 && q < out_width;
            b[r] = ok ? grad_y[gy_image[r] + plane + (long long)p * out_width + q] : T(0);
        }
    }

    __device__ void advance()
    {
        ka.advance();
        kb.advance();
    }
};

template <typename T, int TM, int TN>
__device__ void conv_input_grad(const T* grad_y, const T* w, const int* taps,
                                const int* phase_start, T* grad_x, int batch, int channels,
                                int height, int width, int out_channels, int out_height,
                                int out_width, int kernel_h, int kernel_w, int groups,
                                int stride_h, int stride_w, int pad_top, int pad_left)
{
    const int tid = (int)threadIdx.x;
    const int tx = tid % kSide, ty = tid / kSide;
    const int phases = stride_h * stride_w;
    const int g = (int)blockIdx.z / phases, phase = (int)blockIdx.z - g * phases;
    const int ph = phase / stride_w, pw = phase - (phase / stride_w) * stride_w;
    // The first row/column of this phase and how many there are.
    const int h0 = ((ph - pad_top) % stride_h + stride_h) % stride_h;
    const int w0 = ((pw - pad_left) % stride_w + stride_w) % stride_w;
    const int rows = h0 < height ? (height - h0 + stride_h - 1) / stride_h : 0;
    const int cols = w0 < width ? (width - w0 + stride_w - 1) / stride_w : 0;
    const long long plane_phase = (long long)rows * cols;
    const long long columns = (long long)batch * plane_phase;
    const long long n0 = (long long)blockIdx.x * kSide * TN;
    if (n0 >= columns) return;  // the grid is sized for the largest phase (block-uniform)

    const int in_per_group = channels / groups, out_per_group = out_channels / groups;
    const int m0 = (int)blockIdx.y * kSide * TM;
    const int tap_begin = phase_start[phase];
    const int phase_taps = phase_start[phase + 1] - tap_begin;
    const long long plane_out = (long long)out_height * out_width;
    const int a_h0 = (h0 + pad_top - ph) / stride_h, a_w0 = (w0 + pad_left - pw) / stride_w;

    InputGradOperands<T, TM, TN> ops;
    ops.grad_y = grad_y;
    ops.w = w;
    ops.taps = taps + 4 * tap_begin;
    ops.out_per_group = out_per_group;
    ops.in_per_group = in_per_group;
    ops.out_height = out_height;
    ops.out_width = out_width;
    ops.kernel_w = kernel_w;
    ops.kernel_area = kernel_h * kernel_w;
    ops.w_col = ((long long)g * out_per_group * in_per_group + m0 + ty) * ops.kernel_area;
    ops.rows = rows_from(in_per_group - m0 - ty);
    for (int r = 0; r < TN; ++r) {
        const long long col = n0 + tx + kSide * r;
        ops.gy_image[r] = 0;
        ops.ah[r] = kFar;
        ops.aw[r] = kFar;
        if (col < columns) {
            const long long n = col / plane_phase;
            const int pix = (int)(col - n * plane_phase);
            const int mh = pix / cols, mw = pix - (pix / cols) * cols;
            ops.gy_image[r] = (n * out_channels + (long long)g * out_per_group) * plane_out;
            ops.ah[r] = a_h0 + mh;
            ops.aw[r] = a_w0 + mw;
        }
    }
    T acc[TM][TN];
    const long long k_count = (long long)out_per_group * phase_taps;
    if (phase_taps > 0) {  // a tap counter needs at least one tap
        ops.ka.start(tx, phase_taps);
        ops.kb.start(ty, phase_taps);
    }
    accumulate_tiles<T, TM, TN>(ops, k_count, acc);

    for (int j = 0; j < TN; ++j) {
        const long long col = n0 + tx + kSide * j;
        if (col >= columns) continue;
        const long long n = col / plane_phase;
        const int pix = (int)(col - n * plane_phase);
        const int h = h0 + stride_h * (pix / cols);
        const int wc = w0 + stride_w * (pix - (pix / cols) * cols);
        for (int i = 0; i < TM; ++i) {
            const int c = m0 + ty + kSide * i;
            if (c < in_per_group)
                grad_x[((n * channels + g * in_per_group + c) * height + h) * width + wc] =
                    acc[i][j];
        }
    }
}

// ---------------------------------------------------------------------------------------
// Weight gradient: gw_g[o, (c, t)] = sum over columns (n, p, q) of grad_y * X_g.
//
// The reduction is long (N*P columns) and the result small, so the columns are split
// into `splits` contiguous chunks (blockIdx.z = g * splits + s, the host sizes the split
// to fill the GPU) and each block writes its partial tile to partial[s, o, (c, t)].
// conv_weight_grad_reduce then sums the partials in split order and scatters them to
// the taps of grad_w: two passes, no atomics, so the result is deterministic (bit for
// bit the same on every run).
//
// A[col, o] = grad_y, B[col, (c, t)] = X_g, both k-fastest: the 16 threads of a
// half-warp read 16 consecutive columns, i.e. consecutive (strided by sw) addresses.
// ---------------------------------------------------------------------------------------
template <typename T, int TM, int TN>
struct WeightGradOperands {
    static constexpr bool kBColumnFastest = false;
    const T* x;
    const T* grad_y;
    int height, width, out_height, out_width, stride_h, stride_w, pad_top, pad_left;
    long long image_x, image_gy;  // per-image strides: C*H*W and O*Hout*Wout
    // The column this thread loads, as (n, p, q), and the step of kSlice columns in
    // that mixed radix (N, Hout, Wout).
    long long col, col_end;
    int n, p, q, step_n, step_p, step_q;
    long long gy_row;      // offset of grad_y[0, g*Og + m] for this thread's first row m
    int rows;              // of its rows m = m0 + ty + 16 r, how many exist
    long long x_plane[TN];  // offset of x[0, g*Cg + c]
    int ioff[TN], joff[TN];  // i*dh, j*dw of the tap; kFar for no (c, t)

    __device__ void fetch(T (&a)[TM], T (&b)[TN]) const
    {
        const bool ok = col < col_end;
        const long long gy_at = (long long)n * image_gy + (long long)p * out_width + q;
        const long long row_step = (long long)kSide * out_height * out_width;
        for (int r = 0; r < TM; ++r)
            a[r] = (ok && r < rows) ? grad_y[gy_row + r * row_step + gy_at] : T(0);
        const long long x_at = (long long)n * image_x;
        const int ih0 = p * stride_h - pad_top, iw0 = q * stride_w - pad_left;
        for (int r = 0; r < TN; ++r) {
            const int ih = ih0 + ioff[r], iw = iw0 + joff[r];
            const bool in = ok && ih >= 0 && ih < height && iw >= 0 && iw < width;
            b[r] = in ? x[x_plane[r] + x_at + (long long)ih * width + iw] : T(0);
        }
    }

    __device__ void advance()
    {
        col += kSlice;
        q += step_q;
        if (q >= out_width) {
            q -= out_width;
            ++p;
        }
        p += step_p;
        if (p >= out_height) {
            p -= out_height;
            ++n;
        }
        n += step_n;
    }
};

template <typename T, int TM, int TN>
__device__ void conv_weight_grad(const T* x, const T* grad_y, const int* taps, T* partial,
                                 int batch, int channels, int height, int width,
                                 int out_channels, int out_height, int out_width, int n_taps,
                                 int groups, int stride_h, int stride_w, int pad_top,
                                 int pad_left, int dilation_h, int dilation_w, int splits,
                                 long long split_columns)
{
    const int tid = (int)threadIdx.x;
    const int tx = tid % kSide, ty = tid / kSide;
    const int g = (int)blockIdx.z / splits, s = (int)blockIdx.z - g * splits;
    const int in_per_group = channels / groups, out_per_group = out_channels / groups;
    const int kc_count = in_per_group * n_taps;
    const int m0 = (int)blockIdx.y * kSide * TM;
    const int n0 = (int)blockIdx.x * kSide * TN;
    const int plane_out = out_height * out_width;
    const long long columns = (long long)batch * plane_out;
    const long long col_begin = (long long)s * split_columns;
    long long col_end = col_begin + split_columns;
    if (col_end > columns) col_end = columns;

    WeightGradOperands<T, TM, TN> ops;
    ops.x = x;
    ops.grad_y = grad_y;
    ops.height = height;
    ops.width = width;
    ops.out_height = out_height;
    ops.out_width = out_width;
    ops.stride_h = stride_h;
    ops.stride_w = stride_w;
    ops.pad_top = pad_top;
    ops.pad_left = pad_left;
    ops.image_x = (long long)channels * height * width;
    ops.image_gy = (long long)out_channels * plane_out;
    ops.col = col_begin + tx;
    ops.col_end = col_end;
    {
        const long long n = ops.col / plane_out;
        const int pix = (int)(ops.col - n * plane_out);
        ops.n = (int)n;
        ops.p = pix / out_width;
        ops.q = pix - ops.p * out_width;
        ops.step_n = kSlice / plane_out;
        const int rest = kSlice - ops.step_n * plane_out;
        ops.step_p = rest / out_width;
        ops.step_q = rest - ops.step_p * out_width;
    }
    ops.gy_row = (long long)(g * out_per_group + m0 + ty) * plane_out;
    ops.rows = rows_from(out_per_group - m0 - ty);
    for (int r = 0; r < TN; ++r) {
        const int kc = n0 + ty + kSide * r;
        ops.x_plane[r] = 0;
        ops.ioff[r] = kFar;
        ops.joff[r] = kFar;
        if (kc < kc_count) {
            const int c = kc / n_taps, t = kc - (kc / n_taps) * n_taps;
            ops.x_plane[r] = ((long long)g * in_per_group + c) * height * width;
            ops.ioff[r] = taps[2 * t] * dilation_h;
            ops.joff[r] = taps[2 * t + 1] * dilation_w;
        }
    }

    T acc[TM][TN];
    accumulate_tiles<T, TM, TN>(ops, col_end - col_begin, acc);

    T* out = partial + (long long)s * out_channels * kc_count;
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + ty + kSide * i;
        if (m >= out_per_group) continue;
        for (int j = 0; j < TN; ++j) {
            const int kc = n0 + tx + kSide * j;
            if (kc < kc_count) out[(long long)(g * out_per_group + m) * kc_count + kc] = acc[i][j];
        }
    }
}

// grad_w[o, c, i_t, j_t] = sum over s of partial[s, o, c, t], in split order.  grad_w is
// zero-initialised by the host where no tap lands.
template <typename T>
__device__ void conv_weight_grad_reduce(const T* partial, const int* taps, T* grad_w,
                                        int splits, int out_channels, int in_per_group,
                                        int kernel_h, int kernel_w, int n_taps)
{
    const long long count = (long long)out_channels * in_per_group * n_taps;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < count;
         e += stride) {
        T sum = T(0);
        for (int s = 0; s < splits; ++s) sum += partial[s * count + e];
        const long long oc = e / n_taps;
        const int t = (int)(e - oc * n_taps);
        grad_w[oc * kernel_h * kernel_w + taps[2 * t] * kernel_w + taps[2 * t + 1]] = sum;
    }
}

}  // namespace conv

// =======================================================================================
// Entry points.  Tile names: m128 = 128x128 (TM = TN = 8), m64 = 64x64 (TM = TN = 4),
// m32 = 32x128, m16 = 16x128.
// Launch with blockDim = (256, 1, 1) and the grids described in conv.py.
// =======================================================================================

// --- forward: grid (ceil(N*Hout*Wout / BN), ceil(Og / BM), groups) ---------------------
extern "C" __global__ void __launch_bounds__(256, 1) conv_forward_m128_f32(
    const float* x, const float* weight, const int* taps, float* y, int batch, int channels,
    int height, int width, int out_channels, int out_height, int out_width, int kernel_h,
    int kernel_w, int n_taps, int groups, int stride_h, int stride_w, int pad_top,
    int pad_left, int dilation_h, int dilation_w)
{
    conv::conv_forward<float, 8, 8>(x, weight, taps, y, batch, channels, height, width,
                                    out_channels, out_height, out_width, kernel_h, kernel_w,
                                    n_taps, groups, stride_h, stride_w, pad_top, pad_left,
                                    dilation_h, dilation_w);
}

extern "C" __global__ void __launch_bounds__(256, 1) conv_forward_m128_f64(
    const double* x, const double* weight, const int* taps, double* y, int batch, int channels,
    int height, int width, int out_channels, int out_height, int out_width, int kernel_h,
    int kernel_w, int n_taps, int groups, int stride_h, int stride_w, int pad_top,
    int pad_left, int dilation_h, int dilation_w)
{
    conv::conv_forward<double, 8, 8>(x, weight, taps, y, batch, channels, height, width,
                                    out_channels, out_height, out_width, kernel_h, kernel_w,
                                    n_taps, groups, stride_h, stride_w, pad_top, pad_left,
                                    dilation_h, dilation_w);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_forward_m64_f32(
    const float* x, const float* weight, const int* taps, float* y, int batch, int channels,
    int height, int width, int out_channels, int out_height, int out_width, int kernel_h,
    int kernel_w, int n_taps, int groups, int stride_h, int stride_w, int pad_top,
    int pad_left, int dilation_h, int dilation_w)
{
    conv::conv_forward<float, 4, 4>(x, weight, taps, y, batch, channels, height, width,
                                       out_channels, out_height, out_width, kernel_h, kernel_w,
                                       n_taps, groups, stride_h, stride_w, pad_top, pad_left,
                                       dilation_h, dilation_w);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_forward_m64_f64(
    const double* x, const double* weight, const int* taps, double* y, int batch, int channels,
    int height, int width, int out_channels, int out_height, int out_width, int kernel_h,
    int kernel_w, int n_taps, int groups, int stride_h, int stride_w, int pad_top,
    int pad_left, int dilation_h, int dilation_w)
{
    conv::conv_forward<double, 4, 4>(x, weight, taps, y, batch, channels, height, width,
                                        out_channels, out_height, out_width, kernel_h,
                                        kernel_w, n_taps, groups, stride_h, stride_w, pad_top,
                                        pad_left, dilation_h, dilation_w);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_forward_m32_f32(
    const float* x, const float* weight, const int* taps, float* y, int batch, int channels,
    int height, int width, int out_channels, int out_height, int out_width, int kernel_h,
    int kernel_w, int n_taps, int groups, int stride_h, int stride_w, int pad_top,
    int pad_left, int dilation_h, int dilation_w)
{
    conv::conv_forward<float, 2, 8>(x, weight, taps, y, batch, channels, height, width,
                                       out_channels, out_height, out_width, kernel_h, kernel_w,
                                       n_taps, groups, stride_h, stride_w, pad_top, pad_left,
                                       dilation_h, dilation_w);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_forward_m32_f64(
    const double* x, const double* weight, const int* taps, double* y, int batch, int channels,
    int height, int width, int out_channels, int out_height, int out_width, int kernel_h,
    int kernel_w, int n_taps, int groups, int stride_h, int stride_w, int pad_top,
    int pad_left, int dilation_h, int dilation_w)
{
    conv::conv_forward<double, 2, 8>(x, weight, taps, y, batch, channels, height, width,
                                        out_channels, out_height, out_width, kernel_h,
                                        kernel_w, n_taps, groups, stride_h, stride_w, pad_top,
                                        pad_left, dilation_h, dilation_w);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_forward_m16_f32(
    const float* x, const float* weight, const int* taps, float* y, int batch, int channels,
    int height, int width, int out_channels, int out_height, int out_width, int kernel_h,
    int kernel_w, int n_taps, int groups, int stride_h, int stride_w, int pad_top,
    int pad_left, int dilation_h, int dilation_w)
{
    conv::conv_forward<float, 1, 8>(x, weight, taps, y, batch, channels, height, width,
                                        out_channels, out_height, out_width, kernel_h,
                                        kernel_w, n_taps, groups, stride_h, stride_w, pad_top,
                                        pad_left, dilation_h, dilation_w);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_forward_m16_f64(
    const double* x, const double* weight, const int* taps, double* y, int batch, int channels,
    int height, int width, int out_channels, int out_height, int out_width, int kernel_h,
    int kernel_w, int n_taps, int groups, int stride_h, int stride_w, int pad_top,
    int pad_left, int dilation_h, int dilation_w)
{
    conv::conv_forward<double, 1, 8>(x, weight, taps, y, batch, channels, height, width,
                                         out_channels, out_height, out_width, kernel_h,
                                         kernel_w, n_taps, groups, stride_h, stride_w, pad_top,
                                         pad_left, dilation_h, dilation_w);
}

// --- input grad: grid (ceil(N*ceil(H/sh)*ceil(W/sw) / BN), ceil(Cg / BM),
//     groups*sh*sw); taps (T, 4) sorted by phase, phase_start (sh*sw + 1) ---------------
extern "C" __global__ void __launch_bounds__(256, 1) conv_input_grad_m128_f32(
    const float* grad_y, const float* weight, const int* taps, const int* phase_start,
    float* grad_x, int batch, int channels, int height, int width, int out_channels,
    int out_height, int out_width, int kernel_h, int kernel_w, int groups, int stride_h,
    int stride_w, int pad_top, int pad_left)
{
    conv::conv_input_grad<float, 8, 8>(grad_y, weight, taps, phase_start, grad_x, batch,
                                       channels, height, width, out_channels, out_height,
                                       out_width, kernel_h, kernel_w, groups, stride_h,
                                       stride_w, pad_top, pad_left);
}

extern "C" __global__ void __launch_bounds__(256, 1) conv_input_grad_m128_f64(
    const double* grad_y, const double* weight, const int* taps, const int* phase_start,
    double* grad_x, int batch, int channels, int height, int width, int out_channels,
    int out_height, int out_width, int kernel_h, int kernel_w, int groups, int stride_h,
    int stride_w, int pad_top, int pad_left)
{
    conv::conv_input_grad<double, 8, 8>(grad_y, weight, taps, phase_start, grad_x, batch,
                                       channels, height, width, out_channels, out_height,
                                       out_width, kernel_h, kernel_w, groups, stride_h,
                                       stride_w, pad_top, pad_left);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_input_grad_m64_f32(
    const float* grad_y, const float* weight, const int* taps, const int* phase_start,
    float* grad_x, int batch, int channels, int height, int width, int out_channels,
    int out_height, int out_width, int kernel_h, int kernel_w, int groups, int stride_h,
    int stride_w, int pad_top, int pad_left)
{
    conv::conv_input_grad<float, 4, 4>(grad_y, weight, taps, phase_start, grad_x, batch,
                                          channels, height, width, out_channels, out_height,
                                          out_width, kernel_h, kernel_w, groups, stride_h,
                                          stride_w, pad_top, pad_left);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_input_grad_m64_f64(
    const double* grad_y, const double* weight, const int* taps, const int* phase_start,
    double* grad_x, int batch, int channels, int height, int width, int out_channels,
    int out_height, int out_width, int kernel_h, int kernel_w, int groups, int stride_h,
    int stride_w, int pad_top, int pad_left)
{
    conv::conv_input_grad<double, 4, 4>(grad_y, weight, taps, phase_start, grad_x, batch,
                                           channels, height, width, out_channels, out_height,
                                           out_width, kernel_h, kernel_w, groups, stride_h,
                                           stride_w, pad_top, pad_left);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_input_grad_m32_f32(
    const float* grad_y, const float* weight, const int* taps, const int* phase_start,
    float* grad_x, int batch, int channels, int height, int width, int out_channels,
    int out_height, int out_width, int kernel_h, int kernel_w, int groups, int stride_h,
    int stride_w, int pad_top, int pad_left)
{
    conv::conv_input_grad<float, 2, 8>(grad_y, weight, taps, phase_start, grad_x, batch,
                                          channels, height, width, out_channels, out_height,
                                          out_width, kernel_h, kernel_w, groups, stride_h,
                                          stride_w, pad_top, pad_left);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_input_grad_m32_f64(
    const double* grad_y, const double* weight, const int* taps, const int* phase_start,
    double* grad_x, int batch, int channels, int height, int width, int out_channels,
    int out_height, int out_width, int kernel_h, int kernel_w, int groups, int stride_h,
    int stride_w, int pad_top, int pad_left)
{
    conv::conv_input_grad<double, 2, 8>(grad_y, weight, taps, phase_start, grad_x, batch,
                                           channels, height, width, out_channels, out_height,
                                           out_width, kernel_h, kernel_w, groups, stride_h,
                                           stride_w, pad_top, pad_left);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_input_grad_m16_f32(
    const float* grad_y, const float* weight, const int* taps, const int* phase_start,
    float* grad_x, int batch, int channels, int height, int width, int out_channels,
    int out_height, int out_width, int kernel_h, int kernel_w, int groups, int stride_h,
    int stride_w, int pad_top, int pad_left)
{
    conv::conv_input_grad<float, 1, 8>(grad_y, weight, taps, phase_start, grad_x, batch,
                                           channels, height, width, out_channels, out_height,
                                           out_width, kernel_h, kernel_w, groups, stride_h,
                                           stride_w, pad_top, pad_left);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_input_grad_m16_f64(
    const double* grad_y, const double* weight, const int* taps, const int* phase_start,
    double* grad_x, int batch, int channels, int height, int width, int out_channels,
    int out_height, int out_width, int kernel_h, int kernel_w, int groups, int stride_h,
    int stride_w, int pad_top, int pad_left)
{
    conv::conv_input_grad<double, 1, 8>(grad_y, weight, taps, phase_start, grad_x, batch,
                                            channels, height, width, out_channels, out_height,
                                            out_width, kernel_h, kernel_w, groups, stride_h,
                                            stride_w, pad_top, pad_left);
}

// --- weight grad: grid (ceil(Cg*T / BN), ceil(Og / BM), groups*splits) writing
//     partial (splits, O, Cg*T); then conv_weight_grad_reduce over O*Cg*T elements ------
extern "C" __global__ void __launch_bounds__(256, 1) conv_weight_grad_m128_f32(
    const float* x, const float* grad_y, const int* taps, float* partial, int batch,
    int channels, int height, int width, int out_channels, int out_height, int out_width,
    int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left,
    int dilation_h, int dilation_w, int splits, long long split_columns)
{
    conv::conv_weight_grad<float, 8, 8>(x, grad_y, taps, partial, batch, channels, height,
                                        width, out_channels, out_height, out_width, n_taps,
                                        groups, stride_h, stride_w, pad_top, pad_left,
                                        dilation_h, dilation_w, splits, split_columns);
}

extern "C" __global__ void __launch_bounds__(256, 1) conv_weight_grad_m128_f64(
    const double* x, const double* grad_y, const int* taps, double* partial, int batch,
    int channels, int height, int width, int out_channels, int out_height, int out_width,
    int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left,
    int dilation_h, int dilation_w, int splits, long long split_columns)
{
    conv::conv_weight_grad<double, 8, 8>(x, grad_y, taps, partial, batch, channels, height,
                                        width, out_channels, out_height, out_width, n_taps,
                                        groups, stride_h, stride_w, pad_top, pad_left,
                                        dilation_h, dilation_w, splits, split_columns);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_weight_grad_m64_f32(
    const float* x, const float* grad_y, const int* taps, float* partial, int batch,
    int channels, int height, int width, int out_channels, int out_height, int out_width,
    int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left,
    int dilation_h, int dilation_w, int splits, long long split_columns)
{
    conv::conv_weight_grad<float, 4, 4>(x, grad_y, taps, partial, batch, channels, height,
                                           width, out_channels, out_height, out_width, n_taps,
                                           groups, stride_h, stride_w, pad_top, pad_left,
                                           dilation_h, dilation_w, splits, split_columns);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_weight_grad_m64_f64(
    const double* x, const double* grad_y, const int* taps, double* partial, int batch,
    int channels, int height, int width, int out_channels, int out_height, int out_width,
    int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left,
    int dilation_h, int dilation_w, int splits, long long split_columns)
{
    conv::conv_weight_grad<double, 4, 4>(x, grad_y, taps, partial, batch, channels, height,
                                            width, out_channels, out_height, out_width, n_taps,
                                            groups, stride_h, stride_w, pad_top, pad_left,
                                            dilation_h, dilation_w, splits, split_columns);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_weight_grad_m32_f32(
    const float* x, const float* grad_y, const int* taps, float* partial, int batch,
    int channels, int height, int width, int out_channels, int out_height, int out_width,
    int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left,
    int dilation_h, int dilation_w, int splits, long long split_columns)
{
    conv::conv_weight_grad<float, 2, 8>(x, grad_y, taps, partial, batch, channels, height,
                                           width, out_channels, out_height, out_width, n_taps,
                                           groups, stride_h, stride_w, pad_top, pad_left,
                                           dilation_h, dilation_w, splits, split_columns);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_weight_grad_m32_f64(
    const double* x, const double* grad_y, const int* taps, double* partial, int batch,
    int channels, int height, int width, int out_channels, int out_height, int out_width,
    int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left,
    int dilation_h, int dilation_w, int splits, long long split_columns)
{
    conv::conv_weight_grad<double, 2, 8>(x, grad_y, taps, partial, batch, channels, height,
                                            width, out_channels, out_height, out_width, n_taps,
                                            groups, stride_h, stride_w, pad_top, pad_left,
                                            dilation_h, dilation_w, splits, split_columns);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_weight_grad_m16_f32(
    const float* x, const float* grad_y, const int* taps, float* partial, int batch,
    int channels, int height, int width, int out_channels, int out_height, int out_width,
    int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left,
    int dilation_h, int dilation_w, int splits, long long split_columns)
{
    conv::conv_weight_grad<float, 1, 8>(x, grad_y, taps, partial, batch, channels, height,
                                            width, out_channels, out_height, out_width, n_taps,
                                            groups, stride_h, stride_w, pad_top, pad_left,
                                            dilation_h, dilation_w, splits, split_columns);
}

extern "C" __global__ void __launch_bounds__(256, 2) conv_weight_grad_m16_f64(
    const double* x, const double* grad_y, const int* taps, double* partial, int batch,
    int channels, int height, int width, int out_channels, int out_height, int out_width,
    int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left,
    int dilation_h, int dilation_w, int splits, long long split_columns)
{
    conv::conv_weight_grad<double, 1, 8>(x, grad_y, taps, partial, batch, channels,
                                             height, width, out_channels, out_height, out_width,
                                             n_taps, groups, stride_h, stride_w, pad_top,
                                             pad_left, dilation_h, dilation_w, splits,
                                             split_columns);
}

// --- weight grad, second pass: grid-stride over O*Cg*T elements -------------------------
extern "C" __global__ void conv_weight_grad_reduce_f32(
    const float* partial, const int* taps, float* grad_w, int splits, int out_channels,
    int in_per_group, int kernel_h, int kernel_w, int n_taps)
{
    conv::conv_weight_grad_reduce<float>(partial, taps, grad_w, splits, out_channels,
                                            in_per_group, kernel_h, kernel_w, n_taps);
}

extern "C" __global__ void conv_weight_grad_reduce_f64(
    const double* partial, const int* taps, double* grad_w, int splits, int out_channels,
    int in_per_group, int kernel_h, int kernel_w, int n_taps)
{
    conv::conv_weight_grad_reduce<double>(partial, taps, grad_w, splits, out_channels,
                                             in_per_group, kernel_h, kernel_w, n_taps);
}
