// Convolution family: conv2d forward, input gradient (= conv_transpose2d) and weight
// gradient over a list of kernel taps, as implicit GEMMs with shared-memory tiling.
//
// What is computed is tinygen/backend/reference/conv.py (read it first); the Python side
// that chooses tiles and grids and builds the tap tables is
// tinygen/backend/cuda_kernels/conv.py.
//
// One mechanism for every convolution.  A kernel never sees a mask: it gets the list of
// taps (i, j) to iterate, so a dense 3x3 conv passes all 9 taps and a 7x7 PixelCNN mask A
// passes the 24 it keeps -- masked taps are never loaded or multiplied.  The gated
// PixelCNN stacks (shifted kernels), RGB-grouped masks (a partly kept centre tap whose
// weight the caller zeroed), 1-D convs and WaveNet's dilated causal conv1d (height-1
// geometry, padding on the left only) are all just geometries + tap lists.
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
//                 the reduction runs over N*P columns: split, deterministic (below)
//
// The main loop (gemm_main_loop) -- what bounds the speed, so it is built for the FMA
// pipes rather than for shared memory or instruction issue:
//   - a block of 256 threads owns a BM x BN tile; the threads form a kRows x kCols grid
//     (16 x 16 or 8 x 32), each thread a TM x TN register block: rows ty*TM .. +TM-1
//     (contiguous) and columns in runs of 16 bytes, (kCols*v + tx)*V .. +V-1
//     (V = 16 / sizeof(T)), so every K step it reads its A rows and B columns with
//     16-byte shared loads (LDS.128);
//   - a warp is 4 x 8 threads of that grid: per load its 32 threads touch at most 128
//     distinct bytes (4 A runs, 8 B runs, the rest broadcast);
//   - K is walked in slices of kSlice (64 bytes of k: 16 floats, 8 doubles) through two
//     shared buffers: the next slice is gathered from global memory into registers while
//     this one is multiplied, then stored into the other buffer; one barrier per slice;
//   - the tap table (per tap: the input offsets and the weight offset it needs) is
//     copied into shared memory once per block; offsets are 32-bit (the host refuses
//     arrays of 2^31 elements or more);
//   - rows past M are clamped onto row M-1 (loaded, never stored: no test per element)
//     and columns past the end get an input position that fails the bounds test, so
//     no size needs to be a multiple of a tile.
// Per K slice a thread issues TM*TN*kSlice FMAs, kSlice*(ceil(TM/V) + TN/V) shared
// loads, and gathers (BM + BN)*kSlice/256 elements.  Tiles: m128 = 128x128 (8x8 on
// 16 x 16) for large M, m64 = 64x256 (8x8 on 8 x 32) for the 64-channel layers.  8x8
// blocks need 4 LDS.128 per 64 FMAs: the shared-memory pipe keeps up even if each
// 16-byte load costs 4 wavefronts.  benchmarks/results/static-sm90.md has the
// instruction mix (ceilings of a model: no GPU timing exists).
//
// GEMMs with at most 32 rows skip it: a thread's register block would be 2x8 or 4x8
// (the m16 / m32 tiles once: 36% / 60% of the FMA peak on paper) and every gathered
// im2col element would serve only 16 or 32 FMAs.  Forwards and input gradients take the
// halo tile (conv_halo, below; a strided conv one stride phase at a time), weight
// gradients the halo weight gradient (conv_weight_grad_halo), C = 1 forwards the direct
// kernel (conv_forward_direct) and C = 1 input gradients of dense 4x4 stride-2 convs
// conv_input_grad_c1.
//
// Split K.  When a GEMM has too few tiles to fill the GPU, the host cuts K into
// `splits` ranges (blockIdx.z = g * splits + s): split s writes its partial result to
// out + s * out_count and conv_split_sum adds the partials in split order -- two passes,
// no atomics, bit-for-bit deterministic.
//
// Shared tiles have 16 bytes of padding per k row: the threads that store a slice walk
// down k, and rows of a multiple of 32 words would put them all in one bank.
#include "common.cuh"

namespace conv {

constexpr int kThreads = 256;       // blockDim.x
constexpr int kMaxTaps = 32;        // taps per forward / input-gradient launch: a bit each

// The shape of one tile of type T: the 256 threads form a kRows x kCols grid, each
// thread a TM x TN register block.
template <typename T, int TM_, int TN_, int kRows_>
struct Tile {
    static constexpr int TM = TM_, TN = TN_, kRows = kRows_, kCols = kThreads / kRows_;
    static constexpr int BM = kRows * TM, BN = kCols * TN;
    static constexpr int kSlice = 64 / (int)sizeof(T);  // K per shared buffer: 16 f32, 8 f64
    static constexpr int V = 16 / (int)sizeof(T);       // elements per 16-byte shared load
    static constexpr int kLanes = kThreads / kSlice;    // threads per k of a slice
    // Elements each thread gathers per slice: A (k = tid % kSlice, rows tid / kSlice +
    // kLanes * r), B (same for k-fastest B; column-fastest B: k = tid / kLanes,
    // columns tid % kLanes + kLanes * r).
    static constexpr int kALoads = (BM * kSlice + kThreads - 1) / kThreads;
    static constexpr int kBLoads = BN * kSlice / kThreads;
    static_assert(BN * kSlice % kThreads == 0, "B slices must split evenly over the block");
    static_assert(TN % V == 0, "B register runs are 16 bytes");
    static_assert(kRows % 4 == 0 && kCols % 8 == 0, "warps are 4 x 8 threads of the grid");
};

// A run of N elements that one shared-memory load instruction moves.
template <typename T, int N>
struct alignas(sizeof(T) * N) Run {
    T v[N];
};

// out[0..N) = p[0..N), p aligned to min(N, V) elements, in 16-byte (or smaller) loads.
template <typename T, int N>
__device__ __forceinline__ void load_runs(const T* p, T* out)
{
    constexpr int W = N * (int)sizeof(T) < 16 ? N : 16 / (int)sizeof(T);
#pragma unroll
    for (int c = 0; c < N / W; ++c) {
        const Run<T, W> r = reinterpret_cast<const Run<T, W>*>(p)[c];
#pragma unroll
        for (int e = 0; e < W; ++e) out[c * W + e] = r.v[e];
    }
}

// v, which the compiler may no longer recompute from its parts: without this it rebuilds
// the weight gradient's slice offset inside every predicated load (5 instructions each).
// An empty asm statement; g++ (the emulator) accepts the same syntax.
__device__ __forceinline__ unsigned computed_once(unsigned v)
{
    asm("" : "+r"(v));
    return v;
}

// This thread's place in the kRows x kCols grid: a warp is 4 rows x 8 columns of it,
// the warps of a row side by side.
template <typename S>
__device__ __forceinline__ int thread_row()
{
    const int tid = (int)threadIdx.x;
    return 4 * (tid / (4 * S::kCols)) + (tid % 32) / 8;
}

template <typename S>
__device__ __forceinline__ int thread_col()
{
    const int tid = (int)threadIdx.x;
    return 8 * ((tid / 32) % (S::kCols / 8)) + tid % 8;
}

// The tile column of this thread's register column j: runs of V, kCols * V apart.
template <typename S>
__device__ __forceinline__ int register_col(int j)
{
    return (S::kCols * (j / S::V) + thread_col<S>()) * S::V + j % S::V;
}

// k = outer * n_taps + tap, moved forward kSlice at a time without a division.
template <int kStep>
struct TapCounter {
    int outer, tap, n_taps, step_outer, step_tap;

