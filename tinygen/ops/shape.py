"""Shape family: reshape, permute, broadcast/sum-to, concatenate, pad, indexing.

These move data without arithmetic, so each backward is the inverse movement:
reshape <-> reshape, permute <-> inverse permute, broadcast_to <-> sum_to,
getitem <-> scatter-add into zeros, concatenate -> slices, pad -> slice.
"""
import math
import numbers

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module, cuda, to_device
from ..autograd._torch_names import torch_names
from ._operands import as_tensor
# broadcast_to and its adjoint sum_to are autograd primitives (the engine undoes
# broadcasting with sum_to); this family re-exports them.
from ..autograd.primitives import BroadcastTo, SumTo, broadcast_to, sum_to  # noqa: F401


# --- axis helpers ------------------------------------------------------------------
def normalize_axis(axis, ndim, shape=None):
    """A single axis in [-ndim, ndim) as a non-negative int, or an error naming it."""
    if type(axis) is not int:  # a plain int (the usual case) skips the ABC check below
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis must be an int, got {axis!r}")
        axis = int(axis)
    # A 0-d tensor accepts axis 0 and -1, like PyTorch.
    valid = axis in (0, -1) if ndim == 0 else -ndim <= axis < ndim
    if not valid:
        where = f" (shape {tuple(shape)})" if shape is not None else ""
        raise ValueError(f"axis {axis} is out of range for a tensor with {ndim} dimensions{where}")
    return axis % ndim if ndim else 0


def normalize_axes(axis, ndim, shape=None):
    """None (all), an int or a sequence of ints, as a sorted tuple of distinct axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = tuple(normalize_axis(a, ndim, shape) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"repeated axis in {tuple(axis)}")
        return tuple(sorted(axes))
    if ndim == 0:
        normalize_axis(axis, 0, shape)
        return ()
    return (normalize_axis(axis, ndim, shape),)


def _resolve_shape(shape, size, input_shape):
    shape = tuple([int(s) for s in shape])
    unknown = [i for i, s in enumerate(shape) if s == -1]
    if len(unknown) > 1 or any(s < -1 for s in shape):
        raise ValueError(f"invalid shape {shape}: at most one -1 and no other negative sizes")
    # math.prod: exact Python ints, and a few microseconds less than np.prod per reshape
    known = math.prod([s for s in shape if s != -1])
    if unknown:
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape a tensor of shape {input_shape} into {shape}")
        shape = shape[: unknown[0]] + (size // known,) + shape[unknown[0] + 1:]
    elif known != size:
        raise ValueError(
            f"cannot reshape a tensor of shape {input_shape} ({size} elements) into {shape} "
            f"({known} elements)"
        )
    return shape


# --- reshape and friends ---------------------------------------------------------------
class Reshape(Function):
    def forward(self, a, shape):
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, grad):
        # grad has this node's output shape, which has in_shape's size: no checks to redo
        return Reshape.apply(grad, shape=self.in_shape)


def reshape(x, shape):
    shape = _resolve_shape(shape, x.numel(), x.shape)
    if shape == x.shape:
        return x
    return Reshape.apply(x, shape=shape)


view = reshape


@torch_names
def squeeze(x, axis=None):
    """Drop size-1 axes (all of them, or the given ones if they have size 1)."""
    if axis is None:
        axes = [i for i, s in enumerate(x.shape) if s == 1]
    else:
        axes = [a for a in normalize_axes(axis, x.ndim, x.shape) if x.shape[a] == 1]
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


@torch_names
def unsqueeze(x, axis):
    axis = normalize_axis(axis, x.ndim + 1, x.shape)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, (1,))
    start = normalize_axis(start_dim, x.ndim, x.shape)
    end = normalize_axis(end_dim, x.ndim, x.shape)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = math.prod(x.shape[start:end + 1])
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1:])


class Permute(Function):
    def forward(self, a, dims):
        self.dims = dims
        return a.transpose(dims)

    def backward(self, grad):
        # The inverse permutation; a permutation by construction, so permute()'s checks
        # are not redone.
        inverse = [0] * len(self.dims)
        for position, axis in enumerate(self.dims):
            inverse[axis] = position
        return Permute.apply(grad, dims=tuple(inverse))


def permute(x, dims):
    dims = tuple(normalize_axis(d, x.ndim, x.shape) for d in dims)
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} axes of {x.shape}")
    if dims == tuple(range(x.ndim)):
        return x
    return Permute.apply(x, dims=dims)


def transpose(x, dim0=-2, dim1=-1):
    ndim = x.data.ndim
    a, b = normalize_axis(dim0, ndim, x.shape), normalize_axis(dim1, ndim, x.shape)
    if a == b:
        return x
    # A swap of two valid axes is a permutation: permute()'s checks are not redone
    # (matmul's backward transposes on every step).
    dims = list(range(ndim))
    dims[a], dims[b] = b, a
    return Permute.apply(x, dims=tuple(dims))


# --- broadcasting (broadcast_to and sum_to: tinygen/autograd/primitives.py) ----------------
def expand(x, sizes):
    """PyTorch's expand: -1 keeps a dimension's size; new dimensions go in front."""
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < x.ndim:
        raise ValueError(f"expand: {sizes} has fewer dimensions than the tensor's {x.shape}")
    lead = len(sizes) - x.ndim
    shape = tuple(
        (x.shape[i - lead] if s == -1 else s) if i >= lead else s for i, s in enumerate(sizes)
    )
    if any(s < 0 for s in shape[:lead]):
        raise ValueError(f"expand: -1 is not allowed for new leading dimensions in {sizes}")
    return broadcast_to(x, shape)


# --- joining and splitting ------------------------------------------------------------------
class Concatenate(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return array_module(arrays[0]).concatenate(arrays, axis=axis)

    def backward(self, grad):
        grads, start = [], 0
        for size in self.sizes:
            index = (slice(None),) * self.axis + (slice(start, start + size),)
            grads.append(getitem(grad, index))
            start += size
        return tuple(grads)


@torch_names
def concatenate(tensors, axis=0):
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("concatenate: zero-dimensional tensors cannot be concatenated")
    axis = normalize_axis(axis, first.ndim, first.shape)
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis
        ):
            raise ValueError(
                "concatenate: shapes must match except along axis "
                f"{axis}, got {[x.shape for x in tensors]}"
            )
        if t.dtype != first.dtype:
            raise TypeError(f"concatenate: dtype mismatch, {[str(x.dtype) for x in tensors]}")
    if len(tensors) == 1:
        return first
    return Concatenate.apply(*tensors, axis=axis)


cat = concatenate


@torch_names
def stack(tensors, axis=0):
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {[t.shape for t in tensors]}")
    axis = normalize_axis(axis, tensors[0].ndim + 1, tensors[0].shape)
    return concatenate([unsqueeze(t, axis) for t in tensors], axis)


@torch_names
def split(x, split_size_or_sections, axis=0):
    """PyTorch's split: equal chunks of a size, or a list of section sizes."""
    axis = normalize_axis(axis, x.ndim, x.shape)
    n = x.shape[axis]
    if isinstance(split_size_or_sections, numbers.Integral):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise ValueError(f"split: sections {sizes} do not add up to size {n} of axis {axis}")
    parts, start = [], 0
    for size in sizes:
        parts.append(getitem(x, (slice(None),) * axis + (slice(start, start + size),)))
        start += size
    return tuple(parts)


