"""Which kernels serve an op: by family, by device, and by implementation.

Every op family with hand-written kernels (conv, batch_norm, pooling, and
WaveNet's generation step) asks ``kernels(family, array)`` for the module that
serves ``array``'s device.  A device may have several implementations of the
same functions: on the CPU the numba kernels (``"numba"``, the default) and the
plain numpy reference (``"reference"``), which tests compare; on the GPU the
CUDA backend registers its own (loaded through NVRTC or the AOT extension).
Which one runs is chosen per device with ``set_impl``/``use_impl`` or, for the
CPU, the environment variable ``TINYGEN_CPU_IMPL``.

Modules are registered by import path and imported on first use, so
``import tinygen`` does not import numba.
"""
import contextlib
import importlib
import os

from . import device_of

CPU_IMPL_ENV = "TINYGEN_CPU_IMPL"

# Each family's contract: the functions the ops and models call through ``kernels()``,
# which every implementation of the family provides (tests/backend/test_kernel_contracts.py
# checks each registered module against it).
CONTRACTS = {
    "conv": ("conv2d_forward", "conv2d_input_grad", "conv2d_weight_grad"),
    "batch_norm": ("train_stats", "train_forward", "normalize_affine", "backward_stats",
                   "backward_input"),
    "pooling": ("max_pool2d_forward", "gather_plane", "scatter_plane", "avg_pool2d_forward",
                "avg_pool2d_adjoint", "upsample_nearest_forward", "upsample_nearest_adjoint",
                "gated_forward", "gated_backward"),
    "spectral_norm": ("power_iteration",),
    "wavenet": ("pack", "new_ring", "step"),
    "activations": ("leaky_relu_forward", "leaky_relu_backward", "sigmoid_forward",
                    "sigmoid_backward", "tanh_backward", "relu_backward", "softplus_forward",
                    "softplus_backward"),
    "optim": ("adam_step",),
}

# family -> device -> implementation name -> module (or its import path)
_REGISTRY = {
    family: {"cpu": {"numba": f"tinygen.backend.numba_kernels.{family}",
                     "reference": f"tinygen.backend.reference.{family}"}}
    for family in ("conv", "batch_norm", "pooling", "wavenet", "activations", "optim")
}
# Spectral norm's power iteration has no numba kernel (its mat-vecs are BLAS calls
# already): on the CPU both implementation names serve the reference.
_REGISTRY["spectral_norm"] = {
    "cpu": {impl: "tinygen.backend.reference.spectral_norm" for impl in ("numba", "reference")}
}


# Activations (and their fused backward products) and the optimizers' updates have no
# CUDA kernels: on the GPU the array-module generic reference (cupy's elementwise ops)
# serves every impl name.
for _family in ("activations", "optim"):
    _REGISTRY[_family]["cuda"] = {
        impl: f"tinygen.backend.reference.{_family}" for impl in ("nvrtc", "aot")
    }


class KernelImplError(ValueError):
    """``$TINYGEN_CPU_IMPL`` names no CPU kernel implementation."""


def _cpu_impl_from_env():
    name = os.environ.get(CPU_IMPL_ENV, "").strip().lower() or "numba"
    if name not in ("numba", "reference"):
        raise KernelImplError(
            f"{CPU_IMPL_ENV}={name!r} is not a CPU kernel implementation; "
            "expected 'numba' or 'reference'"
        )
    return name


# device -> the implementation in use. The CPU's is read from the environment on first
# use, not at import: a bad value is then an error of the op (or of `tinygen train`),
# and `import tinygen` / `tinygen info` still work and can report it.
_selected = {}


def _impl(device):
    if device == "cpu" and "cpu" not in _selected:
        _selected["cpu"] = _cpu_impl_from_env()
    return _selected.get(device)


def register(family, device, impl, module):
    """Plug ``module`` (an object or an import path) in as ``impl`` of ``family``
    on ``device``; the first implementation registered for a device is selected."""
    _REGISTRY.setdefault(family, {}).setdefault(device, {})[impl] = module
    _selected.setdefault(device, impl)


def get_impl(device="cpu"):
    return _impl(device)


def set_impl(device, name):
    """Select the implementation of every family on ``device``; returns the previous one."""
    known = {impl for devices in _REGISTRY.values() for impl in devices.get(device, ())}
    if name not in known:
        raise ValueError(
            f"unknown {device} kernel implementation {name!r}; expected one of {sorted(known)}"
        )
    previous, _selected[device] = _selected.get(device), name
    return previous


@contextlib.contextmanager
def use_impl(name, device="cpu"):
    """``with use_impl('reference'): ...`` runs the ops on the given implementation."""
    previous = set_impl(device, name)
    try:
        yield
    finally:
        if previous is None:  # not chosen yet: the environment decides again
            _selected.pop(device, None)
        else:
            _selected[device] = previous


def kernels(family, array, op_name=None):
    """The kernel module of ``family`` for ``array``'s device and the selected impl."""
    device = device_of(array)
    by_impl = _REGISTRY[family].get(device)
    if not by_impl:
        raise RuntimeError(
            f"{op_name or family}: no {device} kernels are registered yet (they come with the "
            "GPU backend, kernels/*.cu); move the tensors to the CPU with .cpu()"
        )
    impl = _impl(device)
    if impl not in by_impl:
        raise RuntimeError(f"{op_name or family}: no {impl!r} kernels are registered for {device}")
    module = by_impl[impl]
    if isinstance(module, str):
        module = by_impl[impl] = importlib.import_module(module)
    return module


# The GPU: each CUDA family module that exists (tinygen/backend/cuda_kernels/<family>.py),
# as impls "nvrtc" (the default) and "aot".
from .cuda_kernels import register_families as _register_cuda_families  # noqa: E402

_register_cuda_families(register, list(_REGISTRY))