    __device__ void start(int k, int taps_per_outer)
    {
        n_taps = taps_per_outer;
        outer = k / taps_per_outer;
        tap = k - outer * taps_per_outer;
        step_outer = kStep / taps_per_outer;
        step_tap = kStep - step_outer * taps_per_outer;
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

// The block's tap table (rows of 4 ints, at most kMaxTaps rows: the host cuts longer
// tap lists into launches of kMaxTaps) copied into shared memory.  Every thread must
// call it: it ends with a barrier.
__device__ __forceinline__ const int* shared_tap_table(const int* table, int n_taps)
{
    __shared__ int copy[4 * kMaxTaps];
    for (int e = (int)threadIdx.x; e < 4 * n_taps; e += kThreads) copy[e] = table[e];
    __syncthreads();
    return copy;
}

// ---------------------------------------------------------------------------------------
// The GEMM main loop shared by the three kernels.  Operands gathers one K slice into
// registers (fetch), moves to the next one (advance), and says how its B slice is laid
// out over the threads (kBColumnFastest, see Tile).
// ---------------------------------------------------------------------------------------
template <typename S, typename T>
__device__ __forceinline__ void store_slice(T (*a_tile)[S::BM + S::V], T (*b_tile)[S::BN + S::V],
                                            const T (&a)[S::kALoads], const T (&b)[S::kBLoads],
                                            bool b_column_fastest)
{
    const int tid = (int)threadIdx.x;
#pragma unroll
    for (int r = 0; r < S::kALoads; ++r) {
        const int row = tid / S::kSlice + S::kLanes * r;
        if (S::BM * S::kSlice >= kThreads || row < S::BM) a_tile[tid % S::kSlice][row] = a[r];
    }
#pragma unroll
    for (int r = 0; r < S::kBLoads; ++r) {
        if (b_column_fastest)
            b_tile[tid / S::kLanes][tid % S::kLanes + S::kLanes * r] = b[r];
        else
            b_tile[tid % S::kSlice][tid / S::kSlice + S::kLanes * r] = b[r];
    }
}

template <typename S, typename T, typename Operands>
__device__ void gemm_main_loop(Operands& ops, int k_count, T (&acc)[S::TM][S::TN])
{
    constexpr int KS = S::kSlice;
    struct alignas(16) Buffers {  // 16-byte rows for the 16-byte loads
        T a[2][KS][S::BM + S::V];
        T b[2][KS][S::BN + S::V];
    };
    __shared__ Buffers tiles;
    T (*const a_tile)[KS][S::BM + S::V] = tiles.a;
    T (*const b_tile)[KS][S::BN + S::V] = tiles.b;
    const int row0 = thread_row<S>() * S::TM;
    const int col0 = thread_col<S>() * S::V;

#pragma unroll
    for (int i = 0; i < S::TM; ++i)
#pragma unroll
        for (int j = 0; j < S::TN; ++j) acc[i][j] = T(0);
    if (k_count <= 0) return;  // block-uniform

    T a_next[S::kALoads], b_next[S::kBLoads];
    ops.fetch(a_next, b_next);
    store_slice<S>(a_tile[0], b_tile[0], a_next, b_next, Operands::kBColumnFastest);
    __syncthreads();
    int buffer = 0;
    for (int k0 = 0; k0 < k_count; k0 += KS) {
        const bool more = k0 + KS < k_count;  // block-uniform
        if (more) {  // gather the next slice while this one is multiplied
            ops.advance();
            ops.fetch(a_next, b_next);
        }
#pragma unroll
        for (int kk = 0; kk < KS; ++kk) {
            T a[S::TM], b[S::TN];
            load_runs<T, S::TM>(&a_tile[buffer][kk][row0], a);
#pragma unroll
            for (int v = 0; v < S::TN / S::V; ++v)
                load_runs<T, S::V>(&b_tile[buffer][kk][col0 + S::kCols * S::V * v], b + S::V * v);
#pragma unroll
            for (int i = 0; i < S::TM; ++i)
#pragma unroll
                for (int j = 0; j < S::TN; ++j) acc[i][j] += a[i] * b[j];
        }
        // The other buffer was last read before the previous barrier: free to fill.
        if (more)
            store_slice<S>(a_tile[buffer ^ 1], b_tile[buffer ^ 1], a_next, b_next,
                           Operands::kBColumnFastest);
        __syncthreads();
        buffer ^= 1;
    }
}

// ---------------------------------------------------------------------------------------
// The B gather of the forward and input-gradient GEMMs: B[(outer, t), col] =
// src[col_off + outer * plane + tab[t].off] where the source position (h + tab[t].dh,
// w + tab[t].dw) of column col lies inside the source plane, else 0.  Column-fastest:
// this thread gathers one k (kb) for columns tid % kLanes + kLanes * r.  Which taps
// are inside is worked out once per column (a bit per tap, at most kMaxTaps taps a
// launch), so the gather tests one bit per element instead of two ranges.
// ---------------------------------------------------------------------------------------
template <typename S, typename T>
struct ColumnGather {
    const T* src;
    int plane, outer_count;
    int bias;  // added to every col_off to make it >= 0: pad_top * width + pad_left
    int col_off[S::kBLoads];
    unsigned inside[S::kBLoads];  // bit t: tap t of this column reads inside the plane
    TapCounter<S::kSlice> kb;

    // Column r of this thread reads (h, w) + (dh, dw) of each tap in image_off's plane
    // of height x width; an invalid column reads nothing.
    __device__ void set_column(const int* tab, int n_taps, int r, bool valid, int image_off,
                               int h, int w, int height, int width)
    {
        unsigned bits = 0;
        for (int t = 0; valid && t < n_taps; ++t) {
            const bool in = (unsigned)(h + tab[4 * t]) < (unsigned)height
                            && (unsigned)(w + tab[4 * t + 1]) < (unsigned)width;
            bits |= (unsigned)in << t;
        }
        inside[r] = bits;
        col_off[r] = valid ? image_off + h * width + w + bias : 0;
    }

    __device__ void fetch(const int* tab, T (&b)[S::kBLoads]) const
    {
        const unsigned bit = kb.outer < outer_count ? 1u << kb.tap : 0u;
                const unsigned base = (unsigned)(kb.outer * plane + tab[4 * kb.tap + 2] - bias);
#pragma unroll
        for (int r = 0; r < S::kBLoads; ++r)
            b[r] = (inside[r] & bit) ? src[(unsigned)col_off[r] + base] : T(0);
    }
};

// The A gather of the forward and input-gradient GEMMs: A[row, (outer, t)] =
// w[row_off[r] + outer * outer_stride + tab[t].w].  Past the end of K (outer >=
// outer_count) it reads the last outer's weights instead: finite, inside the array, at
// a kept tap, and multiplied by B = 0 there -- no test per element.
template <typename S, typename T>
struct WeightGather {
    const T* w;
    int outer_stride, outer_count;
    int row_off[S::kALoads];
    TapCounter<S::kSlice> ka;

    __device__ void fetch(const int* tab, T (&a)[S::kALoads]) const
    {
        const unsigned base =
            (unsigned)(min(ka.outer, outer_count - 1) * outer_stride + tab[4 * ka.tap + 3]);
#pragma unroll
        for (int r = 0; r < S::kALoads; ++r) a[r] = w[(unsigned)row_off[r] + base];
    }
};

template <typename S, typename T>
struct TapOperands {
    static constexpr bool kBColumnFastest = true;
    const int* tab;
    WeightGather<S, T> a;
    ColumnGather<S, T> b;

    __device__ void fetch(T (&av)[S::kALoads], T (&bv)[S::kBLoads]) const
    {
        a.fetch(tab, av);
        b.fetch(tab, bv);
    }

    __device__ void advance()
    {
        a.ka.advance();
        b.kb.advance();
    }
};

// Where this block's split of K starts, and how many k it covers.
__device__ __forceinline__ void split_range(int k_total, int split_k, int s, int& k_begin,
                                            int& k_count)
{
    k_begin = s * split_k;
    k_count = min(k_total - k_begin, split_k);
    if (k_count < 0) k_count = 0;
}

// ---------------------------------------------------------------------------------------
// Forward: A = W_g restricted to the taps (Og x Cg*T), B = the implicit im2col X_g.
// tab rows: (i*dh, j*dw, i*dh*W + j*dw, i*kw + j).
// ---------------------------------------------------------------------------------------
template <typename T, int TM, int TN, int kRows>
__device__ void conv_forward(const T* x, const T* w, const int* taps, T* y, int batch,
                             int channels, int height, int width, int out_channels,
                             int out_height, int out_width, int kernel_h, int kernel_w,
                             int n_taps, int groups, int stride_h, int stride_w, int pad_top,
                             int pad_left, int splits, int split_k)
{
    using S = Tile<T, TM, TN, kRows>;
    const int tid = (int)threadIdx.x;
    const int g = (int)blockIdx.z / splits, s = (int)blockIdx.z - g * splits;
    const int in_per_group = channels / groups, out_per_group = out_channels / groups;
    const int m0 = (int)blockIdx.y * S::BM, n0 = (int)blockIdx.x * S::BN;
    const int plane_out = out_height * out_width, plane_in = height * width;
    const int columns = batch * plane_out;
    const int kernel_area = kernel_h * kernel_w;
    int k_begin, k_count;
    split_range(in_per_group * n_taps, split_k, s, k_begin, k_count);

    TapOperands<S, T> ops;
    ops.tab = shared_tap_table(taps, n_taps);
    ops.a.w = w;
    ops.a.outer_stride = kernel_area;
    ops.a.outer_count = in_per_group;
#pragma unroll
    for (int r = 0; r < S::kALoads; ++r) {
        const int m = min(m0 + tid / S::kSlice + S::kLanes * r, out_per_group - 1);
        ops.a.row_off[r] = (g * out_per_group + m) * in_per_group * kernel_area;
    }
    ops.b.src = x;
    ops.b.bias = pad_top * width + pad_left;  // h >= -pad_top, w >= -pad_left
    ops.b.plane = plane_in;
    ops.b.outer_count = in_per_group;
#pragma unroll
    for (int r = 0; r < S::kBLoads; ++r) {
        const int col = n0 + tid % S::kLanes + S::kLanes * r;
        const int n = col / plane_out, pix = col - (col / plane_out) * plane_out;
        const int p = pix / out_width, q = pix - (pix / out_width) * out_width;
        ops.b.set_column(ops.tab, n_taps, r, col < columns,
                         (n * channels + g * in_per_group) * plane_in, p * stride_h - pad_top,
                         q * stride_w - pad_left, height, width);
    }
    if (k_count > 0) {
        ops.a.ka.start(k_begin + tid % S::kSlice, n_taps);
        ops.b.kb.start(k_begin + tid / S::kLanes, n_taps);
    }

    T acc[TM][TN];
    gemm_main_loop<S>(ops, k_count, acc);

    T* out = y + (long long)s * batch * out_channels * plane_out;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int col = n0 + register_col<S>(j);
        if (col >= columns) continue;
        const int n = col / plane_out, pix = col - (col / plane_out) * plane_out;
        const int base = (n * out_channels + g * out_per_group) * plane_out + pix;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int m = m0 + thread_row<S>() * TM + i;
            if (m < out_per_group) out[base + m * plane_out] = acc[i][j];
        }
    }
}

// ---------------------------------------------------------------------------------------
// Forward with one input channel per group (C = 1 first layers, depthwise convs): K is
// just the taps (24 for a 7x7 mask A), too short for the GEMM's slices, prologue and
// epilogue to pay off.  Direct instead: a block owns 256 * kRuns runs of V = 16 /
// sizeof(T) consecutive output pixels and kDirectOuts output channels of group g =
// blockIdx.z.  Each thread gathers the kTaps inputs of each of its kRuns * V pixels
// once, into registers; the block's weights (kept taps only, zero past n_taps) sit in
// shared memory; then per output channel a thread does kRuns * V * kTaps FMAs for
// kTaps / V 16-byte shared loads (the same address for the whole block: a broadcast)
// and kRuns 16-byte stores -- with a store per pixel, address and test included, a
// t8 loop would spend a third of its instructions storing.  The host guarantees
// Hout*Wout % V == 0 (a run never straddles two images and its store is aligned);
// other sizes take the halo tile or the GEMM.  kTaps is 9 for 9 taps (a 3x3 first layer:
// t16 would spend 7 of its 16 FMAs a pixel on zero taps), else n_taps rounded up to a
// multiple of 8; a block's weight rows are kRow = kTaps rounded up to 4 long (whole
// 16-byte runs in float and double), the taps past kTaps zero and never multiplied.
// ---------------------------------------------------------------------------------------
constexpr int kDirectOuts = 32;  // output channels per block (blockIdx.y)

template <typename T, int kTaps, int kRuns>
__device__ void conv_forward_direct(const T* x, const T* w, const int* taps, T* y, int batch,
                                    int channels, int height, int width, int out_channels,
                                    int out_height, int out_width, int kernel_h, int kernel_w,
                                    int n_taps, int groups, int stride_h, int stride_w,
                                    int pad_top, int pad_left)
{
    static_assert(kTaps >= 1 && kTaps <= kMaxTaps, "kTaps: 1 to 32");
    constexpr int V = 16 / (int)sizeof(T);  // pixels per run: one 16-byte store
    constexpr int kRow = (kTaps + 3) / 4 * 4;  // a weight row: whole 16-byte runs
    struct alignas(16) Weights {
        T v[kDirectOuts][kRow];
    };
    __shared__ Weights weights;
    const int tid = (int)threadIdx.x;
    const int g = (int)blockIdx.z, o0 = (int)blockIdx.y * kDirectOuts;
    const int out_per_group = out_channels / groups;
    const int plane_out = out_height * out_width, plane_in = height * width;
    const int columns = batch * plane_out;
    const int* tab = shared_tap_table(taps, n_taps);  // ends with a barrier

    for (int e = tid; e < kDirectOuts * kRow; e += kThreads) {
        const int o = e / kRow, t = e - (e / kRow) * kRow;
        const bool ok = o0 + o < out_per_group && t < n_taps;
        weights.v[o][t] =
            ok ? w[(g * out_per_group + o0 + o) * kernel_h * kernel_w + tab[4 * t + 3]] : T(0);
    }
    T xv[kRuns][V][kTaps];
    int out_off[kRuns];  // of y[n, g*Og + o0, pix] for the run's first pixel; -1: no run
#pragma unroll
    for (int k = 0; k < kRuns; ++k) {
        const int col0 = ((int)blockIdx.x * kThreads * kRuns + tid + kThreads * k) * V;
        const bool valid = col0 < columns;  // the whole run: columns % V == 0
        const int n = col0 / plane_out, pix0 = col0 - (col0 / plane_out) * plane_out;
#pragma unroll
        for (int e = 0; e < V; ++e) {
            const int pix = pix0 + e;
            const int h = (pix / out_width) * stride_h - pad_top;
            const int wc = (pix - (pix / out_width) * out_width) * stride_w - pad_left;
            const int image = (n * channels + g) * plane_in + h * width + wc;
#pragma unroll
            for (int t = 0; t < kTaps; ++t) {
                const bool in = valid && t < n_taps
                                && (unsigned)(h + tab[4 * t]) < (unsigned)height
                                && (unsigned)(wc + tab[4 * t + 1]) < (unsigned)width;
                xv[k][e][t] = in ? x[image + tab[4 * t + 2]] : T(0);
            }
        }
        out_off[k] = valid ? (n * out_channels + g * out_per_group + o0) * plane_out + pix0 : -1;
    }
    __syncthreads();  // the weights are in

    const int o_count = min(kDirectOuts, out_per_group - o0);
    T* out = y;  // moved one output plane per output channel
    for (int o = 0; o < o_count; ++o, out += plane_out) {
        T wv[kRow];  // the last kRow - kTaps are zeros the FMAs skip
        load_runs<T, kRow>(&weights.v[o][0], wv);
#pragma unroll
        for (int k = 0; k < kRuns; ++k) {
            Run<T, V> run;
#pragma unroll
            for (int e = 0; e < V; ++e) {
                T acc = T(0);
#pragma unroll
                for (int t = 0; t < kTaps; ++t) acc += wv[t] * xv[k][e][t];
                run.v[e] = acc;
            }
            if (out_off[k] >= 0) *reinterpret_cast<Run<T, V>*>(out + (unsigned)out_off[k]) = run;
        }
    }
}

// Runs of 16 bytes per thread of the direct kernel: as many as keep its inputs within
// 128 registers, at most 2.
template <typename T, int kTaps>
struct DirectRuns {
    static constexpr int words = kTaps * 16 / 4;  // registers of one run's inputs
    static constexpr int value = 128 / words >= 2 ? 2 : 1;
};

// ---------------------------------------------------------------------------------------
// Input gradient with one input channel per group, dense K x K kernel, stride S, K = S*P
// (conv_input_grad_c1_k4s2: the 4x4 stride-2 first layer of the GAN critic, whose input
// gradient WGAN-GP's penalty needs).  The GEMM has one row here (Cg = 1): every gathered
// grad_y element would serve one FMA.  Instead a thread owns a gx tile of S rows x S*TQ
// columns (all S*S stride phases) and, per output channel o, holds the P rows x (TQ + P
// - 1) grad_y values that tile reads in registers: each serves up to K*K FMAs there.
//
// The tile: gx rows h = h_base + S*ty + a (a < S), columns w = w_base + S*(TQ*tx + m) + b
// (b < S, m < TQ), with h_base = S*floor(pt/S) - pt, so that h + pt = S*(P0 + ty) + a.
// Tap (i, j) = (a + S*k, b + S*l) (k, l < P) of row a, column b reads grad_y row
// P0 + ty - k, column Q0 + TQ*tx + m - l: the same P rows for every a, and TQ + P - 1
// columns for all (m, l).  grad_y comes padded by the host (conv.py) into gyp of
// padded_h x padded_w per plane, gyp[r, c] = grad_y[r + P0 - (P-1), c + Q0 - (P-1)]
// (zero outside), so window row k of tile (ty, tx) is gyp row ty + P - 1 - k, columns
// TQ*tx .. + WINW - 1: inside gyp, 16-byte aligned, no test per element (padded_w and
// TQ are multiples of 16 bytes).
//
// The block's weights (kC1Outs output channels x K*K, contiguous in w) are staged in
// shared memory and read with the same address by every thread (a broadcast).  Per o a
// thread issues P*WINW/V 16-byte global loads, K*K/V shared loads and S*S*TQ*P*P FMAs
// (f32: 10, 4 and 256).  blockIdx.y splits the output channels (partials summed in order
// by conv_split_sum: deterministic); blockIdx.z is the group (= the gx channel).
// ---------------------------------------------------------------------------------------
constexpr int kC1Outs = 32;  // output channels whose weights a block stages at a time

// Columns per phase of a thread's tile: 64 bytes (16 floats, 8 doubles).
template <typename T>
struct C1Cols {
    static constexpr int value = 64 / (int)sizeof(T);
};

template <typename T, int S, int P, int TQ>
__device__ void conv_input_grad_c1(const T* gyp, const T* w, T* grad_x, int batch, int groups,
                                   int out_per_group, int height, int width, int tiles_h,
                                   int tiles_w, int padded_h, int padded_w, int h_base,
                                   int w_base, int split_o)
{
    constexpr int K = S * P, KK = K * K;
    constexpr int V = 16 / (int)sizeof(T);
    constexpr int WINW = (TQ + P - 1 + V - 1) / V * V;  // window columns, whole runs
    static_assert(TQ % V == 0, "a window row starts on a 16-byte boundary");
    struct alignas(16) Weights {
        T v[kC1Outs][KK];
    };
    __shared__ Weights weights;
    const int tid = (int)threadIdx.x;
    const int g = (int)blockIdx.z, s = (int)blockIdx.y;
    const int o_begin = s * split_o, o_end = min(out_per_group, o_begin + split_o);
    const int per_image = tiles_h * tiles_w;
    const int tile = (int)blockIdx.x * kThreads + tid;
    const bool valid = tile < batch * per_image;
    const int t = valid ? tile : 0;  // a thread past the tiles reads tile 0, stores nothing
    const int n = t / per_image, rem = t - (t / per_image) * per_image;
    const int ty = rem / tiles_w, tx = rem - (rem / tiles_w) * tiles_w;
    const unsigned plane = (unsigned)(padded_h * padded_w);
    // gyp[n, g*Og + o_begin] at window row 0 (gyp row ty + P - 1), column TQ*tx
    const unsigned base =
        (unsigned)(n * groups * out_per_group + g * out_per_group + o_begin) * plane
        + (unsigned)((ty + P - 1) * padded_w + TQ * tx);

    T acc[S][S][TQ];
#pragma unroll
    for (int a = 0; a < S; ++a)
#pragma unroll
        for (int b = 0; b < S; ++b)
#pragma unroll
            for (int m = 0; m < TQ; ++m) acc[a][b][m] = T(0);

    const T* src = gyp + base;  // moved one gyp plane per output channel
    for (int o0 = o_begin; o0 < o_end; o0 += kC1Outs) {  // block-uniform
        const int count = min(kC1Outs, o_end - o0);
        __syncthreads();  // every thread is done with the previous chunk's weights
        T* flat = &weights.v[0][0];
        const T* chunk = w + (long long)(g * out_per_group + o0) * KK;
        for (int e = tid; e < count * KK; e += kThreads) flat[e] = chunk[e];
        __syncthreads();
        for (int o = 0; o < count; ++o, src += plane) {
            T wv[KK];
            load_runs<T, KK>(&weights.v[o][0], wv);
#pragma unroll
            for (int k = 0; k < P; ++k) {
                T win[WINW];
                load_runs<T, WINW>(src - k * padded_w, win);
#pragma unroll
                for (int a = 0; a < S; ++a)
#pragma unroll
                    for (int b = 0; b < S; ++b)
#pragma unroll
                        for (int l = 0; l < P; ++l)
#pragma unroll
                            for (int m = 0; m < TQ; ++m)
                                acc[a][b][m] += wv[(a + S * k) * K + b + S * l] * win[m - l + P - 1];
            }
        }
    }

    if (!valid) return;
    T* out = grad_x + (long long)s * batch * groups * height * width
             + (long long)(n * groups + g) * height * width;
#pragma unroll
    for (int a = 0; a < S; ++a) {
        const int h = h_base + S * ty + a;
        if ((unsigned)h >= (unsigned)height) continue;
#pragma unroll
        for (int b = 0; b < S; ++b)
#pragma unroll
            for (int m = 0; m < TQ; ++m) {
                const int wc = w_base + S * (TQ * tx + m) + b;
                if ((unsigned)wc < (unsigned)width) out[h * width + wc] = acc[a][b][m];
            }
    }
}

// ---------------------------------------------------------------------------------------
// Halo tile: stride-1 convolutions with few GEMM rows (M <= 32).  A strided conv comes
// here one stride phase at a time (conv.py): its forward as the sum over the phases
// x[ph::sh, pw::sw] of stride-1 convs with the taps that land on each, its input
// gradient as one stride-1 conv of grad_y per phase of grad_x's rows and columns.
//
// With few rows the GEMM's register block is short (2 or 4 rows a thread), so every FMA
// needs more shared-memory bytes than the pipe delivers, and each gathered im2col element
// serves only BM FMAs for an address, a bounds test, a global load and a shared store.
// With stride 1 every tap reads the source at a constant offset in a raster, so the block
// loads the source patch ONCE per source channel (its halo included) and every tap reads
// it at its own offset -- the im2col matrix is never built.
//
// The raster: destination (p, q) of image n reads source (p + a_t, q + b_t) at tap t
// (forward: a_t = i*dh - pt; input gradient: a_t = pt - i*dh, likewise b_t).  Rows and
// columns are laid out with raster_w = Wd + max b - min b columns and raster_h = Hd +
// max a - min a rows per image, raster (r, s) holding source (r + min a, s + min b) (zero
// outside the source), images one after another: position u = (n*raster_h + r)*raster_w
// + s.  Destination (p, q) of image n sits at u = (n*raster_h + p)*raster_w + q and reads
// tap t at u + off_t, off_t = (a_t - min a)*raster_w + b_t - min b, never leaving its
// image.  Positions with p >= Hd or q >= Wd compute values nobody stores (a few rows and
// columns of padding per image).
//
// A block owns BM destination channels x kPixels raster positions; its threads form
// BM / TM channel groups of kPixThreads, each thread TM channels x TN positions
// pt + kPixThreads * e (a warp reads 32 consecutive words: no bank conflicts; its weights
// are one broadcast address).  Per source channel (the K loop): the halo (kPixels +
// reach positions) and the BM x T weights go into shared memory, double buffered like
// the GEMM's slices, one barrier per channel; then per tap a thread reads TM weights
// (LDS.128) and TN source values and does TM*TN FMAs -- 16 x 8 per tap for float:
// 0.19 shared words per FMA, and 86% of the tap loop's instructions FMAs (unrolled by two).
// ---------------------------------------------------------------------------------------
template <typename T, int BM_, int TM_, int TN_>
struct HaloTile {
    static constexpr int BM = BM_, TM = TM_, TN = TN_;
    static constexpr int V = 16 / (int)sizeof(T);
    static constexpr int kPixThreads = kThreads * TM / BM;  // threads per channel group
    static constexpr int kPixels = kPixThreads * TN;        // raster positions per block
    static constexpr int kHalo = 2 * kPixels;  // positions in shared memory: reach <= kPixels
    static constexpr int kHaloLoads = kHalo / kThreads;
    static constexpr int kWeightLoads = (BM * kMaxTaps + kThreads - 1) / kThreads;
    static_assert(TM % V == 0 && kPixThreads % 32 == 0, "warps read one channel group");
};

// Rows of a thread's register block in the halo tile: 16 floats (16 x 8 accumulators),
// 8 doubles (the same 128 registers).
template <typename T>
struct HaloRows {
    static constexpr int value = sizeof(T) == 4 ? 16 : 8;
};

template <typename T, int BM, int TM, int TN>
__device__ void conv_halo(const T* src, const T* w, const int* taps, T* dst, int batch,
                          int src_channels, int src_height, int src_width, int dst_channels,
                          int dst_height, int dst_width, int groups, int rows, int outer_count,
                          int kernel_area, int w_row_stride, int w_outer_stride, int n_taps,
                          int raster_h, int raster_w, int shift_h, int shift_w, int reach,
                          int splits, int split_outer)
{
    using S = HaloTile<T, BM, TM, TN>;
    struct alignas(16) Buffers {
        T halo[2][S::kHalo];
        T weights[2][kMaxTaps][BM];
    };
    __shared__ Buffers tiles;
    __shared__ int offsets[kMaxTaps];  // raster offset of each tap
    const int tid = (int)threadIdx.x;
    const int g = (int)blockIdx.z / splits, s = (int)blockIdx.z - g * splits;
    const int m0 = (int)blockIdx.y * BM;
    const int u0 = (int)blockIdx.x * S::kPixels;
    const int plane_src = src_height * src_width, plane_dst = dst_height * dst_width;
    const int raster_image = raster_h * raster_w;
    const int outer_begin = s * split_outer;
    const int outer_end = min(outer_count, outer_begin + split_outer);
    for (int t = tid; t < n_taps; t += kThreads) offsets[t] = taps[2 * t];

    // What this thread loads per source channel, fixed for the whole K loop: halo
    // position tid + kThreads * r (its offset in source channel 0 of group g, or -1 for
    // padding and past the reach) and weight (tap, row) tid + kThreads * r (its offset
    // in the weights of outer 0, or -1 past the taps).
    int src_off[S::kHaloLoads], w_off[S::kWeightLoads];
#pragma unroll
    for (int r = 0; r < S::kHaloLoads; ++r) {
        const int h = tid + kThreads * r, u = u0 + h;
        const int n = u / raster_image, rem = u - n * raster_image;
        const int sr = rem / raster_w + shift_h, sc = rem - (rem / raster_w) * raster_w + shift_w;
        const bool in = h < S::kPixels + reach && n < batch && (unsigned)sr < (unsigned)src_height
                        && (unsigned)sc < (unsigned)src_width;
        src_off[r] = in ? (n * src_channels + g * outer_count) * plane_src + sr * src_width + sc
                        : -1;
    }
#pragma unroll
    for (int r = 0; r < S::kWeightLoads; ++r) {
        const int e = tid + kThreads * r, t = e / BM, m = min(m0 + e % BM, rows - 1);
        w_off[r] = t < n_taps ? g * rows * outer_count * kernel_area
                                    + m * w_row_stride + taps[2 * t + 1]
                              : -1;
    }

    T halo_next[S::kHaloLoads], w_next[S::kWeightLoads];
    auto fetch = [&](int outer) {
#pragma unroll
        for (int r = 0; r < S::kHaloLoads; ++r)
            halo_next[r] = src_off[r] >= 0 ? src[src_off[r] + outer * plane_src] : T(0);
#pragma unroll
        for (int r = 0; r < S::kWeightLoads; ++r)
            w_next[r] = w_off[r] >= 0 ? w[w_off[r] + outer * w_outer_stride] : T(0);
    };
    auto store = [&](int buffer) {
#pragma unroll
        for (int r = 0; r < S::kHaloLoads; ++r) tiles.halo[buffer][tid + kThreads * r] = halo_next[r];
#pragma unroll
        for (int r = 0; r < S::kWeightLoads; ++r) {
            const int e = tid + kThreads * r;
            if (BM * kMaxTaps % kThreads == 0 || e < BM * kMaxTaps)
                tiles.weights[buffer][e / BM][e % BM] = w_next[r];
        }
    };

    const int group = tid / S::kPixThreads, pt = tid - group * S::kPixThreads;
    T acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
    if (outer_begin < outer_end) {  // block-uniform
        fetch(outer_begin);
        store(0);
        __syncthreads();
        int buffer = 0;
        for (int outer = outer_begin; outer < outer_end; ++outer) {
            const bool more = outer + 1 < outer_end;  // block-uniform
            if (more) fetch(outer + 1);  // gathered while this channel is multiplied
            const T* halo = &tiles.halo[buffer][pt];
#pragma unroll 2
            for (int t = 0; t < n_taps; ++t) {
                T a[TM], b[TN];
                load_runs<T, TM>(&tiles.weights[buffer][t][group * TM], a);
                const T* at = halo + offsets[t];
#pragma unroll
                for (int j = 0; j < TN; ++j) b[j] = at[S::kPixThreads * j];
#pragma unroll
                for (int i = 0; i < TM; ++i)
#pragma unroll
                    for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
            }
            // The other buffer was last read before the previous barrier: free to fill.
            if (more) store(buffer ^ 1);
            __syncthreads();
            buffer ^= 1;
        }
    }

    T* out = dst + (long long)s * batch * dst_channels * plane_dst;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int u = u0 + pt + S::kPixThreads * j;
        const int n = u / raster_image, rem = u - n * raster_image;
        const int p = rem / raster_w, q = rem - (rem / raster_w) * raster_w;
        if (n >= batch || p >= dst_height || q >= dst_width) continue;
        const int base = (n * dst_channels + g * rows) * plane_dst + p * dst_width + q;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int m = m0 + group * TM + i;
            if (m < rows) out[base + m * plane_dst] = acc[i][j];
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
// p = a_h - b_i, no division.  The host sorts the taps by phase into rows
// (-b_i, -b_j, -(b_i*Wout + b_j), i*kw + j) and passes where each phase's taps start.
// Every gx element belongs to exactly one (group, phase, column) and is written once
// (zero if its phase has no taps): no atomics.
//
// A = W_g^T restricted to the phase's taps (Cg x Og*Tph), B[(o, t), col] = grad_y gathered.
// ---------------------------------------------------------------------------------------
template <typename T, int TM, int TN, int kRows>
__device__ void conv_input_grad(const T* grad_y, const T* w, const int* taps,
                                const int* phase_start, T* grad_x, int batch, int channels,
                                int height, int width, int out_channels, int out_height,
                                int out_width, int kernel_h, int kernel_w, int groups,
                                int stride_h, int stride_w, int pad_top, int pad_left,
                                int splits, int split_k)
{
    using S = Tile<T, TM, TN, kRows>;
    const int tid = (int)threadIdx.x;
    const int phases = stride_h * stride_w;
    const int z = (int)blockIdx.z / splits, s = (int)blockIdx.z - z * splits;
    const int g = z / phases, phase = z - g * phases;
    const int ph = phase / stride_w, pw = phase - (phase / stride_w) * stride_w;
    // The first row/column of this phase and how many there are.
    const int h0 = ((ph - pad_top) % stride_h + stride_h) % stride_h;
    const int w0 = ((pw - pad_left) % stride_w + stride_w) % stride_w;
    const int rows = h0 < height ? (height - h0 + stride_h - 1) / stride_h : 0;
    const int cols = w0 < width ? (width - w0 + stride_w - 1) / stride_w : 0;
    const int plane_phase = rows * cols;
    const int columns = batch * plane_phase;
    const int n0 = (int)blockIdx.x * S::BN;
    if (n0 >= columns) return;  // the grid is sized for the largest phase (block-uniform)

    const int in_per_group = channels / groups, out_per_group = out_channels / groups;
    const int m0 = (int)blockIdx.y * S::BM;
    const int tap_begin = phase_start[phase];
    const int phase_taps = phase_start[phase + 1] - tap_begin;
    const int plane_out = out_height * out_width;
    const int kernel_area = kernel_h * kernel_w;
    const int a_h0 = (h0 + pad_top - ph) / stride_h, a_w0 = (w0 + pad_left - pw) / stride_w;
    int k_begin, k_count;
    split_range(out_per_group * phase_taps, split_k, s, k_begin, k_count);

    TapOperands<S, T> ops;
    ops.tab = shared_tap_table(taps + 4 * tap_begin, phase_taps);
    ops.a.w = w;
    ops.a.outer_stride = in_per_group * kernel_area;
    ops.a.outer_count = out_per_group;
#pragma unroll
    for (int r = 0; r < S::kALoads; ++r) {
        const int c = min(m0 + tid / S::kSlice + S::kLanes * r, in_per_group - 1);
        ops.a.row_off[r] = (g * out_per_group * in_per_group + c) * kernel_area;
    }
    ops.b.src = grad_y;
    ops.b.bias = 0;  // h = a_h0 + mh >= 0, w >= 0
    ops.b.plane = plane_out;
    ops.b.outer_count = out_per_group;
#pragma unroll
    for (int r = 0; r < S::kBLoads; ++r) {
        const int col = n0 + tid % S::kLanes + S::kLanes * r;
        const int n = col / plane_phase, pix = col - (col / plane_phase) * plane_phase;
        const int mh = pix / cols, mw = pix - (pix / cols) * cols;
        ops.b.set_column(ops.tab, phase_taps, r, col < columns,
                         (n * out_channels + g * out_per_group) * plane_out, a_h0 + mh,
                         a_w0 + mw, out_height, out_width);
    }
    if (k_count > 0) {  // a tap counter needs at least one tap
        ops.a.ka.start(k_begin + tid % S::kSlice, phase_taps);
        ops.b.kb.start(k_begin + tid / S::kLanes, phase_taps);
    }

    T acc[TM][TN];
    gemm_main_loop<S>(ops, k_count, acc);

    T* out = grad_x + (long long)s * batch * channels * height * width;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int col = n0 + register_col<S>(j);
        if (col >= columns) continue;
        const int n = col / plane_phase, pix = col - (col / plane_phase) * plane_phase;
        const int h = h0 + stride_h * (pix / cols);
        const int wc = w0 + stride_w * (pix - (pix / cols) * cols);
        const int base = ((n * channels + g * in_per_group) * height + h) * width + wc;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int c = m0 + thread_row<S>() * TM + i;
            if (c < in_per_group) out[base + c * height * width] = acc[i][j];
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
// A[col, o] = grad_y, B[col, (c, t)] = X_g, both k-fastest: this thread loads column
// k = tid % kSlice of every slice, (n, p, q) advanced by a mixed-radix counter.
//
// x comes padded by the host (conv.py; height and width are the padded plane's,
// pad_top = pad_left = 0), so every read of a column inside the split lies inside x and
// the B gather tests nothing: an element is an add, an address and a load.  With the
// bounds test (two adds, two compares and a zero per element) the m64 tile spent 301 of
// its 1325 loop instructions outside the FMAs; the pad is one pass over x, against
// O*T FMAs per element of x in this kernel.
// ---------------------------------------------------------------------------------------
template <typename S, typename T>
struct WeightGradOperands {
    static constexpr bool kBColumnFastest = false;
    const T* x;
    const T* grad_y;
    int width, out_height, out_width, stride_h, stride_w;
    int image_x, image_gy;  // per-image strides: C*H*W and O*Hout*Wout
    // The column this thread loads, as (n, p, q), and the step of kSlice columns in
    // that mixed radix (N, Hout, Wout).
    int col, col_end;
    int n, p, q, step_n, step_p, step_q;
    int gy_row[S::kALoads];     // offset of grad_y[0, g*Og + m] (m clamped into the group)
    int x_off[S::kBLoads];      // offset of x[0, g*Cg + c] + i*dh*W + j*dw; 0 for no (c, t)

    __device__ void fetch(T (&a)[S::kALoads], T (&b)[S::kBLoads]) const
    {
        // Past the split's end: A = 0, and B reads column 0 (inside the array) instead
        // of testing each element.
        const bool ok = col < col_end;
        const unsigned gy_at = (unsigned)(n * image_gy + p * out_width + q);
#pragma unroll
        for (int r = 0; r < S::kALoads; ++r)
            a[r] = ok ? grad_y[(unsigned)gy_row[r] + gy_at] : T(0);
        const unsigned x_at = computed_once(
            (unsigned)(ok ? n * image_x + p * stride_h * width + q * stride_w : 0));
#pragma unroll
        for (int r = 0; r < S::kBLoads; ++r) b[r] = x[(unsigned)x_off[r] + x_at];
    }

    __device__ void advance()
    {
        col += S::kSlice;
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

template <typename T, int TM, int TN, int kRows>
__device__ void conv_weight_grad(const T* x, const T* grad_y, const int* taps, T* partial,
                                 int batch, int channels, int height, int width,
                                 int out_channels, int out_height, int out_width, int n_taps,
                                 int groups, int stride_h, int stride_w, int pad_top,
                                 int pad_left, int dilation_h, int dilation_w, int splits,
                                 long long split_columns)
{
    using S = Tile<T, TM, TN, kRows>;
    const int tid = (int)threadIdx.x;
    const int g = (int)blockIdx.z / splits, s = (int)blockIdx.z - g * splits;
    const int in_per_group = channels / groups, out_per_group = out_channels / groups;
    const int kc_count = in_per_group * n_taps;
    const int m0 = (int)blockIdx.y * S::BM;
    const int n0 = (int)blockIdx.x * S::BN;
    const int plane_out = out_height * out_width;
    const int columns = batch * plane_out;
    const int col_begin = (int)(s * split_columns);
    const int col_end = (int)min((long long)columns, col_begin + split_columns);

    WeightGradOperands<S, T> ops;
    ops.x = x;
    ops.grad_y = grad_y;
    ops.width = width;
    ops.out_height = out_height;
    ops.out_width = out_width;
    ops.stride_h = stride_h;
    ops.stride_w = stride_w;
    ops.image_x = channels * height * width;
    ops.image_gy = out_channels * plane_out;
    ops.col = col_begin + tid % S::kSlice;
    ops.col_end = col_end;
    {
        const int n = ops.col / plane_out;
        const int pix = ops.col - n * plane_out;
        ops.n = n;
        ops.p = pix / out_width;
        ops.q = pix - ops.p * out_width;
        ops.step_n = S::kSlice / plane_out;
        const int rest = S::kSlice - ops.step_n * plane_out;
        ops.step_p = rest / out_width;
        ops.step_q = rest - ops.step_p * out_width;
    }
#pragma unroll
    for (int r = 0; r < S::kALoads; ++r) {
        const int m = min(m0 + tid / S::kSlice + S::kLanes * r, out_per_group - 1);
        ops.gy_row[r] = (g * out_per_group + m) * plane_out;
    }
#pragma unroll
    for (int r = 0; r < S::kBLoads; ++r) {
        const int kc = n0 + tid / S::kSlice + S::kLanes * r;
        ops.x_off[r] = 0;
        if (kc < kc_count) {
            const int c = kc / n_taps, t = kc - (kc / n_taps) * n_taps;
            ops.x_off[r] = (g * in_per_group + c) * height * width
                           + taps[2 * t] * dilation_h * width + taps[2 * t + 1] * dilation_w;
        }
    }

    T acc[TM][TN];
    gemm_main_loop<S>(ops, col_end - col_begin, acc);

    T* out = partial + (long long)s * out_channels * kc_count;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + thread_row<S>() * TM + i;
        if (m >= out_per_group) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int kc = n0 + register_col<S>(j);
            if (kc < kc_count) out[(g * out_per_group + m) * kc_count + kc] = acc[i][j];
        }
    }
}

// ---------------------------------------------------------------------------------------
// Weight gradient with few output channels (Og <= 32, where a GEMM's im2col elements
// would each serve only 16 or 32 FMAs): the halo weight gradient.
//
// As in the halo tile, a stride-1 conv (a stride phase of x for a strided one: conv.py)
// reads x at a constant raster offset per tap: gw[o, c, t] = sum over images n and raster
// positions u of gyr[n, o, u] * xr[n, c, u + off_t], where the host lays grad_y and x out
// in rasters of `plane` positions per (image, channel): gyr holds grad_y (p, q) at u =
// p*raster_w + q and zeros elsewhere, xr holds x at raster (r, s) = (p + a_t - min a,
// q + b_t - min b) and zeros outside x and past the raster, so that every read below is
// inside the arrays and no element is tested (the arrays are padded past their last
// plane by the halo channels and rows a block may load beyond the group's).
//
// A block owns BM output channels (blockIdx.y) and `cb` source channels (blockIdx.x) with
// all the launch's taps: cb * n_taps <= KC columns.  Its K loop walks chunks of U
// positions (image by image; blockIdx.z = g * splits + s picks a range of chunks): per
// chunk it stages grad_y (BM x U, stored position-major) and the x halo of its channels
// (cb x width_x, width_x = U + reach rounded up to 16 bytes) in shared memory -- each x
// element then serves BM * (taps of its channel) FMAs and each grad_y element KC.  Lane l
// of a warp takes positions u = l + 32*i; a warp owns TM output channels x TN columns, so
// per position a thread reads TM grad_y values (16-byte loads) and TN x values and does
// TM*TN FMAs.  The lanes of a warp thus hold partial sums of the same outputs: at the
// end they are added through shared memory in lane order (deterministic) and written to
// partial[s, o, c*n_taps_total + t] for conv_weight_grad_reduce, like the GEMM's.
// ---------------------------------------------------------------------------------------
template <typename T, int BM, int TM, int TN, int U, int XS>
struct WeightGradHalo {
    static constexpr int V = 16 / (int)sizeof(T);
    static constexpr int kOGroups = BM / TM;                      // warps across the rows
    static constexpr int kColGroups = kThreads / 32 / kOGroups;    // warps across the columns
    static constexpr int KC = kColGroups * TN;                    // columns per block
    static constexpr int kGyRuns = BM * U / (kThreads * V);       // 16-byte loads per chunk
    static constexpr int kXRuns = XS / (kThreads * V);
    static_assert(TM % V == 0 && U % 32 == 0 && U % V == 0, "16-byte runs, whole warps");
    static_assert(BM * U % (kThreads * V) == 0 && XS % (kThreads * V) == 0, "even loads");
    static_assert(kOGroups * kColGroups * 32 == kThreads, "warps cover the block");
};

// Positions per chunk (U) and the shared x halo (XS elements) of the halo weight
// gradient (conv.py keeps a copy, with the columns per block KC: 64 float, 32 double):
// 42 KB of shared memory for float, 30 KB for double, whose halo is kept short so that
// its stores leave the shared-memory pipe to the tile loop's loads (82% of the DFMA peak).
template <typename T>
struct WeightGradHaloSizes {
    static constexpr int U = 128;
    static constexpr int XS = sizeof(T) == 4 ? 8192 : 1536;
};

template <typename T, int BM, int TM, int TN, int U, int XS>
__device__ void conv_weight_grad_halo(const T* xr, const T* gyr, const int* taps, T* partial,
                                      int batch, int channels, int out_channels, int groups,
                                      int n_taps_total, int n_taps, int plane, int width_x,
                                      int chunks_per_image, int cb, int splits,
                                      int chunks_per_split)
{
    using S = WeightGradHalo<T, BM, TM, TN, U, XS>;
    constexpr int V = S::V;
    struct alignas(16) Tiles {
        T gy[U][BM + V];  // [position][row]: a thread's TM rows in 16-byte runs
        T x[XS];          // [channel][width_x]
    };
    // Partial sums added per round of the final reduction: a power of two (dividing
    // TM*TN), at most 32 (a lane each), kThreads * (kRed + 1) of them in the tiles.
    constexpr int kFit = (int)(sizeof(Tiles) / (sizeof(T) * kThreads)) - 1;
    constexpr int kRed = kFit >= 32 ? 32 : kFit >= 16 ? 16 : kFit >= 8 ? 8 : 4;
    static_assert(kFit >= kRed && TM * TN % kRed == 0, "the reduction fits the tiles");
    __shared__ Tiles tiles;
    const int tid = (int)threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int og = warp % S::kOGroups, cg = warp / S::kOGroups;
    const int g = (int)blockIdx.z / splits, s = (int)blockIdx.z - g * splits;
    const int in_per_group = channels / groups, out_per_group = out_channels / groups;
    const int c0 = (int)blockIdx.x * cb, o0 = (int)blockIdx.y * BM;
    const int cb_here = min(cb, in_per_group - c0);
    const int columns = cb_here * n_taps;

    // This thread's columns: where x of position 0 sits in the shared halo (0 past the
    // columns: read, never stored).
    int xoff[TN];
#pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int kc = cg * TN + j, c = kc / n_taps, t = kc - (kc / n_taps) * n_taps;
        xoff[j] = kc < columns ? c * width_x + taps[2 * t] : 0;
    }
    // What this thread loads per chunk, relative to the chunk's start in image 0: x runs
    // tid + kThreads*r of the halo (channel-major, runs along positions: coalesced) and
    // grad_y runs (row tid % BM: its stores into the position-major tile hit consecutive
    // banks).  Halo channels past cb_here and rows past out_per_group are loaded too
    // (the host pads both arrays so that they lie inside): only columns and rows that
    // are never stored read them -- no test per load.
    int x_src[S::kXRuns], gy_src[S::kGyRuns];
#pragma unroll
    for (int r = 0; r < S::kXRuns; ++r) {
        const int e = (tid + kThreads * r) * V, c = e / width_x, j = e - (e / width_x) * width_x;
        x_src[r] = (g * in_per_group + c0 + c) * plane + j;
    }
#pragma unroll
    for (int r = 0; r < S::kGyRuns; ++r) {
        const int q = tid + kThreads * r, o = q % BM, j = (q / BM) * V;
        gy_src[r] = (g * out_per_group + o0 + o) * plane + j;
    }

    Run<T, V> x_next[S::kXRuns], gy_next[S::kGyRuns];
    auto fetch = [&](int n, int u0) {
        const unsigned bx = (unsigned)(n * channels * plane + u0);
        const unsigned bg = (unsigned)(n * out_channels * plane + u0);
#pragma unroll
        for (int r = 0; r < S::kXRuns; ++r)
            x_next[r] = *reinterpret_cast<const Run<T, V>*>(xr + (bx + (unsigned)x_src[r]));
#pragma unroll
        for (int r = 0; r < S::kGyRuns; ++r)
            gy_next[r] = *reinterpret_cast<const Run<T, V>*>(gyr + (bg + (unsigned)gy_src[r]));
    };
    auto store = [&]() {
#pragma unroll
        for (int r = 0; r < S::kXRuns; ++r)
            reinterpret_cast<Run<T, V>*>(tiles.x)[tid + kThreads * r] = x_next[r];
#pragma unroll
        for (int r = 0; r < S::kGyRuns; ++r) {
            const int q = tid + kThreads * r, o = q % BM, j = (q / BM) * V;
#pragma unroll
            for (int e = 0; e < V; ++e) tiles.gy[j + e][o] = gy_next[r].v[e];
        }
    };

    T acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
    const int k_begin = s * chunks_per_split;
    const int k_end = min(batch * chunks_per_image, k_begin + chunks_per_split);
    int n = k_begin / chunks_per_image, u0 = (k_begin - n * chunks_per_image) * U;
    if (k_begin < k_end) fetch(n, u0);  // block-uniform
    for (int k = k_begin; k < k_end; ++k) {
        __syncthreads();  // every thread is done with the previous chunk
        store();
        __syncthreads();
        u0 += U;
        if (u0 == chunks_per_image * U) {
            u0 = 0;
            ++n;
        }
        if (k + 1 < k_end) fetch(n, u0);  // the next chunk's loads fly during the FMAs
#pragma unroll
        for (int i = 0; i < U / 32; ++i) {
            const int u = lane + 32 * i;
            T a[TM], b[TN];
            load_runs<T, TM>(&tiles.gy[u][og * TM], a);
#pragma unroll
            for (int j = 0; j < TN; ++j) b[j] = tiles.x[xoff[j] + u];
#pragma unroll
            for (int ii = 0; ii < TM; ++ii)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[ii][j] += a[ii] * b[j];
        }
    }

    // The 32 lanes of a warp hold partial sums of the same TM x TN outputs: kRed of them
    // a round go through shared memory (red[thread][kRed + 1]: conflict-free both
    // ways), lane e of the warp adds output r0 + e over the lanes in order and stores it.
    T* red = reinterpret_cast<T*>(&tiles);
    const long long kc_total = (long long)in_per_group * n_taps_total;
#pragma unroll
    for (int r0 = 0; r0 < TM * TN; r0 += kRed) {
        __syncthreads();  // the tiles (or the previous round) are no longer read
#pragma unroll
        for (int e = 0; e < kRed; ++e)
            red[tid * (kRed + 1) + e] = acc[(r0 + e) / TN][(r0 + e) % TN];
        __syncthreads();
        if (lane < kRed) {
            T sum = T(0);
            for (int l = 0; l < 32; ++l) sum += red[(warp * 32 + l) * (kRed + 1) + lane];
            const int i = (r0 + lane) / TN, j = (r0 + lane) - ((r0 + lane) / TN) * TN;
            const int o = o0 + og * TM + i, kc = cg * TN + j;
            if (o < out_per_group && kc < columns) {
                const int c = kc / n_taps, t = kc - (kc / n_taps) * n_taps;
                partial[((long long)s * out_channels + g * out_per_group + o) * kc_total
                        + (long long)(c0 + c) * n_taps_total + taps[2 * t + 1]] = sum;
            }
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
    for (long long e = tg_thread_index(); e < count; e += tg_grid_stride()) {
        T sum = T(0);
        for (int s = 0; s < splits; ++s) sum += partial[s * count + e];
        const long long oc = e / n_taps;
        const int t = (int)(e - oc * n_taps);
        grad_w[oc * kernel_h * kernel_w + taps[2 * t] * kernel_w + taps[2 * t + 1]] = sum;
    }
}

// out[e] = sum over s of partial[s * count + e], in split order (split-K forward and
// input gradient).
template <typename T>
__device__ void split_sum(const T* partial, T* out, int splits, long long count)
{
    for (long long e = tg_thread_index(); e < count; e += tg_grid_stride()) {
        T sum = partial[e];
        for (int s = 1; s < splits; ++s) sum += partial[s * count + e];
        out[e] = sum;
    }
}

}  // namespace conv

// =======================================================================================
// Entry points.  GEMM tile names: m128 = 128x128 (TM = TN = 8), m64 = 64x256 (TM = TN =
// 8 on an 8 x 32 thread grid) -- BM x BN, register block TM x TN per thread; halo tiles:
// m16 / m32 = 16 / 32 rows a block.
// Launch with blockDim = (256, 1, 1) and the grids described in conv.py.
// =======================================================================================

// --- forward: grid (ceil(N*Hout*Wout / BN), ceil(Og / BM), groups*splits); taps: rows
//     (i*dh, j*dw, i*dh*W + j*dw, i*kw + j); y: (splits, N, O, Hout, Wout) -------------

TG_ENTRY_F32_F64(conv_forward_m128, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* x, const T* weight, const int* taps, T* y, int batch, int channels, int height,
     int width, int out_channels, int out_height, int out_width, int kernel_h, int kernel_w,
     int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left, int splits,
     int split_k),
    conv::conv_forward<T, 8, 8, 16>(x, weight, taps, y, batch, channels, height, width,
                                    out_channels, out_height, out_width, kernel_h, kernel_w,
                                    n_taps, groups, stride_h, stride_w, pad_top, pad_left,
                                    splits, split_k))

TG_ENTRY_F32_F64(conv_forward_m64, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* x, const T* weight, const int* taps, T* y, int batch, int channels, int height,
     int width, int out_channels, int out_height, int out_width, int kernel_h, int kernel_w,
     int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left, int splits,
     int split_k),
    conv::conv_forward<T, 8, 8, 8>(x, weight, taps, y, batch, channels, height, width,
                                   out_channels, out_height, out_width, kernel_h, kernel_w,
                                   n_taps, groups, stride_h, stride_w, pad_top, pad_left,
                                   splits, split_k))

// --- input grad: grid (ceil(N*ceil(H/sh)*ceil(W/sw) / BN), ceil(Cg / BM),
//     groups*sh*sw*splits); taps: rows (-b_i, -b_j, -(b_i*Wout + b_j), i*kw + j) sorted
//     by phase, phase_start (sh*sw + 1); grad_x: (splits, N, C, H, W) -----------------

TG_ENTRY_F32_F64(conv_input_grad_m128, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* grad_y, const T* weight, const int* taps, const int* phase_start, T* grad_x,
     int batch, int channels, int height, int width, int out_channels, int out_height,
     int out_width, int kernel_h, int kernel_w, int groups, int stride_h, int stride_w,
     int pad_top, int pad_left, int splits, int split_k),
    conv::conv_input_grad<T, 8, 8, 16>(grad_y, weight, taps, phase_start, grad_x, batch,
                                       channels, height, width, out_channels, out_height,
                                       out_width, kernel_h, kernel_w, groups, stride_h,
                                       stride_w, pad_top, pad_left, splits, split_k))

