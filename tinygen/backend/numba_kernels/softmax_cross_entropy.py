"""Softmax cross-entropy with class-index targets on the CPU: one numba kernel each way.

Same functions and signatures as ``tinygen.backend.reference.softmax_cross_entropy``
(read that first); tested against it.  The unfused graph (log_softmax, gather, their
backwards) makes about ten passes over the (N, K, S) logits with as many temporaries
of that size (a PixelCNN's 256 classes x 28 x 28 x 32 images: 25 MB each); here the
forward reads the logits twice (max, then the sum of exponentials) and writes only
(N, S) results, and the backward reads them once and writes the gradient once.  Work
is split over the N images (ranges of images shared out among threads by
``chunks.share_rows`` from SHARE_THRESHOLD elements); one image's (K, S) block stays
in cache between the passes over it.

float32 uses the vectorisable exp of ``_vmath.py`` (within 2 ulp; every exponent
here is x - max <= 0, its domain); float64 (gradchecks) and other dtypes take the
reference.
"""
import numpy as np

from ._vmath import F32 as _F32, ZERO as _ZERO, exp_nonpositive as _exp
from .activations import _kernel
from .chunks import share_rows as _share_rows
from ..reference import softmax_cross_entropy as _reference


def _forward_planes_loop(x3, target, loss, lse):
    n_images, n_classes, size = x3.shape
    for n in range(n_images):
        x = x3[n]
        top = np.empty(size, dtype=np.float32)
        total = np.empty(size, dtype=np.float32)
        for s in range(size):
            top[s] = x[0, s]
        for k in range(1, n_classes):
            row = x[k]
            for s in range(size):
                v = row[s]
                top[s] = v if v > top[s] else top[s]   # a NaN reaches total below
        for s in range(size):
            total[s] = _ZERO
        for k in range(n_classes):
            row = x[k]
            for s in range(size):
                total[s] += _exp(row[s] - top[s])
        for s in range(size):
            value = top[s] + _F32(np.log(total[s]))
            lse[n, s] = value
            t = target[n, s]
            loss[n, s] = value - x[t, s] if t >= 0 else _ZERO


def _backward_planes_loop(g, x3, target, lse, out):
    n_images, n_classes, size = x3.shape
    for n in range(n_images):
        x, o, tn, ln = x3[n], out[n], target[n], lse[n]
        scale = np.empty(size, dtype=np.float32)
        for s in range(size):
            scale[s] = g[n, s] if tn[s] >= 0 else _ZERO
        for k in range(n_classes):
            row, orow = x[k], o[k]
            for s in range(size):
                orow[s] = scale[s] * _exp(row[s] - ln[s])
        for s in range(size):
            t = tn[s]
            if t >= 0:
                o[t, s] -= scale[s]


def _forward_rows_loop(x2, target, loss, lse):
    # S == 1 (logits (N, K)): the classes are the contiguous axis
    n_rows, n_classes = x2.shape
    for n in range(n_rows):
        row = x2[n]
        top = row[0]
        for k in range(1, n_classes):
            top = row[k] if row[k] > top else top
        total = _ZERO
        for k in range(n_classes):
            total += _exp(row[k] - top)
        value = top + _F32(np.log(total))
        lse[n] = value
        t = target[n]
        loss[n] = value - row[t] if t >= 0 else _ZERO


def _backward_rows_loop(g, x2, target, lse, out):
    n_rows, n_classes = x2.shape
    for n in range(n_rows):
        t = target[n]
        scale = g[n] if t >= 0 else _ZERO
        row, orow, value = x2[n], out[n], lse[n]
        for k in range(n_classes):
            orow[k] = scale * _exp(row[k] - value)
        if t >= 0:
            orow[t] -= scale


_FORWARD_PLANES = _kernel(_forward_planes_loop)
_BACKWARD_PLANES = _kernel(_backward_planes_loop)
_FORWARD_ROWS = _kernel(_forward_rows_loop)
_BACKWARD_ROWS = _kernel(_backward_rows_loop)


def _by_rows(kernel, size, *arrays):
    """``kernel(*arrays)`` on ranges of the arrays' rows (axis 0, the images), shared out
    among threads when ``size`` (elements) is large enough."""
    _share_rows(kernel, arrays[0].shape[0], size, *arrays)


def _fast(*arrays):
    for a in arrays:    # (a loop: a generator is one more call, on every step)
        if a.dtype != np.float32:
            return False
    return True


def cross_entropy_forward(x3, target):
    """(loss (N, S), lse (N, S)) in x3's dtype; loss is 0 where target is -1."""
    if not _fast(x3):
        return _reference.cross_entropy_forward(x3, target)
    x3 = np.ascontiguousarray(x3)
    target = np.ascontiguousarray(target, dtype=np.int64)
    n, _, size = x3.shape
    loss = np.empty((n, size), dtype=np.float32)
    lse = np.empty((n, size), dtype=np.float32)
    if size == 1:
        _by_rows(_FORWARD_ROWS, x3.size, x3[:, :, 0], target[:, 0], loss[:, 0], lse[:, 0])
    else:
        _by_rows(_FORWARD_PLANES, x3.size, x3, target, loss, lse)
    return loss, lse


def cross_entropy_backward(g, x3, target, lse):
    """dx3 (N, K, S): the loss' gradient for upstream ``g`` (N, S); 0 where target is -1."""
    if not _fast(g, x3, lse):
        return _reference.cross_entropy_backward(g, x3, target, lse)
    x3 = np.ascontiguousarray(x3)
    g, lse = np.ascontiguousarray(g), np.ascontiguousarray(lse)
    target = np.ascontiguousarray(target, dtype=np.int64)
    out = np.empty(x3.shape, dtype=np.float32)
    if x3.shape[2] == 1:
        _by_rows(_BACKWARD_ROWS, x3.size, g[:, 0], x3[:, :, 0], target[:, 0], lse[:, 0],
                 out[:, :, 0])
    else:
        _by_rows(_BACKWARD_PLANES, x3.size, g, x3, target, lse, out)
    return out
