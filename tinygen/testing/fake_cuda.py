"""A fake cupy, so that tinygen's whole 'cuda' code path runs on a machine without a GPU.

    from tinygen.testing.fake_cuda import fake_cuda

    with fake_cuda():
        x = tinygen.randn(3, 4, device="cuda")   # x.device == 'cuda'
        y = (x @ x.T).relu().sum()                # stays on 'cuda'

**What it proves, and what it does not.**  It proves the *device plumbing*: that
tensors created on 'cuda' stay there through every op, that gradients, optimizer
state, buffers and checkpoints follow them, that mixing devices is refused, and
that kernel families are dispatched to their 'cuda' implementation (which, given
numpy arrays, run under the CUDA emulator of ``tinygen.backend.cuda_kernels``).
It proves nothing about cupy compatibility: the fake is numpy underneath, so a
numpy function that cupy lacks, a numpy-only keyword, or a dtype rule that differs
between the two passes here and may still fail on a real GPU.  That is what the
real-GPU tests (marked ``cuda``) are for.

How it works.  ``FakeCudaArray`` is a numpy subclass: every array that lives on the
fake device is one, numpy's own operations keep the subclass (ufuncs, methods,
views), and the fake module's functions (``zeros``, ``asarray``, ``concatenate``,
...) return it.  Like cupy, it refuses to mix with plain numpy arrays in ufuncs and
module functions (a TypeError naming the function), so code that silently moves
data to the host, or computes on the host with device data, fails here too.  The
exception is ``numpy.asarray(fake_array)``, which numpy answers for any subclass
without asking it: such a conversion is only caught when its plain result later
meets a device array.  The fake is installed into ``tinygen.backend.cuda`` (its
``_cupy`` and ``_cupyx``) and removed on exit, restoring whatever was there.
"""
import contextlib
import functools
import types

import numpy as np

__all__ = ["FakeCudaArray", "fake_cupy", "fake_cuda", "DEVICE_NAME"]

DEVICE_NAME = "fake CUDA device (numpy underneath)"


# --- the device array ----------------------------------------------------------------
def _is_host_array(x):
    """A plain numpy array with elements (0-d arrays count as scalars, as in cupy)."""
    return isinstance(x, np.ndarray) and not isinstance(x, FakeCudaArray) and x.ndim > 0


def _host_arrays_in(values):
    """Plain numpy arrays among ``values`` (looking one level into lists and tuples)."""
    found = []
    for v in values:
        if isinstance(v, (list, tuple)):
            found.extend(x for x in v if _is_host_array(x))
        elif _is_host_array(v):
            found.append(v)
    return found


def _refuse_mixing(what, values):
    host = _host_arrays_in(values)
    if host:
        raise TypeError(
            f"fake cupy: {what} got a numpy.ndarray (shape {host[0].shape}) mixed with device "
            "arrays; cupy refuses host arrays here, so move it with tinygen.backend.to_device"
        )