TG_ENTRY_F32_F64(conv_input_grad_m64, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* grad_y, const T* weight, const int* taps, const int* phase_start, T* grad_x,
     int batch, int channels, int height, int width, int out_channels, int out_height,
     int out_width, int kernel_h, int kernel_w, int groups, int stride_h, int stride_w,
     int pad_top, int pad_left, int splits, int split_k),
    conv::conv_input_grad<T, 8, 8, 8>(grad_y, weight, taps, phase_start, grad_x, batch,
                                      channels, height, width, out_channels, out_height,
                                      out_width, kernel_h, kernel_w, groups, stride_h, stride_w,
                                      pad_top, pad_left, splits, split_k))

// --- halo tile, forward and input grad (a stride phase at a time) with at most 32 GEMM
//     rows: grid
//     (ceil(N*raster_h*raster_w / kPixels), ceil(rows / BM), groups*splits), kPixels =
//     2048 (m16_f32), 1024 (m32_f32, m16_f64), 512 (m32_f64); taps: rows (raster
//     offset, weight offset i*kw + j); dst: (splits, N, dst_channels, dst_h, dst_w) --

TG_ENTRY_F32_F64(conv_halo_m16, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* src, const T* weight, const int* taps, T* dst, int batch, int src_channels,
     int src_height, int src_width, int dst_channels, int dst_height, int dst_width,
     int groups, int rows, int outer_count, int kernel_area, int w_row_stride,
     int w_outer_stride, int n_taps, int raster_h, int raster_w, int shift_h, int shift_w,
     int reach, int splits, int split_outer),
    conv::conv_halo<T, 16, conv::HaloRows<T>::value, 8>(src, weight, taps, dst, batch,
        src_channels, src_height, src_width, dst_channels, dst_height, dst_width, groups, rows,
        outer_count, kernel_area, w_row_stride, w_outer_stride, n_taps, raster_h, raster_w,
        shift_h, shift_w, reach, splits, split_outer))