@torch_names
def chunk(x, chunks, axis=0):
    if isinstance(chunks, bool) or not isinstance(chunks, numbers.Integral) or chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    axis = normalize_axis(axis, x.ndim, x.shape)
    n = x.shape[axis]
    return split(x, -(-n // chunks) if n else 1, axis)


# --- padding ---------------------------------------------------------------------------------
def _pad_widths(x, pad):
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(
            f"pad: expected an even number of values for at most {x.ndim} dimensions, got {pad}"
        )
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding {pad} is not supported")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):  # PyTorch order: last dimension first
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return tuple(widths)


class ConstantPad(Function):
    def forward(self, a, widths, value):
        self.widths = widths
        return array_module(a).pad(a, widths, mode="constant", constant_values=value)

    def backward(self, grad):
        index = tuple(slice(lo, grad.shape[i] - hi) for i, (lo, hi) in enumerate(self.widths))
        return getitem(grad, index)


def _edge_indices(n, lo, hi, mode):
    """Source index of every padded position along one axis (reflect/replicate/circular)."""
    positions = np.arange(-lo, n + hi)
    if mode == "replicate":
        return np.clip(positions, 0, n - 1)
    if mode == "circular":
        return positions % n
    # reflect (no edge repeat), as numpy/PyTorch 'reflect'
    period = 2 * (n - 1)
    positions = np.abs(positions) % period if period else np.zeros_like(positions)
    return np.where(positions >= n, period - positions, positions)


def pad(x, pad, mode="constant", value=0.0):
    """PyTorch's F.pad: ``pad`` lists (left, right) for the last dim, then the one before..."""
    widths = _pad_widths(x, pad)
    if mode == "constant":
        if all(w == (0, 0) for w in widths):
            return x
        return ConstantPad.apply(x, widths=widths, value=value)
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(
            f"pad: unknown mode {mode!r}; expected 'constant', 'reflect', 'replicate' or 'circular'"
        )
    # Non-constant padding is a gather along each padded axis, so its backward
    # (scatter-add) comes from getitem's and needs no code of its own.
    out = x
    for axis, (lo, hi) in enumerate(widths):
        if lo == hi == 0:
            continue
        n = x.shape[axis]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ValueError(
                f"pad: reflect padding ({lo}, {hi}) must be smaller than the size {n} of axis {axis}"
            )
        if mode == "circular" and (lo > n or hi > n):
            raise ValueError(
                f"pad: circular padding ({lo}, {hi}) must not exceed the size {n} of axis {axis}"
            )
        index = (slice(None),) * axis + (_edge_indices(n, lo, hi, mode),)
        out = getitem(out, index)
    return out


# --- indexing -----------------------------------------------------------------------------
def _is_basic(index):
    return all(
        i is None or i is Ellipsis or isinstance(i, slice)
        or (isinstance(i, numbers.Integral) and not isinstance(i, bool))
        for i in index
    )


def _normalize_index(index, xp):
    if not isinstance(index, tuple):
        index = (index,)
    device = "cpu" if xp is np else "cuda"
    out = []
    for i in index:
        if isinstance(i, Tensor):
            i = i.data
        # Index arrays follow the indexed tensor to its device (as a CPU index may
        # index a GPU tensor in PyTorch): numpy cannot index with a device array.
        if isinstance(i, list):
            i = xp.asarray(i)
        elif isinstance(i, np.ndarray) or cuda.is_cupy_array(i):
            i = to_device(i, device)
        if hasattr(i, "dtype") and not (i.dtype.kind in "iub"):
            raise IndexError(f"tensors used as indices must be integer or boolean, got {i.dtype}")
        out.append(i)
    return tuple(out)


def _scatter_add(xp, target, index, values):
    if xp is np:
        np.add.at(target, index, values)
    else:
        cuda.cupyx.scatter_add(target, index, values)


class GetItem(Function):
    def forward(self, a, index):
        self.index = index
        self.in_shape = a.shape
        return a[index]

    def backward(self, grad):
        return ScatterAdd.apply(grad, index=self.index, shape=self.in_shape)


class ScatterAdd(Function):
    """Zeros of ``shape`` with ``grad`` added at ``index`` (repeats accumulate)."""

    def forward(self, g, index, shape):
        self.index = index
        xp = array_module(g)
        out = xp.zeros(shape, dtype=g.dtype)
        if _is_basic(index):
            out[index] = g
        else:
            _scatter_add(xp, out, index, g)
        return out

    def backward(self, grad):
        return getitem(grad, self.index)


def getitem(x, index):
    index = _normalize_index(index, array_module(x.data))
    try:
        # forward runs before anything is recorded, so a bad index leaves no node.
        return GetItem.apply(x, index=index)
    except IndexError as exc:
        raise IndexError(f"{exc} (indexing a tensor of shape {x.shape})") from None


def gather(x, dim, index):
    """PyTorch's gather: ``out[i][j][k] = x[i][index[i][j][k]][k]`` for dim=1."""
    index_array = index.data if isinstance(index, Tensor) else np.asarray(index)
    if index_array.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got {index_array.dtype}")
    dim = normalize_axis(dim, x.ndim, x.shape)
    if index_array.ndim != x.ndim:
        raise ValueError(
            f"gather: index has {index_array.ndim} dimensions but the input has {x.ndim} "
            f"(shapes {tuple(index_array.shape)} and {x.shape})"
        )
    for d in range(x.ndim):
        if d != dim and index_array.shape[d] > x.shape[d]:
            raise ValueError(
                f"gather: index shape {tuple(index_array.shape)} exceeds input shape {x.shape} "
                f"in dimension {d}"
            )
    if index_array.size and (int(index_array.min()) < 0 or int(index_array.max()) >= x.shape[dim]):
        raise IndexError(
            f"gather: index values must lie in [0, {x.shape[dim]}) for dimension {dim}, got "
            f"[{int(index_array.min())}, {int(index_array.max())}]"
        )
    xp = array_module(x.data)
    index_array = to_device(index_array, x.device)
    grids = []
    for d, n in enumerate(index_array.shape):
        if d == dim:
            grids.append(index_array)
        else:
            shape = [1] * index_array.ndim
            shape[d] = n
            grids.append(xp.arange(n).reshape(shape))
    return getitem(x, tuple(grids))