def _to_host_view(x):
    """Device arrays as plain ndarray views (recursively in lists, tuples and dicts)."""
    if isinstance(x, FakeCudaArray):
        return x.view(np.ndarray)
    if isinstance(x, list):
        return [_to_host_view(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_to_host_view(v) for v in x)
    if isinstance(x, dict):
        return {k: _to_host_view(v) for k, v in x.items()}
    return x


def _to_device_view(x):
    """Arrays (and numpy scalars, which cupy returns as 0-d arrays) as device arrays."""
    if isinstance(x, FakeCudaArray):
        return x
    if isinstance(x, np.ndarray):
        return x.view(FakeCudaArray)
    if isinstance(x, np.generic):
        return np.asarray(x).view(FakeCudaArray)
    if isinstance(x, tuple):
        return tuple(_to_device_view(v) for v in x)
    if isinstance(x, list):
        return [_to_device_view(v) for v in x]
    return x


class FakeCudaArray(np.ndarray):
    """A numpy array that tinygen believes lives on the GPU (see the module docstring)."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_mixing(f"ufunc {ufunc.__name__}", inputs + (out or ()))
        if out is not None:
            kwargs["out"] = tuple(_to_host_view(o) for o in out)
        result = getattr(ufunc, method)(*_to_host_view(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _to_device_view(result)

    def __array_function__(self, func, types_, args, kwargs):
        _refuse_mixing(f"numpy.{func.__name__}", args + tuple(kwargs.values()))
        return _to_device_view(func(*_to_host_view(args), **_to_host_view(kwargs)))

    # Methods that numpy answers with a scalar or host arrays; cupy gives device arrays.
    def __getitem__(self, index):
        return _to_device_view(np.ndarray.__getitem__(self, index))

    def argmax(self, *args, **kwargs):
        return _to_device_view(self.view(np.ndarray).argmax(*args, **kwargs))

    def argmin(self, *args, **kwargs):
        return _to_device_view(self.view(np.ndarray).argmin(*args, **kwargs))

    def nonzero(self):
        return _to_device_view(self.view(np.ndarray).nonzero())

    def trace(self, *args, **kwargs):
        return _to_device_view(self.view(np.ndarray).trace(*args, **kwargs))

    @property
    def __cuda_array_interface__(self):
        """Where the data is, as cupy arrays say it (raw-pointer APIs such as NCCL's)."""
        return {"shape": self.shape, "typestr": self.dtype.str, "version": 3,
                "data": (self.ctypes.data, not self.flags.writeable),
                "strides": None if self.flags.c_contiguous else self.strides}

    def get(self):
        """A host copy, as ``cupy.ndarray.get()``."""
        return np.array(self, subok=False, copy=True)

    def __repr__(self):
        return "fake_cuda_" + repr(self.view(np.ndarray))


# --- the module ---------------------------------------------------------------------
# Functions that take host data on purpose (they are the host-to-device copy).
_CONVERTERS = frozenset({"asarray", "array", "asanyarray", "ascontiguousarray"})


def _device_function(name, fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        _refuse_mixing(f"cupy.{name}", args + tuple(kwargs.values()))
        return _to_device_view(fn(*_to_host_view(args), **_to_host_view(kwargs)))

    return call


def _converter(name):
    def convert(obj, dtype=None, *args, **kwargs):
        if isinstance(obj, FakeCudaArray):  # already on the device: numpy's rules apply
            return _to_device_view(getattr(np, name)(obj.view(np.ndarray), dtype, *args, **kwargs))
        # A transfer: always a fresh device buffer, never a view of host memory.
        return np.array(obj, dtype=dtype, copy=True).view(FakeCudaArray)

    convert.__name__ = name
    return convert


def asnumpy(array, *args, **kwargs):
    """A plain numpy copy (cupy.asnumpy)."""
    if isinstance(array, FakeCudaArray):
        return array.get()
    return np.asarray(array)


def _scatter_add(target, index, values):
    """cupyx.scatter_add: unbuffered ``target[index] += values``."""
    _refuse_mixing("cupyx.scatter_add", (target, values))
    np.add.at(target.view(np.ndarray), _to_host_view(index), _to_host_view(values))


class _Namespace(types.ModuleType):
    """numpy (or one of its submodules) seen through device arrays: every function
    returns FakeCudaArray; ufuncs, dtypes, classes and constants pass through
    (ufuncs keep the subclass by themselves)."""

    def __init__(self, name, numpy_module):
        super().__init__(name)
        self._numpy_module = numpy_module

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(self._numpy_module, name)
        if isinstance(value, types.ModuleType):
            value = _Namespace(f"{self.__name__}.{name}", value)
        elif isinstance(value, (np.ufunc, type)) or not callable(value):
            pass
        elif name in _CONVERTERS:
            value = _converter(name)
        else:
            value = _device_function(name, value)
        setattr(self, name, value)  # cache
        return value


class _Runtime:
    def getDeviceCount(self):
        return 1

    def getDeviceProperties(self, device):
        return {"name": DEVICE_NAME.encode(), "multiProcessorCount": 1, "clockRate": 0,
                "totalGlobalMem": 0, "major": 0, "minor": 0}

    def deviceSynchronize(self):
        pass

    def runtimeGetVersion(self):
        return 0


class _Device:
    def __init__(self, device=0):
        self.id = int(device)

    def synchronize(self):
        pass


def fake_cupy():
    """A fresh fake cupy module (see the module docstring)."""
    module = _Namespace("cupy", np)
    module.__version__ = "fake (numpy " + np.__version__ + ")"
    module.ndarray = FakeCudaArray
    module.asnumpy = asnumpy
    module.cuda = types.SimpleNamespace(runtime=_Runtime(), Device=_Device,
                                        is_available=lambda: True)
    return module


def fake_cupyx():
    module = types.ModuleType("cupyx")
    module.scatter_add = _scatter_add
    return module


@contextlib.contextmanager
def fake_cuda():
    """Make tinygen see one CUDA device (backed by numpy) inside the ``with`` block.

    Yields the fake cupy module.  Use it as a pytest fixture body::

        @pytest.fixture
        def cuda():
            with fake_cuda() as cupy:
                yield cupy
    """
    from ..backend import cuda

    saved = cuda._install(fake_cupy(), fake_cupyx())
    try:
        yield cuda._cupy
    finally:
        cuda._restore(saved)