TG_ENTRY_F32_F64(conv_halo_m32, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* src, const T* weight, const int* taps, T* dst, int batch, int src_channels,
     int src_height, int src_width, int dst_channels, int dst_height, int dst_width,
     int groups, int rows, int outer_count, int kernel_area, int w_row_stride,
     int w_outer_stride, int n_taps, int raster_h, int raster_w, int shift_h, int shift_w,
     int reach, int splits, int split_outer),
    conv::conv_halo<T, 32, conv::HaloRows<T>::value, 8>(src, weight, taps, dst, batch,
        src_channels, src_height, src_width, dst_channels, dst_height, dst_width, groups, rows,
        outer_count, kernel_area, w_row_stride, w_outer_stride, n_taps, raster_h, raster_w,
        shift_h, shift_w, reach, splits, split_outer))

// --- weight grad: grid (ceil(Cg*T / BN), ceil(Og / BM), groups*splits) writing
//     partial (splits, O, Cg*T); then conv_weight_grad_reduce over O*Cg*T elements.
//     x padded by the host: height, width of the padded plane, pad_top = pad_left = 0 ---

TG_ENTRY_F32_F64(conv_weight_grad_m128, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* x, const T* grad_y, const int* taps, T* partial, int batch, int channels,
     int height, int width, int out_channels, int out_height, int out_width, int n_taps,
     int groups, int stride_h, int stride_w, int pad_top, int pad_left, int dilation_h,
     int dilation_w, int splits, long long split_columns),
    conv::conv_weight_grad<T, 8, 8, 16>(x, grad_y, taps, partial, batch, channels, height,
                                        width, out_channels, out_height, out_width, n_taps,
                                        groups, stride_h, stride_w, pad_top, pad_left,
                                        dilation_h, dilation_w, splits, split_columns))

