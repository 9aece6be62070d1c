"""``launch(name, grid, block, args)``: run one kernel of kernels/*.cu, on any path.

The arrays decide where: numpy arrays go to the CPU emulator, cupy arrays to the GPU
through NVRTC (default) or the AOT extension tinygen._C, as selected with
``tinygen.backend.kernels.set_impl("cuda", "nvrtc" | "aot")``.  Before that, every
argument is checked against the kernel's parsed signature, so a wrong call is a
Python exception naming the argument, never a kernel reading the wrong memory.

cupy is imported only when a cupy array comes in: the CPU path never needs it.
"""
import numpy as np

from .source import DTYPE_NAMES, default_sources

MAX_THREADS_PER_BLOCK = 1024
# CUDA's limits on each launch dimension (compute capability >= 3.0).
MAX_GRID = (2**31 - 1, 65535, 65535)
MAX_BLOCK = (1024, 1024, 64)

_INT_RANGES = {"int": (-2**31, 2**31 - 1), "long long": (-2**63, 2**63 - 1)}


def _dims(what, value, limits):
    """An int or a 1- to 3-tuple of positive ints -> a 3-tuple."""
    dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3:
        raise ValueError(f"{what} must have 1 to 3 dimensions, got {value!r}")
    for d, limit, axis in zip(dims, limits, "xyz"):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{what} sizes must be ints, got {value!r}")
        if not 1 <= d <= limit:
            raise ValueError(f"{what}.{axis} must be in [1, {limit}], got {value!r}")
    return tuple(int(d) for d in dims) + (1,) * (3 - len(dims))


def _is_cupy_array(value):
    return type(value).__module__.startswith("cupy") and hasattr(value, "data")


def _device_of(value):
    """'cpu' for numpy, ('cuda', id) for cupy, None for anything else."""
    if isinstance(value, np.ndarray):
        return "cpu"
    if _is_cupy_array(value):
        return ("cuda", value.device.id)
    return None


def _describe_device(device):
    return "the CPU (numpy)" if device == "cpu" else f"GPU {device[1]} (cupy)"


# Each C type's numpy dtype and scalar type, looked up once: a launch checks every
# argument (a conv launch has ~20), and the checks are most of a launch's host time.
_DTYPES = {ctype: np.dtype(name) for ctype, name in DTYPE_NAMES.items()}
_SCALAR_TYPES = {ctype: dtype.type for ctype, dtype in _DTYPES.items()}


def _where(signature, index, param):
    """The argument, for an error message (made only when there is an error)."""
    return f"{signature.name}: argument {index} {param.name!r} ({param})"


def _check_array(signature, index, param, value):
    device = _device_of(value)
    if device is None:
        raise TypeError(f"{_where(signature, index, param)} must be a numpy or cupy array, "
                        f"got {type(value).__name__}")
    if value.dtype != _DTYPES[param.ctype]:
        raise TypeError(f"{_where(signature, index, param)} must be a {param.dtype_name} "
                        f"array, got {value.dtype}")
    flags = value.flags
    if not flags.c_contiguous:
        raise ValueError(f"{_where(signature, index, param)} must be C-contiguous (use "
                         f"ascontiguousarray), got strides {value.strides} for shape "
                         f"{value.shape}")
    if device == "cpu":
        if not flags.aligned:
            raise ValueError(f"{_where(signature, index, param)} is not aligned for "
                             f"{param.dtype_name}")
        if not param.is_const and not flags.writeable:
            raise ValueError(f"{_where(signature, index, param)} is written by the kernel but "
                             "the array is read-only")
    return device


def _check_scalar(signature, index, param, value):
    ctype = param.ctype
    if type(value) is int:          # the common case, checked without the general path
        limits = _INT_RANGES.get(ctype)
        if limits is not None and limits[0] <= value <= limits[1]:
            return _SCALAR_TYPES[ctype](value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{_where(signature, index, param)} must be a number, got "
                        f"{type(value).__name__}")
    scalar = _SCALAR_TYPES[ctype]
    if ctype in _INT_RANGES:
        if not isinstance(value, (int, np.integer)):
            raise TypeError(f"{_where(signature, index, param)} must be an integer, got "
                            f"{value!r}")
        lo, hi = _INT_RANGES[ctype]
        if not lo <= int(value) <= hi:
            raise OverflowError(f"{_where(signature, index, param)}: {value} does not fit in "
                                f"a {ctype}")
        return scalar(int(value))
    converted = scalar(value)
    if np.isfinite(value) and not np.isfinite(converted):
        raise OverflowError(f"{_where(signature, index, param)}: {value} overflows a {ctype}")
    return converted


