"""``Tensor``: an array (numpy or cupy) plus what autograd needs to know about it.

A tensor created by the user is a *leaf*; a tensor produced by an op that
recorded a node has ``grad_fn`` (that node) and ``_output_index`` (which of the
node's outputs it is).  Methods are thin wrappers over ``tinygen.ops`` so an op
is defined in exactly one place.  The op layer sits above this one and imports
Tensor, so this module does not import it: ``tinygen.ops`` binds itself to the name
``ops`` here when it is imported (which ``import tinygen`` always does).
"""
import numpy as np

# Module references (both import this module back): backward() finds the engine here
# rather than by an import statement per call (~1 us each).
from . import engine as _engine, functional as _functional
from ._torch_names import torch_names
from ..backend import array_module, device_of, to_device, to_numpy, normalize_device
from .primitives import clone

_FLOAT_KINDS = "f"


def _is_float(dtype):
    return np.dtype(dtype).kind in _FLOAT_KINDS


_TENSOR_KINDS = "biuf"     # booleans, integers, floats: what the ops are written for


def check_dtype(dtype):
    """Refuse data no op is written for (strings, objects, complex numbers, dates) when a
    tensor is made from the user's data, rather than fail later inside some op."""
    if np.dtype(dtype).kind not in _TENSOR_KINDS:
        raise TypeError(f"tinygen tensors hold booleans, integers or floating-point numbers; "
                        f"got data of dtype {np.dtype(dtype)} ({np.dtype(dtype).kind!r} kind)")


