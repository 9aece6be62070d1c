"""Fast CPU 2-D convolution for wide layers: one GEMM per kernel ROW on shifted blocks.

Same results as ``tinygen/backend/reference/conv.py``; ``conv.py`` in this package
decides when this path serves (many input channels) and when its im2col path does.

Why.  im2col writes kh*kw copies of the input (58 MB for a 3x3 conv of 32 images with
64 channels of 28x28) and reads them back; on a small machine that traffic cost as much
as the GEMMs.  Here the input is unfolded along the WIDTH only (kw copies), and the
kernel's rows become shifts: in a layout whose columns run over (image, row, column)
of the output, moving one kernel row down is moving a whole block of columns right.
Each kernel row i is then one GEMM on a contiguous, shifted view of the same buffer,
and the kh GEMMs add up:

    unfold   U[r][(g, j, c'), (n, p', q)] = x_padded[n, g*C/g + c', p'*sh + r, q*sw + j*dw]
    forward  Y_g (O/g, cols)        = sum_i W_gi (O/g, kw*C/g) @ U[r_i]_g[:, s_i*Wout :][:, :cols]
    weight   gW_gi^T (kw*C/g, O/g)  = U[r_i]_g[:, s_i*Wout :][:, :cols] @ GY_g^T
    input    (stride 1) the convolution of gy with the flipped weight, by the forward;
             (strided)  GU[r_i]_g[:, s_i*Wout :] += W_gi^T @ GY_g, then ``fold`` (the
             adjoint of ``unfold``) sums GU back into the input's shape

A strided conv reads rows p*sh + i*dh: the unfold splits the rows by phase r = row % sh
(one buffer per phase the kernel uses), so that in phase r_i = (i*dh) % sh kernel row i
is again a shift, by s_i = (i*dh) // sh rows.  Each image gets Hq = Hout + max_i s_i
rows in the buffer: the rows past Hout are computed and thrown away (the output) or
are zero (the output gradient GY), so a shift never mixes two images.

Masked convs (PixelCNN): a kernel row keeps a range of columns j0 <= j < j1 (the masks
keep the left part of the centre row), and rows (g, j, c') make that range a
contiguous block of U's rows, so a masked tap is never multiplied; fully masked rows
are skipped.  A kept range with a hole in it multiplies the hole by zero weights.
"""
import numpy as np
from numba import njit

from . import _cblas
from ._cblas import NO_TRANS, TRANS, gemm
from .chunks import chunk_ranges, image_pieces, map_chunks, share_images, sum_chunks
from .conv_bounds import add_terms, add_terms_images, terms_for_kernel as _terms, \
    valid_range as _valid_range

# Every buffer and output the code below fills comes from ``_empty`` (the tests swap in
# a NaN-filled one, so that an element a kernel forgets to write cannot pass for a zero
# that fresh memory happened to hold).
_empty = np.empty