TG_ENTRY_F32_F64(conv_weight_grad_m64, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* x, const T* grad_y, const int* taps, T* partial, int batch, int channels,
     int height, int width, int out_channels, int out_height, int out_width, int n_taps,
     int groups, int stride_h, int stride_w, int pad_top, int pad_left, int dilation_h,
     int dilation_w, int splits, long long split_columns),
    conv::conv_weight_grad<T, 8, 8, 8>(x, grad_y, taps, partial, batch, channels, height, width,
                                       out_channels, out_height, out_width, n_taps, groups,
                                       stride_h, stride_w, pad_top, pad_left, dilation_h,
                                       dilation_w, splits, split_columns))

// --- weight grad with at most 32 output channels per group, on rasters laid out by the
//     host (conv.py): grid (ceil(Cg / cb), ceil(Og / BM), groups*splits) writing partial
//     (splits, O, Cg*n_taps_total) at the launch's taps; taps: rows (raster offset, index
//     in the whole tap list); conv::WeightGradHaloSizes has the chunk and halo sizes ---

TG_ENTRY_F32_F64(conv_weight_grad_halo_m16, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* xr, const T* gyr, const int* taps, T* partial, int batch, int channels,
     int out_channels, int groups, int n_taps_total, int n_taps, int plane, int width_x,
     int chunks_per_image, int cb, int splits, int chunks_per_split),
    conv::conv_weight_grad_halo<T, 16, conv::HaloRows<T>::value, 8,
                                conv::WeightGradHaloSizes<T>::U,
                                conv::WeightGradHaloSizes<T>::XS>(
        xr, gyr, taps, partial, batch, channels, out_channels, groups, n_taps_total, n_taps,
        plane, width_x, chunks_per_image, cb, splits, chunks_per_split))