class Tensor:
    # numpy must defer to Tensor's reflected operators (np.float64(2) * t).
    __array_ufunc__ = None
    __array_priority__ = 1000

    __slots__ = ("data", "grad", "grad_fn", "_output_index", "_requires_grad", "_hooks",
                 "_vc", "__weakref__")

    def __init__(self, data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        xp = array_module(data)
        if not hasattr(data, "dtype") or not hasattr(data, "shape"):
            data = np.asarray(data)
            if data.dtype == np.float64:
                data = data.astype(np.float32)
        self.data = xp.asarray(data) if not isinstance(data, np.ndarray) else data
        check_dtype(self.data.dtype)
        self.grad = None
        self.grad_fn = None
        self._output_index = 0
        self._hooks = None
        self._vc = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _make(cls, data, grad_fn=None, output_index=0):
        """Fast internal constructor: ``data`` is already a backend array."""
        t = cls.__new__(cls)
        # numpy reductions may give a scalar (np.float32 has a shape but is no array: it
        # would take Function.apply's device check and could not be changed in place)
        if type(data) is not np.ndarray and (isinstance(data, np.generic)
                                             or not hasattr(data, "shape")):
            data = np.asarray(data)
        t.data = data
        t.grad = None
        t.grad_fn = grad_fn
        t._output_index = output_index
        t._hooks = None
        t._vc = None
        t._requires_grad = grad_fn is not None
        return t

    # --- autograd attributes ---------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and not _is_float(self.data.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )
        if not value and self.grad_fn is not None:
            raise RuntimeError(
                "requires_grad can only be switched off on a leaf tensor; use .detach() instead"
            )
        self._requires_grad = bool(value)

    def requires_grad_(self, value=True):
        self.requires_grad = value
        return self

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def _edge(self):
        """The graph edge that gradients for this tensor flow into."""
        if self.grad_fn is not None:
            return (self.grad_fn, self._output_index)
        return (self, 0)

    def detach(self):
        """The same data, cut from the graph (and the same version counter: an in-place
        change through either is seen by a backward that saved the other)."""
        t = Tensor._make(self.data)
        t._vc = self._version_counter()
        return t

    # --- the version counter -------------------------------------------------------
    # Every in-place change (fill_, copy_, zero_, assigning .data, an optimizer step)
    # bumps it; a Function that saved this tensor for backward compares the version it
    # saw with the current one (function.py), so a gradient is never computed from
    # overwritten values. ``_vc`` is None until first needed, then ``[version, what]``
    # (what: the latest in-place op, for the error message).
    def _version_counter(self):
        if self._vc is None:
            self._vc = [0, None]
        return self._vc

    @property
    def _version(self):
        return 0 if self._vc is None else self._vc[0]

    def _bump_version(self, what):
        vc = self._vc
        if vc is None:
            self._vc = [1, what]
        else:
            vc[0] += 1
            vc[1] = what

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (or only ``inputs``')."""
        if not self._requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the "
                "computation had requires_grad=True (or it ran under no_grad)"
            )
        gradient = _functional.default_grad_output(self, gradient)
        if retain_graph is None:
            retain_graph = create_graph
        if inputs is not None:
            inputs = _functional.as_tensor_tuple(inputs, "inputs")
            grads = _engine.run_backward([self], [gradient], retain_graph=retain_graph,
                                         create_graph=create_graph, inputs=inputs,
                                         allow_unused=True)
            for t, g in zip(inputs, grads):
                if g is not None:
                    _engine._accumulate_leaf(t, g, create_graph)
            return
        _engine.run_backward([self], [gradient], retain_graph=retain_graph,
                             create_graph=create_graph)

    # --- array attributes --------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape  # a tuple already (numpy and cupy)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return device_of(self.data)

    @property
    def ndim(self):
        return self.data.ndim

    def dim(self):
        return self.data.ndim

    def size(self, dim=None):
        if dim is None:
            return self.shape
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"size: axis must be an int, got {dim!r}")
        if not -self.ndim <= dim < self.ndim:
            raise ValueError(f"size: axis {dim} is out of range for a tensor with "
                             f"{self.ndim} dimensions (shape {self.shape})")
        return self.shape[dim]

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def numpy(self):
        """The data as a numpy array (copied from the GPU when needed)."""
        return to_numpy(self.data)

    def tolist(self):
        return self.numpy().tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous"
            )
        return bool(self.item())

    __hash__ = object.__hash__

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", precision=4, threshold=64,
                               prefix="tensor(")
        extras = []
        if self.dtype != np.float32:
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    # --- conversion ---------------------------------------------------------------
    def to(self, *args, dtype=None, device=None):
        """``to(dtype)``, ``to(device)``, or both; differentiable."""
        for arg in args:
            if isinstance(arg, str) and not _looks_like_dtype(arg):
                device = arg
            else:
                dtype = arg
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = ops.cast(out, dtype)
        if device is not None and normalize_device(device) != self.device:
            out = ops.to_device(out, device)
        return out

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def long(self):
        return self.to(np.int64)

    def cpu(self):
        return self.to(device="cpu")

    def cuda(self):
        return self.to(device="cuda")

    def clone(self):
        return clone(self)

    # --- in-place helpers (data only; never recorded, but versioned) ---------------
    def zero_(self):
        self.data[...] = 0
        self._bump_version("zero_")
        return self

    def fill_(self, value):
        self.data[...] = value
        self._bump_version("fill_")
        return self

    def copy_(self, other):
        """Copy ``other``'s values into this tensor's array, outside of autograd."""
        src = other.data if isinstance(other, Tensor) else other
        src = to_device(array_module(src).asarray(src), self.device)
        if tuple(src.shape) != self.shape:
            raise ValueError(f"copy_: shape {tuple(src.shape)} does not match {self.shape}")
        self.data[...] = src
        self._bump_version("copy_")
        return self

    # --- arithmetic -------------------------------------------------------------------
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __neg__(self): return ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return ops.abs(self)

    # Comparisons return boolean tensors and are not differentiable.
    def __eq__(self, other): return ops.eq(self, other)
    def __ne__(self, other): return ops.ne(self, other)
    def __lt__(self, other): return ops.lt(self, other)
    def __le__(self, other): return ops.le(self, other)
    def __gt__(self, other): return ops.gt(self, other)
    def __ge__(self, other): return ops.ge(self, other)
    def __invert__(self): return ops.logical_not(self)

    def __getitem__(self, index): return ops.getitem(self, index)

    def __setitem__(self, index, value):
        raise TypeError(
            "tensors do not support item assignment in a graph; build the result with "
            "where(), concatenate() or pad(), or write into .data outside autograd"
        )

    # --- elementwise ------------------------------------------------------------------
    def neg(self): return ops.neg(self)
    def abs(self): return ops.abs(self)
    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def log1p(self): return ops.log1p(self)
    def sqrt(self): return ops.sqrt(self)
    def tanh(self): return ops.tanh(self)
    def sigmoid(self): return ops.sigmoid(self)
    def relu(self): return ops.relu(self)
    def sign(self): return ops.sign(self)
    def clamp(self, min=None, max=None): return ops.clamp(self, min, max)
    def pow(self, exponent): return ops.pow(self, exponent)
    def maximum(self, other): return ops.maximum(self, other)
    def minimum(self, other): return ops.minimum(self, other)

    # --- reductions (numpy's axis/keepdims or PyTorch's dim/keepdim) -------------------
    @torch_names
    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    @torch_names
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    @torch_names
    def var(self, axis=None, keepdims=False, correction=1):
        return ops.var(self, axis, keepdims, correction=correction)
    @torch_names
    def std(self, axis=None, keepdims=False, correction=1):
        return ops.std(self, axis, keepdims, correction=correction)
    @torch_names(indices=lambda self, *a, **k: self.argmax(*a, **k))
    def max(self, axis=None, keepdims=False): return ops.max(self, axis, keepdims)
    @torch_names(indices=lambda self, *a, **k: self.argmin(*a, **k))
    def min(self, axis=None, keepdims=False): return ops.min(self, axis, keepdims)
    @torch_names
    def logsumexp(self, axis=None, keepdims=False): return ops.logsumexp(self, axis, keepdims)
    @torch_names
    def norm(self, p=2, axis=None, keepdims=False): return ops.norm(self, p, axis, keepdims)
    @torch_names
    def argmax(self, axis=None, keepdims=False): return ops.argmax(self, axis, keepdims)
    @torch_names
    def argmin(self, axis=None, keepdims=False): return ops.argmin(self, axis, keepdims)
    @torch_names
    def softmax(self, axis=-1): return ops.softmax(self, axis)
    @torch_names
    def log_softmax(self, axis=-1): return ops.log_softmax(self, axis)

    # --- shape -----------------------------------------------------------------------
    def reshape(self, *shape): return ops.reshape(self, _varargs(shape))
    def view(self, *shape): return ops.view(self, _varargs(shape))
    def transpose(self, dim0=-2, dim1=-1): return ops.transpose(self, dim0, dim1)
    def permute(self, *dims): return ops.permute(self, _varargs(dims))
    def expand(self, *sizes): return ops.expand(self, _varargs(sizes))
    def broadcast_to(self, shape): return ops.broadcast_to(self, shape)
    @torch_names
    def squeeze(self, axis=None): return ops.squeeze(self, axis)
    @torch_names
    def unsqueeze(self, axis): return ops.unsqueeze(self, axis)
    def flatten(self, start_dim=0, end_dim=-1): return ops.flatten(self, start_dim, end_dim)
    def gather(self, dim, index): return ops.gather(self, dim, index)

    @property
    def T(self):
        return ops.permute(self, tuple(reversed(range(self.ndim))))

    # --- hooks --------------------------------------------------------------------------
    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed.

        The hook may return a replacement gradient.  Returns a handle whose
        ``remove()`` unregisters it.
        """
        from .hooks import register_tensor_hook

        return register_tensor_hook(self, hook)


def _varargs(args):
    """Accept both f(2, 3) and f((2, 3))."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _looks_like_dtype(name):
    try:
        np.dtype(name)
        return True
    except TypeError:
        return False


class _OpsNotBound:
    """Stands for ``tinygen.ops`` until that package binds itself (see the docstring)."""

    def __getattr__(self, name):
        raise RuntimeError(f"Tensor.{name}: tinygen.ops is not imported yet; import tinygen")


ops = _OpsNotBound()
