// Spectral normalisation: one power-iteration step per launch, and sigma = u^T W v.
//
// Maths (tinygen.backend.reference.spectral_norm): for W (rows x cols), one step is
//     v <- normalize(W^T u),   u <- normalize(W v),   sigma = u^T W v
// with normalize(y) = y / max(||y||, eps).
//
// One launch does the whole step because W is split by COLUMNS: block b owns the slab of
// kCols columns J_b and computes
//     pass 1:  v_J = (W^T u)_J              (needs all of u: an input, so no waiting)
//     pass 2:  y_b = W[:, J_b] v_J          (its share of W v, from the same slab)
// so each block reads only its slab of W (twice; the second pass mostly from cache), and
// W v_raw = sum_b y_b.  The partials (y_b, and ||v_J||^2) are then added in a binary TREE
// across blocks: the leaves are the blocks; at each node the second of its two children
// to finish (a ticket per node, tg_is_last_block) adds the right child's partials into
// the left child's slot, with all its threads, and climbs on.  Each merge is O(rows) on
// its own SM and the depth is log2(blocks), where one last block used to add all
// blocks x rows partials by itself.  The block that merges the root does the O(rows +
// cols) rest: with nv = max(||v_raw||, eps), v = v_raw / nv and W v = (sum_b y_b) / nv,
// whose normalisation is u, and sigma = u . (W v) costs nothing more.  The tree's shape is
// fixed, so the result does not depend on scheduling.  All sums are in double.
// Workspaces (Python allocates them): v_raw (cols), partial_y (blocks x rows), partial_vv
// (blocks) and tickets (blocks ints, 0 before the launch; each merge resets its own).
#include "common.cuh"