# --- geometry ---------------------------------------------------------------------------
class RowPlan:
    """Where each kept kernel row lands in the unfolded buffer.

    ``rows``: [(i, j0, j1, phase slot, shift)] for every kernel row i that keeps a tap,
    its kept column range [j0, j1) and its block (phase slot, shift in buffer rows);
    ``phases``: the row phases in use (int64); ``hq``: buffer rows per image;
    ``contiguous``: every row keeps a range without holes (else this path does not
    serve: a hole would be multiplied by a zero weight, and 0 * inf is not 0).
    """

    def __init__(self, stride, dilation, top, left, kernel, in_size, out_size, groups, taps,
                 on_side=False):
        (sh, sw), (dh, dw) = stride, dilation
        self.on_side = on_side
        self.taps = np.asarray(taps, dtype=np.int64).reshape(-1, 2)
        self.sh, self.sw, self.dh, self.dw, self.top, self.left = sh, sw, dh, dw, top, left
        self.kh, self.kw = kernel
        self.height, self.width = in_size
        self.hout, self.wout = out_size
        self.groups = groups
        columns = {}
        for i, j in self.taps.tolist():
            columns.setdefault(i, []).append(j)
        self.contiguous = all(max(js) - min(js) + 1 == len(set(js)) for js in columns.values())
        phases = sorted({(i * dh) % sh for i in columns})
        self.phases = np.array(phases, dtype=np.int64)
        self.rows = [(i, min(js), max(js) + 1, phases.index((i * dh) % sh), (i * dh) // sh)
                     for i, js in sorted(columns.items())]
        self.hq = self.hout + max(shift for *_, shift in self.rows)

    def cols(self, k):
        """Columns every row's GEMM computes for a chunk of k images: up to the last
        image's last valid output row (its Hq - Hout trailing rows are not needed)."""
        return ((k - 1) * self.hq + self.hout) * self.wout

    def unfold_args(self):
        return (self.phases, self.kw, self.groups, self.hq, self.wout, self.sh, self.sw,
                self.top, self.left, self.dw)


def plan_of(geom, taps):
    top, _, left, _ = geom.padding
    if geom.in_size[0] == 1 and geom.kernel[0] == 1 and geom.out_size[0] == 1:
        # A 1-D conv, (N, C, 1, L): the same memory is (N, C, L, 1), a conv down one
        # column, where its taps are shifts of whole blocks instead of unfold copies.
        # (Only with one output row too: padding above or below the single input row
        # gives an (Hout, Wout) output whose memory is not (Wout, Hout).)
        return RowPlan(geom.stride[::-1], geom.dilation[::-1], left, top, geom.kernel[::-1],
                       geom.in_size[::-1], geom.out_size[::-1], geom.groups,
                       np.asarray(taps).reshape(-1, 2)[:, ::-1], on_side=True)
    return RowPlan(geom.stride, geom.dilation, top, left, geom.kernel, geom.in_size,
                   geom.out_size, geom.groups, taps)


def _oriented(a, plan):
    """An (N, C, h, w) array (or weight) as the plan sees it: 1-D ones on their side."""
    return a.reshape(a.shape[:2] + a.shape[2:][::-1]) if plan.on_side else a


def _row_weights(weight, plan, transpose):
    """Per kept kernel row i, the weight block W_gi (g, O/g, (j1-j0)*C/g), columns
    ordered (j, c') like U's rows; with ``transpose`` its (g, (j1-j0)*C/g, O/g)
    transpose, contiguous."""
    out_channels, in_per_group = weight.shape[:2]
    g, o = plan.groups, out_channels // plan.groups
    blocks = []
    for i, j0, j1, _, _ in plan.rows:
        w = weight[:, :, i, j0:j1].reshape(g, o, in_per_group, j1 - j0)
        w = w.transpose(0, 1, 3, 2).reshape(g, o, (j1 - j0) * in_per_group)  # a copy
        blocks.append(np.ascontiguousarray(w.transpose(0, 2, 1)) if transpose else w)
    return blocks


def _block(u, plan, row, cols, in_per_group):
    """Kernel row ``row``'s operand: U's rows (g, j0..j1, c') of its phase, shifted."""
    _, j0, j1, slot, shift = row
    start = shift * plan.wout
    per_group = u[slot].reshape(plan.groups, plan.kw * in_per_group, u.shape[2])
    return per_group[:, j0 * in_per_group:j1 * in_per_group, start:start + cols]


# --- unfold and its adjoint ---------------------------------------------------------------
# The loops index views that start where their stretch starts, so that every index is
# a loop counter from 0: numba then drops its negative-index wraparound test and LLVM
# vectorises the copies (offsets added to a counter kept the test in the loop; the
# unfold of the 3x3 64-channel row took ~5 ms of its 31 ms forward that way).
@njit(cache=True, nogil=True, fastmath=False)
def _unfold(x, u, phases, kw, groups, hq, wout, sh, sw, pt, pl, dw):
    """U[slot, (g, j, c'), (n, p, q)] = x[n, g*C/g + c', p*sh + phases[slot] - pt,
    q*sw + j*dw - pl], zero where that is outside x (the padding)."""
    n_img, channels, height, width = x.shape
    per_group = channels // groups
    planes = x.reshape(n_img, channels, height * width)
    image_len = hq * wout
    for slot in range(u.shape[0]):
        r = phases[slot]
        p_lo, p_hi = _valid_range(r - pt, sh, height, hq)
        for row in range(u.shape[1]):
            g = row // (kw * per_group)
            rest = row - g * kw * per_group
            j = rest // per_group
            c = g * per_group + rest - j * per_group
            col_offset = j * dw - pl
            q_lo, q_hi = _valid_range(col_offset, sw, width, wout)
            whole_rows = sh == 1 and sw == 1 and col_offset == 0 and wout == width
            for n in range(n_img):
                image = u[slot, row, n * image_len:(n + 1) * image_len]
                src = planes[n, c]
                head = image[:p_lo * wout]
                for e in range(head.shape[0]):
                    head[e] = 0
                tail = image[p_hi * wout:]
                for e in range(tail.shape[0]):
                    tail[e] = 0
                if whole_rows:  # one contiguous stretch
                    first = (p_lo + r - pt) * width
                    body = image[p_lo * wout:p_hi * wout]
                    line = src[first:first + body.shape[0]]
                    for e in range(body.shape[0]):
                        body[e] = line[e]
                    continue
                for p in range(p_lo, p_hi):
                    out = image[p * wout:(p + 1) * wout]
                    for q in range(q_lo):
                        out[q] = 0
                    for q in range(q_hi, wout):
                        out[q] = 0
                    start = (p * sh + r - pt) * width + col_offset + q_lo * sw
                    dst = out[q_lo:q_hi]
                    if sw == 1:  # contiguous, which LLVM vectorises
                        line = src[start:start + dst.shape[0]]
                        for q in range(dst.shape[0]):
                            dst[q] = line[q]
                    else:
                        strided = src[start:][::sw]
                        for q in range(dst.shape[0]):
                            dst[q] = strided[q]


@njit(cache=True, nogil=True, fastmath=False)
def _fold(u, gx, phases, kw, groups, hq, wout, sh, sw, pt, pl, dw):
    """The adjoint of ``_unfold``: gx[n, c, h, w] = the sum of every U entry that
    ``_unfold`` copies from x[n, c, h, w]."""
    n_img, channels, height, width = gx.shape
    per_group = channels // groups
    gx[...] = 0
    for n in range(n_img):
        for c in range(channels):
            g = c // per_group
            c_in = c - g * per_group
            for slot in range(phases.shape[0]):
                r = phases[slot]
                for p in range(hq):
                    h = p * sh + r - pt
                    if h < 0 or h >= height:
                        continue
                    base = (n * hq + p) * wout
                    for j in range(kw):
                        row = (g * kw + j) * per_group + c_in
                        col_offset = j * dw - pl
                        q_lo, q_hi = _valid_range(col_offset, sw, width, wout)
                        for q in range(q_lo, q_hi):
                            gx[n, c, h, q * sw + col_offset] += u[slot, row, base + q]


def _unfolded(x, plan, buffer):
    """U (phases, kw*C, k*Hq*Wout) of the chunk x (k, C, H, W), in ``buffer``."""
    k, channels = x.shape[:2]
    shape = (len(plan.phases), plan.kw * channels, k * plan.hq * plan.wout)
    u = buffer[:shape[0] * shape[1] * shape[2]].reshape(shape)
    _unfold(x, u, *plan.unfold_args())
    return u


# --- batch chunks ---------------------------------------------------------------------------
# A chunk of images whose unfolded buffer fits in a core's L2 cache (2 MB here): the
# unfold writes it, the kernel rows' GEMMs read it while it is still there.  Without
# numpy's OpenBLAS GEMM the chunks are shared out among the threads as Python calls
# (``chunks.map_chunks``), each with its own buffers, the weight gradient's per-chunk
# products added in chunk order (``chunks.sum_chunks``); with it, the compiled path
# below runs steps of the same size.
CHUNK_BYTES = 1 << 20


def _unfold_bytes(plan, channels, itemsize):
    return len(plan.phases) * plan.kw * channels * plan.hq * plan.wout * itemsize


class _Buffers:
    """Per thread slot: the unfolded chunk and the chunk's output-layout rows."""

    def __init__(self, plan, channels, out_channels, k_max, dtype):
        self.plan, self.channels, self.out_channels = plan, channels, out_channels
        self.k_max, self.dtype = k_max, dtype
        self.slots = {}

    def get(self, slot):
        if slot not in self.slots:
            plan = self.plan
            unfolded = _empty(_unfold_bytes(plan, self.channels, 1) * self.k_max, self.dtype)
            rows = _empty((plan.groups, self.out_channels // plan.groups,
                             self.k_max * plan.hq * plan.wout), self.dtype)
            self.slots[slot] = (unfolded, rows, _empty(rows.shape, self.dtype))
        return self.slots[slot]


def _plan_chunks(n, plan, channels, out_channels, dtype):
    chunks = chunk_ranges(n, _unfold_bytes(plan, channels, np.dtype(dtype).itemsize),
                          CHUNK_BYTES)
    return chunks, _Buffers(plan, channels, out_channels, chunks[0][1] - chunks[0][0], dtype)


def _grad_rows(grad_y, plan, rows):
    """GY (g, O/g, k*Hq*Wout): grad_y (k, O, Hout, Wout) in the buffer's column layout,
    zero in the rows past Hout."""
    k, out_channels = grad_y.shape[:2]
    gy = rows[:, :, :k * plan.hq * plan.wout].reshape(out_channels, k, plan.hq, plan.wout)
    gy[:, :, :plan.hout] = grad_y.transpose(1, 0, 2, 3)
    gy[:, :, plan.hout:] = 0
    return rows


# --- the compiled path: each op one numba kernel on pieces of images -------------------------
# With numpy's OpenBLAS GEMM found (``_cblas``), the forward (and so the stride-1 input
# gradient) and the weight gradient are each one numba kernel (nogil) that runs a piece
# of the batch a step of images at a time -- the step unfolded into this piece's part of
# a flat buffer, the kernel rows' GEMMs called by address, the outputs written (+ bias,
# + residual) -- and the pieces, one per thread, are shared out by ``chunks.share_images``:
# no Python and no GIL hand-over per chunk, as conv_winograd and conv_phase do.  (As
# Python chunks under map_chunks, each chunk made about ten GIL-holding numpy calls, and
# at 2 threads the PixelCNNs' masked convs took 0.53-0.62 of their 1-thread time.)  A
# step is CHUNK_BYTES of unfolded input (whole images), as the chunks were.  The kernel
# rows' products are added in the GEMM (beta 1, in row order) instead of through a
# second buffer.  The weight gradient's partial sums are each piece's own block, its
# steps' products added into it (beta 1) in image order, the blocks added in piece order
# afterwards: the pieces depend only on the batch and the thread count, so the bits are
# the same every run at a given thread count.

# How many pieces (one per thread, one below chunks.MIN_SHARED_MULTIPLY_ADDS), as
# conv_winograd's (a module name, so that tests can replace it).
_pieces = image_pieces
_share = share_images


def _row_table(plan, in_per_group, out_per_group):
    """int64 (R, 5), per kept kernel row: its first kept column j0, its kept columns
    j1 - j0, its phase slot, its shift, and where its weight block (g, O/g, (j1-j0)*C/g)
    and its weight-gradient block (g, (j1-j0)*C/g, O/g) start in their flat arrays (of
    one size, so one offset); and that size."""
    table, at = [], 0
    for _, j0, j1, slot, shift in plan.rows:
        table.append((j0, j1 - j0, slot, shift, at))
        at += plan.groups * out_per_group * (j1 - j0) * in_per_group
    return np.array(table, dtype=np.int64).reshape(-1, 5), at


def _plan_steps(n, plan, channels, out_channels, itemsize):
    """(pieces, images per step): steps of about CHUNK_BYTES unfolded, no step longer
    than a piece (the buffers hold one step per piece)."""
    kept = sum(j1 - j0 for _, j0, j1, _, _ in plan.rows) * (channels // plan.groups)
    pieces = _pieces(n, n * plan.hout * plan.wout * out_channels * kept)
    per_image = _unfold_bytes(plan, channels, itemsize)
    return pieces, max(1, min(CHUNK_BYTES // max(1, per_image), -(-n // pieces)))


@njit(cache=True, nogil=True, fastmath=False)
def _valid_out(acc, y, start, stop, out_channels, hq, hout, wout):
    """y[n, o, p, q] = acc[o, (n - start)*Hq*Wout + p*Wout + q] for the images [start,
    stop) and the valid rows p < Hout (acc: the step's (O, k*Hq*Wout) flat, y flat)."""
    cols = (stop - start) * hq * wout
    plane = hout * wout
    for n in range(start, stop):
        at = n - start
        for o in range(out_channels):
            src = acc[o * cols + at * hq * wout:o * cols + at * hq * wout + plane]
            dst = y[(n * out_channels + o) * plane:(n * out_channels + o + 1) * plane]
            for i in range(plane):
                dst[i] = src[i]


@njit(cache=True, nogil=True, fastmath=False)
def _grad_rows_into(gy, e, start, stop, out_channels, hq, hout, wout):
    """e[o, (n - start)*Hq*Wout + p*Wout + q] = gy[n, o, p, q] for p < Hout, 0 for the
    rows past Hout (e: the step's (O, k*Hq*Wout) flat, gy flat)."""
    cols = (stop - start) * hq * wout
    plane = hout * wout
    for n in range(start, stop):
        at = n - start
        for o in range(out_channels):
            dst = e[o * cols + at * hq * wout:o * cols + (at + 1) * hq * wout]
            src = gy[(n * out_channels + o) * plane:(n * out_channels + o + 1) * plane]
            for i in range(plane):
                dst[i] = src[i]
            for i in range(plane, hq * wout):
                dst[i] = 0


@njit(cache=True, nogil=True, fastmath=False)
def _forward_pieces(function, x, weights, table, y, bias, residual, u_buf, acc_buf, phases,
                    kw, groups, hq, hout, wout, sh, sw, pt, pl, dw, step, per, lo, hi):
    """y for images [lo, hi), ``step`` images at a time: the step unfolded (``_unfold``)
    into this piece's part of u_buf, for each kept kernel row and group
    acc_g (O/g, cols) (+)= W_gi @ its shifted block of U into its part of acc_buf (the
    first row written, the others added), the valid rows into y, + bias, + residual."""
    channels = x.shape[1]
    out_channels = y.size // (x.shape[0] * hout * wout)
    cg, og = channels // groups, out_channels // groups
    image_len = hq * wout
    u_rows = phases.shape[0] * kw * channels
    piece = lo // per
    u_at = piece * u_rows * step * image_len
    acc_at = piece * out_channels * step * image_len
    for start in range(lo, hi, step):
        stop = min(hi, start + step)
        k = stop - start
        length = k * image_len
        cols = (k - 1) * image_len + hout * wout
        u = u_buf[u_at:u_at + u_rows * length].reshape((phases.shape[0], kw * channels, length))
        _unfold(x[start:stop], u, phases, kw, groups, hq, wout, sh, sw, pt, pl, dw)
        for r in range(table.shape[0]):
            j0, width, slot, shift, w_at = table[r, 0], table[r, 1], table[r, 2], table[r, 3], \
                table[r, 4]
            kr = width * cg
            beta = 0.0 if r == 0 else 1.0
            for g in range(groups):
                gemm(function, NO_TRANS, NO_TRANS, og, cols, kr, weights, w_at + g * og * kr, kr,
                     u_buf, u_at + (slot * kw * channels + (g * kw + j0) * cg) * length
                     + shift * wout, length, beta, acc_buf, acc_at + g * og * length, length)
        _valid_out(acc_buf[acc_at:acc_at + out_channels * length], y, start, stop,
                   out_channels, hq, hout, wout)
        add_terms_images(y, bias, residual, start, stop, out_channels, hout * wout)


@njit(cache=True, nogil=True, fastmath=False)
def _weight_grad_pieces(function, x, gy, table, parts, size, u_buf, e_buf, phases, kw, groups,
                        hq, hout, wout, sh, sw, pt, pl, dw, step, per, lo, hi):
    """This piece's part of the weight gradient (``size`` values: for each kept row, its
    (g, (j1-j0)*C/g, O/g) block): over images [lo, hi), ``step`` images at a time,
    U_gi @ GY_g^T for each kept row and group, the first step's written, the later ones' added
    (beta 1), in image order."""
    channels = x.shape[1]
    out_channels = gy.size // (x.shape[0] * hout * wout)
    cg, og = channels // groups, out_channels // groups
    image_len = hq * wout
    u_rows = phases.shape[0] * kw * channels
    piece = lo // per
    u_at = piece * u_rows * step * image_len
    e_at = piece * out_channels * step * image_len
    p_at = piece * size
    for start in range(lo, hi, step):
        stop = min(hi, start + step)
        k = stop - start
        length = k * image_len
        cols = (k - 1) * image_len + hout * wout
        beta = 0.0 if start == lo else 1.0
        u = u_buf[u_at:u_at + u_rows * length].reshape((phases.shape[0], kw * channels, length))
        _unfold(x[start:stop], u, phases, kw, groups, hq, wout, sh, sw, pt, pl, dw)
        _grad_rows_into(gy, e_buf[e_at:e_at + out_channels * length], start, stop,
                        out_channels, hq, hout, wout)
        for r in range(table.shape[0]):
            j0, width, slot, shift, w_at = table[r, 0], table[r, 1], table[r, 2], table[r, 3], \
                table[r, 4]
            kr = width * cg
            for g in range(groups):
                # gW_gi^T += U_gi @ GY_g^T: the long column axis reduced with the tall
                # operand first (as the np.matmul path: OpenBLAS's fast orientation)
                gemm(function, NO_TRANS, TRANS, kr, og, cols, u_buf,
                     u_at + (slot * kw * channels + (g * kw + j0) * cg) * length
                     + shift * wout, length, e_buf, e_at + g * og * length, length, beta,
                     parts, p_at + w_at + g * kr * og, og)


def _forward_compiled(function, x, weight, plan, bias, residual):
    n, channels = x.shape[:2]
    out_channels, in_per_group = weight.shape[:2]
    weights = np.concatenate([w.reshape(-1) for w in _row_weights(weight, plan, False)])
    table, _ = _row_table(plan, in_per_group, out_channels // plan.groups)
    y = _empty((n, out_channels, plan.hout, plan.wout), dtype=x.dtype)
    pieces, step = _plan_steps(n, plan, channels, out_channels, x.itemsize)
    length = step * plan.hq * plan.wout
    _share(_forward_pieces, n, pieces, function, x, weights.astype(x.dtype, copy=False),
           table, y.reshape(-1), _terms(bias, x.dtype), _terms(residual, x.dtype),
           _empty(pieces * len(plan.phases) * plan.kw * channels * length, dtype=x.dtype),
           _empty(pieces * out_channels * length, dtype=x.dtype), *_kernel_geometry(plan),
           step)
    return y


def _weight_grad_compiled(function, x, grad_y, plan):
    n, channels = x.shape[:2]
    out_channels = grad_y.shape[1]
    g = plan.groups
    in_per_group = channels // g
    table, size = _row_table(plan, in_per_group, out_channels // g)
    pieces, step = _plan_steps(n, plan, channels, out_channels, x.itemsize)
    parts = _empty((pieces, size), dtype=x.dtype)
    length = step * plan.hq * plan.wout
    made = _share(_weight_grad_pieces, n, pieces, function, x, grad_y.reshape(-1), table,
                  parts.reshape(-1), size,
                  _empty(pieces * len(plan.phases) * plan.kw * channels * length, dtype=x.dtype),
                  _empty(pieces * out_channels * length, dtype=x.dtype),
                  *_kernel_geometry(plan), step)
    total = parts[0]
    for p in range(1, made):        # (in piece order: the same sum every run)
        total = total + parts[p]
    grad_w = np.zeros((out_channels, in_per_group, plan.kh, plan.kw), dtype=x.dtype)
    for (i, j0, j1, _, _), (_, _, _, _, at) in zip(plan.rows, table.tolist()):
        block = total[at:at + g * (j1 - j0) * in_per_group * (out_channels // g)]
        block = block.reshape(g, j1 - j0, in_per_group, out_channels // g)
        grad_w[:, :, i, j0:j1] = block.transpose(0, 3, 2, 1).reshape(out_channels,
                                                                     in_per_group, j1 - j0)
    return grad_w


def _kernel_geometry(plan):
    return (plan.phases, plan.kw, plan.groups, plan.hq, plan.hout, plan.wout, plan.sh, plan.sw,
            plan.top, plan.left, plan.dw)


def _forward(x, weight, plan, bias=None, residual=None):
    """The forward on the compiled path when numpy's OpenBLAS GEMM is found (and x
    holds an image), else through np.matmul chunk by chunk."""
    function = _cblas.address_for(x.dtype)
    if function is not None and weight.dtype == x.dtype and x.shape[0]:
        return _forward_compiled(function, x, weight, plan, bias, residual)
    return _forward_matmul(x, weight, plan, bias, residual)


# --- the three ops ---------------------------------------------------------------------------
def _forward_matmul(x, weight, plan, bias=None, residual=None):
    n, channels = x.shape[:2]
    out_channels, in_per_group = weight.shape[:2]
    hq, hout, wout = plan.hq, plan.hout, plan.wout
    weights = _row_weights(weight, plan, transpose=False)
    y = _empty((n, out_channels, hout, wout), dtype=x.dtype)
    chunks, buffers = _plan_chunks(n, plan, channels, out_channels, x.dtype)

    def chunk(slot, start, stop):
        buffer, acc, part = buffers.get(slot)
        k = stop - start
        cols = plan.cols(k)
        u = _unfolded(x[start:stop], plan, buffer)
        for index, row in enumerate(plan.rows):
            operand = _block(u, plan, row, cols, in_per_group)
            if index == 0:
                np.matmul(weights[index], operand, out=acc[:, :, :cols])
            else:
                np.matmul(weights[index], operand, out=part[:, :, :cols])
                np.add(acc[:, :, :cols], part[:, :, :cols], out=acc[:, :, :cols])
        # the valid rows (p < Hout) of each image, back to (k, O, Hout, Wout), with the
        # bias (or else the residual) added in the same pass
        per_image = acc[:, :, :k * hq * wout].reshape(out_channels, k, hq, wout)
        valid = per_image[:, :, :hout].transpose(1, 0, 2, 3)
        out = y[start:stop]
        if bias is not None:
            np.add(valid, bias.reshape(-1, 1, 1), out=out)
            add_terms(out, None, None if residual is None else residual[start:stop])
        elif residual is not None:
            np.add(valid, residual[start:stop], out=out)
        else:
            out[...] = valid

    map_chunks(chunk, chunks)
    return y


def forward(x, weight, geom, taps, bias=None, residual=None):
    plan = plan_of(geom, taps)
    residual = None if residual is None else _oriented(residual, plan)
    y = _forward(_oriented(np.ascontiguousarray(x), plan), _oriented(weight, plan), plan, bias,
                 residual)
    return _oriented(y, plan)


def weight_grad(x, grad_y, geom, taps):
    plan = plan_of(geom, taps)
    x = _oriented(np.ascontiguousarray(x), plan)
    grad_y = _oriented(np.ascontiguousarray(grad_y), plan)
    function = _cblas.address_for(x.dtype)
    if function is not None and grad_y.dtype == x.dtype and x.shape[0]:
        return _oriented(_weight_grad_compiled(function, x, grad_y, plan), plan)
    return _oriented(_weight_grad_matmul(x, grad_y, plan), plan)


def _weight_grad_matmul(x, grad_y, plan):
    n, channels = x.shape[:2]
    out_channels = grad_y.shape[1]
    g = plan.groups
    in_per_group = channels // g
    chunks, buffers = _plan_chunks(n, plan, channels, out_channels, x.dtype)
    totals = [np.zeros((g, (j1 - j0) * in_per_group, out_channels // g), x.dtype)
              for _, j0, j1, _, _ in plan.rows]

    def chunk(slot, start, stop, add):
        buffer, rows, _ = buffers.get(slot)
        cols = plan.cols(stop - start)
        u = _unfolded(x[start:stop], plan, buffer)
        gy_t = _grad_rows(grad_y[start:stop], plan, rows)[:, :, :cols].transpose(0, 2, 1)
        for index, row in enumerate(plan.rows):
            # gW_i^T += U_i @ GY^T: the long column axis reduced with the tall operand
            # first, the orientation OpenBLAS runs fastest for these shapes.
            add(index, np.matmul(_block(u, plan, row, cols, in_per_group), gy_t))

    sum_chunks(chunk, chunks, totals)       # (in chunk order: the same sums every run)
    grad_w = np.zeros((out_channels, in_per_group, plan.kh, plan.kw), dtype=x.dtype)
    for total, (i, j0, j1, _, _) in zip(totals, plan.rows):
        block = total.reshape(g, j1 - j0, in_per_group, out_channels // g)
        grad_w[:, :, i, j0:j1] = block.transpose(0, 3, 2, 1).reshape(out_channels,
                                                                     in_per_group, j1 - j0)
    return grad_w


def _flipped(weight, groups):
    """The weight of the transposed conv as a conv: (C, O/g, kh, kw), taps reversed."""
    out_channels, in_per_group, kh, kw = weight.shape
    w = weight.reshape(groups, out_channels // groups, in_per_group, kh, kw)
    w = w.transpose(0, 2, 1, 3, 4).reshape(groups * in_per_group, out_channels // groups, kh, kw)
    return w[:, :, ::-1, ::-1]


def _adjoint(grad_y, weight, plan):
    """The transposed convolution as the adjoint of ``_forward``: GEMMs into the
    unfolded layout, then ``_fold``."""
    n, out_channels = grad_y.shape[:2]
    in_per_group = weight.shape[1]
    channels = in_per_group * plan.groups
    weights = _row_weights(weight, plan, transpose=True)
    grad_x = _empty((n, channels, plan.height, plan.width), dtype=grad_y.dtype)
    chunks, buffers = _plan_chunks(n, plan, channels, out_channels, grad_y.dtype)

    def chunk(slot, start, stop):
        buffer, rows, _ = buffers.get(slot)
        k = stop - start
        cols = plan.cols(k)
        shape = (len(plan.phases), plan.kw * channels, k * plan.hq * plan.wout)
        gu = buffer[:shape[0] * shape[1] * shape[2]].reshape(shape)
        gu[...] = 0
        gy = _grad_rows(grad_y[start:stop], plan, rows)[:, :, :cols]
        for w_t, row in zip(weights, plan.rows):
            block = _block(gu, plan, row, cols, in_per_group)
            np.add(block, np.matmul(w_t, gy), out=block)
        _fold(gu, grad_x[start:stop], *plan.unfold_args())

    map_chunks(chunk, chunks)
    return grad_x


def input_grad(grad_y, weight, geom, taps):
    """The transposed convolution.  With stride 1 it is itself a convolution: of
    grad_y with the weight flipped in both axes and its channel axes swapped, padded
    by dilation*(k-1) - padding, so it runs as ``_forward`` (the fold's scattered
    adds cost more); strided, as the adjoint."""
    p = plan_of(geom, taps)
    grad_y, weight = _oriented(np.ascontiguousarray(grad_y), p), _oriented(weight, p)
    if (p.sh, p.sw) != (1, 1):
        return _oriented(_adjoint(grad_y, weight, p), p)
    flipped = RowPlan((1, 1), (p.dh, p.dw), p.dh * (p.kh - 1) - p.top, p.dw * (p.kw - 1) - p.left,
                      (p.kh, p.kw), (p.hout, p.wout), (p.height, p.width), p.groups,
                      [(p.kh - 1 - i, p.kw - 1 - j) for i, j in p.taps.tolist()])
    return _oriented(_forward(grad_y, _flipped(weight, p.groups), flipped), p)