// --- weight grad, second pass: grid-stride over O*Cg*T elements -------------------------

TG_ENTRY_F32_F64(conv_weight_grad_reduce, TG_NO_LAUNCH_BOUNDS, TG_NO_LAUNCH_BOUNDS,
    (const T* partial, const int* taps, T* grad_w, int splits, int out_channels,
     int in_per_group, int kernel_h, int kernel_w, int n_taps),
    conv::conv_weight_grad_reduce<T>(partial, taps, grad_w, splits, out_channels, in_per_group,
                                     kernel_h, kernel_w, n_taps))

// --- split-K second pass (forward, input grad): grid-stride over `count` elements ------

TG_ENTRY_F32_F64(conv_split_sum, TG_NO_LAUNCH_BOUNDS, TG_NO_LAUNCH_BOUNDS,
    (const T* partial, T* out, int splits, long long count),
    conv::split_sum<T>(partial, out, splits, count))

// --- forward with one input channel per group: grid (ceil(N*Hout*Wout / (256*kPix)),
//     ceil(Og / 32), groups), kPix = V * conv::DirectRuns<T, N>::value pixels per thread
//     (V = 16 / sizeof(T); conv.py has the table), Hout*Wout % V == 0, y 16-byte aligned;
//     taps as for the forward GEMM, n_taps <= N ---------------------------------------