namespace spectral_norm {

// Threads per block at most (the entry points' __launch_bounds__; Python launches this
// many): any multiple of kCols up to it works.
constexpr int kThreads = 256;
constexpr int kCols = 32;                         // columns per block: one per lane of a warp
constexpr int kMaxRowGroups = kThreads / kCols;   // rows handled side by side in pass 1
constexpr int kTileRows = 32;                     // rows per shared-memory tile in pass 2

// The block is blockDim.x / kCols groups of kCols threads (see kThreads).
__device__ __forceinline__ int row_groups() {
    if (blockDim.x % kCols != 0 || blockDim.x > kThreads || blockDim.y * blockDim.z != 1) {
        __trap();  // launch.py refuses such blocks first: never a silent wrong answer
    }
    return blockDim.x / kCols;
}

// vj[c] = (W^T u)[j0 + c] for c < kCols (0 past the last column), into shared `vj`.
// Thread (group, lane) sums rows group, group + groups, ... of column j0 + lane: a
// warp reads kCols consecutive values of one row (coalesced) and one broadcast u[i].
template <class T>
__device__ void slab_transposed_product(const T* __restrict__ w, const T* __restrict__ u,
                                        long long rows, long long cols, long long j0,
                                        double* vj) {
    __shared__ double partial[kMaxRowGroups][kCols];
    const int groups = row_groups();
    const int lane = threadIdx.x % kCols;
    const int group = threadIdx.x / kCols;
    const long long j = j0 + lane;
    double acc = 0.0;
    if (j < cols) {
        for (long long i = group; i < rows; i += groups) {
            acc += (double)w[i * cols + j] * (double)u[i];
        }
    }
    partial[group][lane] = acc;
    __syncthreads();
    if (threadIdx.x < kCols) {
        double s = 0.0;
        for (int g = 0; g < groups; ++g) s += partial[g][threadIdx.x];
        vj[threadIdx.x] = s;
    }
    __syncthreads();
}

// The tree merge of per-block partials: slot k holds rows values partial_y[k * rows ...]
// and one partial_vv[k]; block b starts as leaf b.  At level l the node p covers leaves
// [p << l, (p + 1) << l) and keeps its sums in slot p << l; its children are 2p and 2p + 1
// of level l - 1, and the right child's first leaf R = (2p + 1) << (l - 1) names the
// node's ticket (a distinct R for every node).  Returns true in the block that has merged
// the root (its slot 0 holds the totals); every other block returns false.  Every
// thread of the block calls it after writing its slot.
__device__ __forceinline__ bool merge_up_tree(double* __restrict__ partial_y,
                                              double* __restrict__ partial_vv,
                                              int* __restrict__ tickets, long long rows) {
    const long long blocks = gridDim.x;
    long long node = blockIdx.x;
    for (long long width = blocks, level = 0; width > 1; width = (width + 1) / 2, ++level) {
        const long long parent = node / 2;
        node = parent;
        const long long left = (2 * parent) << level;
        const long long right = (2 * parent + 1) << level;
        if (2 * parent + 1 >= width) continue;  // no right child: the left slot is the parent's
        if (!tg_is_last_block(tickets + right, 2)) return false;
        for (long long i = threadIdx.x; i < rows; i += blockDim.x) {
            partial_y[left * rows + i] += partial_y[right * rows + i];
        }
        if (threadIdx.x == 0) partial_vv[left] += partial_vv[right];
        // (the next level's tg_is_last_block fences and synchronises these writes)
    }
    __syncthreads();  // the root merge's writes, before the block reads slot 0
    return true;
}

template <class T>
__device__ void power_step(const T* __restrict__ w, T* __restrict__ u, T* __restrict__ v,
                           double* __restrict__ v_raw, double* __restrict__ partial_y,
                           double* __restrict__ partial_vv, int* __restrict__ tickets,
                           T* __restrict__ sigma, long long rows, long long cols, double eps) {
    __shared__ double vj[kCols];
    __shared__ double tile[kTileRows][kCols + 1];  // +1: a row's sum reads no bank twice
    __shared__ double scratch[kThreads];
    __shared__ double shared_norm;
    const int tid = threadIdx.x;
    const long long b = blockIdx.x;
    const long long j0 = b * kCols;

    // pass 1: this slab's part of W^T u, and of ||W^T u||^2
    slab_transposed_product(w, u, rows, cols, j0, vj);
    if (tid < kCols && j0 + tid < cols) v_raw[j0 + tid] = vj[tid];
    if (tid == 0) {
        double s = 0.0;
        for (int c = 0; c < kCols; ++c) s += vj[c] * vj[c];
        partial_vv[b] = s;
    }

    // pass 2: y_b = W[:, J_b] v_J, a tile of kTileRows x kCols at a time: loaded
    // coalesced (row by row) with the products, then summed along each tile row.
    const int groups = row_groups();
    const int lane = tid % kCols;
    const int group = tid / kCols;
    const long long j = j0 + lane;
    const double v_lane = vj[lane];
    for (long long i0 = 0; i0 < rows; i0 += kTileRows) {
        for (int r = group; r < kTileRows; r += groups) {
            const long long i = i0 + r;
            tile[r][lane] = (i < rows && j < cols) ? (double)w[i * cols + j] * v_lane : 0.0;
        }
        __syncthreads();
        if (tid < kTileRows && i0 + tid < rows) {
            double s = 0.0;
            for (int c = 0; c < kCols; ++c) s += tile[tid][c];
            partial_y[b * rows + i0 + tid] = s;
        }
        __syncthreads();
    }
    if (!merge_up_tree(partial_y, partial_vv, tickets, rows)) return;

    // The root's block: nv = max(||v_raw||, eps); v = v_raw / nv; W v = (sum_b y_b) / nv.
    // (Multiplications by the reciprocals: a division per element calls the slow path,
    // whose call frame spilled registers on sm_80; the results differ by an ulp at most.)
    if (tid == 0) shared_norm = 1.0 / max(sqrt(partial_vv[0]), eps);
    __syncthreads();
    const double inv_nv = shared_norm;
    for (long long c = tid; c < cols; c += blockDim.x) v[c] = (T)(v_raw[c] * inv_nv);
    double yy = 0.0;
    for (long long i = tid; i < rows; i += blockDim.x) {
        const double y = partial_y[i] * inv_nv;
        partial_y[i] = y;  // only this thread reads or writes row i here
        yy += y * y;
    }
    const double inv_nu = 1.0 / max(sqrt(tg_block_sum(yy, scratch)), eps);
    double s = 0.0;
    for (long long i = tid; i < rows; i += blockDim.x) {
        const double wv = partial_y[i];
        const double ui = wv * inv_nu;
        u[i] = (T)ui;
        s += ui * wv;
    }
    s = tg_block_sum(s, scratch);
    if (tid == 0) sigma[0] = (T)s;
}

// sigma = u^T W v = sum_j v_j (W^T u)_j: pass 1 of the step per slab, then the last
// block adds the per-block partials (one value each): strided shares, then the block tree.
template <class T>
__device__ void sigma(const T* __restrict__ w, const T* __restrict__ u,
                      const T* __restrict__ v, double* __restrict__ partial,
                      int* __restrict__ ticket, T* __restrict__ out, long long rows,
                      long long cols) {
    __shared__ double vj[kCols];
    const long long j0 = (long long)blockIdx.x * kCols;
    slab_transposed_product(w, u, rows, cols, j0, vj);
    if (threadIdx.x == 0) {
        double s = 0.0;
        for (int c = 0; c < kCols && j0 + c < cols; ++c) s += vj[c] * (double)v[j0 + c];
        partial[blockIdx.x] = s;
    }
    if (!tg_is_last_block(ticket, (int)gridDim.x)) return;
    __shared__ double scratch[kThreads];
    double s = 0.0;
    for (long long k = threadIdx.x; k < (long long)gridDim.x; k += blockDim.x) s += partial[k];
    s = tg_block_sum(s, scratch);
    if (threadIdx.x == 0) out[0] = (T)s;
}

}  // namespace spectral_norm

// --- entry points -----------------------------------------------------------------------------
TG_ENTRY_F32_F64(spectral_norm_power_step, __launch_bounds__(256), __launch_bounds__(256),
    (const T* __restrict__ w, T* __restrict__ u, T* __restrict__ v, double* __restrict__ v_raw,
     double* __restrict__ partial_y, double* __restrict__ partial_vv, int* __restrict__ tickets,
     T* __restrict__ sigma, long long rows, long long cols, double eps),
    spectral_norm::power_step(w, u, v, v_raw, partial_y, partial_vv, tickets, sigma, rows, cols,
                              eps))

TG_ENTRY_F32_F64(spectral_norm_sigma, __launch_bounds__(256), __launch_bounds__(256),
    (const T* __restrict__ w, const T* __restrict__ u, const T* __restrict__ v,
     double* __restrict__ partial, int* __restrict__ ticket, T* __restrict__ out,
     long long rows, long long cols),
    spectral_norm::sigma(w, u, v, partial, ticket, out, rows, cols))