def pack_arguments(signature, args):
    """Check ``args`` against ``signature``; return (values, device).

    values: the arrays as given and the scalars as numpy scalars of the parameter's
    exact type; device: 'cpu' or ('cuda', id), shared by all arrays."""
    args = tuple(args)
    if len(args) != len(signature.params):
        raise TypeError(f"{signature.name} takes {len(signature.params)} arguments "
                        f"({', '.join(map(str, signature.params))}), got {len(args)}")
    values, device, first = [], None, None
    for index, (param, value) in enumerate(zip(signature.params, args)):
        if param.is_pointer:
            here = _check_array(signature, index, param, value)
            if device is None:
                device, first = here, param.name
            elif here != device:
                raise ValueError(
                    f"{signature.name}: all arrays must be on one device: {first!r} is on "
                    f"{_describe_device(device)}, {param.name!r} on {_describe_device(here)}")
            values.append(value)
        else:
            values.append(_check_scalar(signature, index, param, value))
    if device is None:
        raise TypeError(f"{signature.name}: no array argument, so no device to run on")
    return values, device


def launch(name, grid, block, args, *, sources=None):
    """Run kernel ``name`` over ``grid`` x ``block`` with ``args`` (see the module doc).

    grid/block: an int or a tuple of up to 3 ints.  ``sources`` (a
    ``source.KernelSources``) defaults to the package's kernels; tests pass their own
    to run test-only kernels (emulator only)."""
    launch_each(name, grid, block, args, None, (None,), sources=sources)


def launch_each(name, grid, block, args, vary, values, *, sources=None):
    """``launch`` once per value of ``values``, in order, with the scalar parameter named
    ``vary`` set to it (its entry in ``args`` is checked too, then replaced).  The
    arguments are checked once, not per launch: for a kernel launched many times in a row
    that differs in one number (WaveNet's layer index), where the checks would cost more
    host time than the launches.  ``vary=None``: one launch per value, ``args`` as given."""
    sources = default_sources() if sources is None else sources
    signature = sources.signature(name)
    grid = _dims(f"{name}: grid", grid, MAX_GRID)
    block = _dims(f"{name}: block", block, MAX_BLOCK)
    threads = block[0] * block[1] * block[2]
    if threads > MAX_THREADS_PER_BLOCK:
        raise ValueError(f"{name}: block {block} has {threads} threads; a block may have at "
                         f"most {MAX_THREADS_PER_BLOCK}")
    if signature.max_threads is not None and threads > signature.max_threads:
        raise ValueError(f"{name}: block {block} has {threads} threads but the kernel is "
                         f"compiled for at most {signature.max_threads} "
                         f"(__launch_bounds__({signature.max_threads}))")
    packed, device = pack_arguments(signature, args)
    index = None
    if vary is not None:
        index = next((i for i, p in enumerate(signature.params) if p.name == vary), None)
        if index is None or signature.params[index].is_pointer:
            raise ValueError(f"{name}: launch_each varies a scalar parameter; {vary!r} is "
                             f"{'an array' if index is not None else 'not a parameter'}")
        values = [_check_scalar(signature, index, signature.params[index], v) for v in values]
    for value in values:
        if index is not None:
            packed[index] = value
        if device == "cpu":
            from . import emulator

            emulator.library(sources).run(signature, grid, block, packed)
        else:
            _launch_on_gpu(sources, signature, grid, block, packed, device[1])


def _launch_on_gpu(sources, signature, grid, block, values, device_id):
    import cupy

    from .. import kernels

    current = cupy.cuda.Device().id
    if device_id != current:
        raise ValueError(f"{signature.name}: the arrays are on GPU {device_id} but the current "
                         f"device is GPU {current} (use `with cupy.cuda.Device({device_id}):`)")
    impl = kernels.get_impl("cuda")
    if impl == "aot":
        if sources is not default_sources():
            raise ValueError(f"{signature.name}: the AOT extension holds only the package's "
                             "kernels; extra kernel sources run through NVRTC or the emulator")
        from . import aot

        aot.launch(signature, grid, block, values)
    else:
        from . import nvrtc

        nvrtc.launch(sources, signature, grid, block, values)