TG_ENTRY_F32_F64(conv_forward_direct_t8, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* x, const T* weight, const int* taps, T* y, int batch, int channels, int height,
     int width, int out_channels, int out_height, int out_width, int kernel_h, int kernel_w,
     int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left),
    conv::conv_forward_direct<T, 8, conv::DirectRuns<T, 8>::value>(x, weight, taps, y, batch,
        channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
        n_taps, groups, stride_h, stride_w, pad_top, pad_left))

TG_ENTRY_F32_F64(conv_forward_direct_t9, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* x, const T* weight, const int* taps, T* y, int batch, int channels, int height,
     int width, int out_channels, int out_height, int out_width, int kernel_h, int kernel_w,
     int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left),
    conv::conv_forward_direct<T, 9, conv::DirectRuns<T, 9>::value>(x, weight, taps, y, batch,
        channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
        n_taps, groups, stride_h, stride_w, pad_top, pad_left))

TG_ENTRY_F32_F64(conv_forward_direct_t16, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* x, const T* weight, const int* taps, T* y, int batch, int channels, int height,
     int width, int out_channels, int out_height, int out_width, int kernel_h, int kernel_w,
     int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left),
    conv::conv_forward_direct<T, 16, conv::DirectRuns<T, 16>::value>(x, weight, taps, y,
        batch, channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
        n_taps, groups, stride_h, stride_w, pad_top, pad_left))

