"""Backends by array type: a tensor's device is the type of its array.

numpy arrays live on the CPU, cupy arrays on the GPU.  Ops never import numpy or
cupy directly for array math: they ask ``array_module(array)`` for the matching
namespace (``xp``), so one forward serves both devices.
"""
import numpy as np

from . import allocator, cuda

# Large temporaries from the heap, kept between steps (no page faults every step):
# see allocator.py.
allocator.tune()

CPU = "cpu"
CUDA = "cuda"


def array_module(array):
    """numpy or cupy, whichever owns ``array``."""
    # Exact type first: the common case, and a device array may subclass
    # ndarray (tinygen.testing.fake_cuda's does).
    if type(array) is np.ndarray:
        return np
    if cuda.is_cupy_array(array):
        return cuda.cupy
    return np


def device_of(array):
    """The device name ('cpu' or 'cuda') of a raw array."""
    if type(array) is np.ndarray:
        return CPU
    return CUDA if cuda.is_cupy_array(array) else CPU


def normalize_device(device):
    """Accept 'cpu', 'cuda', 'cuda:0' or None; return 'cpu' or 'cuda'."""
    if device is None:
        return CPU
    name = str(device)
    if name == CPU:
        return CPU
    if name == CUDA or name.startswith("cuda:"):
        return CUDA
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def to_device(array, device):
    """Copy ``array`` to ``device`` (no copy when it is already there)."""
    device = normalize_device(device)
    if device == device_of(array):
        return array
    if device == CUDA:
        cuda.require_available()
        return cuda.cupy.asarray(array)
    return cuda.cupy.asnumpy(array)


def to_numpy(array):
    """``array`` on the host (numpy arrays and scalars are returned as they are)."""
    return cuda.cupy.asnumpy(array) if device_of(array) == CUDA else array
