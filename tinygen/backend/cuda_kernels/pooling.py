"""The 'cuda' pooling family: same functions and results as
``tinygen.backend.numba_kernels.pooling`` (read ``tinygen.backend.reference.pooling``
for the semantics).

Only the gated activation has hand-written kernels (kernels/gated_activation.cu, via
``gated_activation``).  Pooling and nearest upsampling are written here with the
inputs' array module (``xp``: cupy on the GPU, numpy elsewhere) -- strided slices and
``where`` per kernel tap, ``bincount`` for the scatters -- which serves them until they
get kernels of their own.  Sums are formed in float64, as in the reference.
"""
from .. import array_module
from .gated_activation import gated_backward, gated_forward  # noqa: F401


def _padded(xp, x, pad_h, pad_w, need_h, need_w, fill):
    """``x`` inside a border of ``fill``, large enough for ``need_h`` x ``need_w``."""
    n, c, h, w = x.shape
    out = xp.full((n, c, max(need_h, h + 2 * pad_h), max(need_w, w + 2 * pad_w)), fill,
                  dtype=x.dtype)
    out[:, :, pad_h:pad_h + h, pad_w:pad_w + w] = x
    return out


def _tap(array, i, j, out_h, out_w, stride, dilation):
    """The element at tap (i, j) of every window, as an (..., out_h, out_w) view."""
    (sh, sw), (dh, dw) = stride, dilation
    return array[..., i * dh: i * dh + (out_h - 1) * sh + 1: sh,
                 j * dw: j * dw + (out_w - 1) * sw + 1: sw]


def _needed(out_size, kernel, stride, dilation):
    return (out_size - 1) * stride + (kernel - 1) * dilation + 1


def _scatter_add(xp, index, values, size, dtype):
    """zeros(size) with ``values`` added at ``index`` (flat, int64), in float64, as dtype."""
    total = xp.bincount(index.ravel(), weights=values.ravel().astype(xp.float64),
                        minlength=size)
    return total.astype(dtype)


# --- max pooling -------------------------------------------------------------------------------
def max_pool2d_forward(x, kernel, stride, padding, dilation, out_size):
    """Window maxima and their positions ``h * W + w`` (int64); ties to the first
    position, NaN wins (PyTorch's rules)."""
    xp = array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (ph, pw), (oh, ow) = kernel, padding, out_size
    need_h = _needed(oh, kh, stride[0], dilation[0])
    need_w = _needed(ow, kw, stride[1], dilation[1])
    padded = _padded(xp, x, ph, pw, need_h, need_w, -xp.inf)
    plane = xp.arange(h * w, dtype=xp.int64).reshape(1, 1, h, w)
    source = _padded(xp, plane, ph, pw, need_h, need_w, -1)[0, 0]
    best = xp.full((n, c, oh, ow), -xp.inf, dtype=x.dtype)
    index = xp.full((n, c, oh, ow), -1, dtype=xp.int64)
    for i in range(kh):
        for j in range(kw):
            value = _tap(padded, i, j, oh, ow, stride, dilation)
            where = _tap(source, i, j, oh, ow, stride, dilation)
            take = (value > best) | xp.isnan(value) | ((index < 0) & (where >= 0))
            best = xp.where(take, value, best)
            index = xp.where(take, where, index)
    return best, index


def gather_plane(x, indices):
    """``out[n, c, ...] = x[n, c].flat[indices[n, c, ...]]``."""
    xp = array_module(x)
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    return xp.take_along_axis(flat, indices.reshape(n, c, -1), axis=2).reshape(indices.shape)


def scatter_plane(g, indices, in_shape):
    """The adjoint of ``gather_plane``: zeros of ``in_shape`` with ``g`` added at ``indices``."""
    xp = array_module(g)
    n, c = in_shape[:2]
    plane = 1
    for size in in_shape[2:]:
        plane *= int(size)
    offsets = (xp.arange(n * c, dtype=xp.int64) * plane).reshape(n, c, 1)
    flat = indices.reshape(n, c, -1) + offsets
    return _scatter_add(xp, flat, g, n * c * plane, g.dtype).reshape(in_shape)


# --- average pooling ---------------------------------------------------------------------------
def avg_pool2d_forward(x, kernel, stride, padding, out_size, inv_divisor):
    """Window sums times ``inv_divisor`` ((out_h, out_w) float64); padding counts as 0."""
    xp = array_module(x)
    (kh, kw), (ph, pw), (oh, ow) = kernel, padding, out_size
    need_h = _needed(oh, kh, stride[0], 1)
    need_w = _needed(ow, kw, stride[1], 1)
    padded = _padded(xp, x, ph, pw, need_h, need_w, 0).astype(xp.float64)
    total = xp.zeros(x.shape[:2] + (oh, ow))
    for i in range(kh):
        for j in range(kw):
            total += _tap(padded, i, j, oh, ow, stride, (1, 1))
    return (total * xp.asarray(inv_divisor)).astype(x.dtype)


def avg_pool2d_adjoint(g, kernel, stride, padding, in_size, inv_divisor):
    """The transpose of ``avg_pool2d_forward`` (overlapping windows add up)."""
    xp = array_module(g)
    (kh, kw), (ph, pw), (h, w) = kernel, padding, in_size
    oh, ow = g.shape[2:]
    need_h = max(_needed(oh, kh, stride[0], 1), h + 2 * ph)
    need_w = max(_needed(ow, kw, stride[1], 1), w + 2 * pw)
    padded = xp.zeros(g.shape[:2] + (need_h, need_w))
    share = g.astype(xp.float64) * xp.asarray(inv_divisor)
    for i in range(kh):
        for j in range(kw):
            _tap(padded, i, j, oh, ow, stride, (1, 1))[...] += share
    return padded[:, :, ph:ph + h, pw:pw + w].astype(g.dtype)


# --- nearest upsampling --------------------------------------------------------------------------
def upsample_nearest_forward(x, rows, cols):
    """``out[n, c, i, j] = x[n, c, rows[i], cols[j]]``."""
    xp = array_module(x)
    rows, cols = xp.asarray(rows), xp.asarray(cols)
    return x[:, :, rows[:, None], cols[None, :]]


def upsample_nearest_adjoint(g, rows, cols, in_size):
    """The transpose: every output pixel's gradient is added to its source pixel."""
    xp = array_module(g)
    n, c = g.shape[:2]
    h, w = in_size
    rows, cols = xp.asarray(rows, dtype=xp.int64), xp.asarray(cols, dtype=xp.int64)
    plane = (rows[:, None] * w + cols[None, :]).reshape(1, 1, -1)
    offsets = (xp.arange(n * c, dtype=xp.int64) * (h * w)).reshape(n, c, 1)
    return _scatter_add(xp, plane + offsets, g, n * c * h * w, g.dtype).reshape(n, c, h, w)