TG_ENTRY_F32_F64(conv_forward_direct_t24, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* x, const T* weight, const int* taps, T* y, int batch, int channels, int height,
     int width, int out_channels, int out_height, int out_width, int kernel_h, int kernel_w,
     int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left),
    conv::conv_forward_direct<T, 24, conv::DirectRuns<T, 24>::value>(x, weight, taps, y,
        batch, channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
        n_taps, groups, stride_h, stride_w, pad_top, pad_left))

TG_ENTRY_F32_F64(conv_forward_direct_t32, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* x, const T* weight, const int* taps, T* y, int batch, int channels, int height,
     int width, int out_channels, int out_height, int out_width, int kernel_h, int kernel_w,
     int n_taps, int groups, int stride_h, int stride_w, int pad_top, int pad_left),
    conv::conv_forward_direct<T, 32, conv::DirectRuns<T, 32>::value>(x, weight, taps, y,
        batch, channels, height, width, out_channels, out_height, out_width, kernel_h, kernel_w,
        n_taps, groups, stride_h, stride_w, pad_top, pad_left))

// --- input grad, one input channel per group, dense 4x4 stride 2: grid (ceil(N*tiles_h*
//     tiles_w / 256), splits of Og, groups); gyp: grad_y padded by the host (conv.py);
//     grad_x: (splits, N, groups, H, W) ------------------------------------------------

TG_ENTRY_F32_F64(conv_input_grad_c1_k4s2, __launch_bounds__(256, 1), __launch_bounds__(256, 1),
    (const T* gyp, const T* weight, T* grad_x, int batch, int groups, int out_per_group,
     int height, int width, int tiles_h, int tiles_w, int padded_h, int padded_w, int h_base,
     int w_base, int split_o),
    conv::conv_input_grad_c1<T, 2, 2, conv::C1Cols<T>::value>(gyp, weight, grad_x, batch,
        groups, out_per_group, height, width, tiles_h, tiles_w, padded_h, padded_w, h_base,
        w_base, split_o))
