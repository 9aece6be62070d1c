"""Which kernels serve an op: by family, by device, and by implementation.

Every op family with hand-written kernels (conv, batch_norm, pooling, gated_activation,
spectral_norm, WaveNet's generation step, the activations' fused passes, an array's
arithmetic with a number, the optimizers' updates, the fused softmax and sigmoid
cross-entropies, matrix products, the autograd engine's gradient sums and sum_to) asks
``kernels(family, array)`` for the module that serves ``array``'s device.  A device may
have several implementations of the same functions: on the CPU the numba kernels
(``"numba"``, the default) and the plain numpy reference (``"reference"``), which tests
compare; on the GPU the CUDA modules of tinygen/backend/cuda_kernels (``"nvrtc"``, the
default, or ``"aot"``).  Which one runs is chosen per device with ``set_impl``/``use_impl``
or, for the CPU, the environment variable ``TINYGEN_CPU_IMPL``.

``_REGISTRY`` below is the whole dispatch, written out: (family, device, impl) ->
module import path.  Modules are imported on first use, so ``import tinygen`` imports
neither numba nor the CUDA backend.  This module imports no implementation; the CUDA
launcher imports it (to read the selected impl), never the other way round.
"""
import contextlib
import importlib
import os

import numpy as np

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
                "avg_pool2d_adjoint", "upsample_nearest_forward", "upsample_nearest_adjoint"),
    "gated_activation": ("gated_forward", "gated_backward"),
    "spectral_norm": ("power_iteration",),
    "wavenet": ("pack", "new_ring", "step"),
    "activations": ("leaky_relu_forward", "leaky_relu_backward", "sigmoid_forward",
                    "sigmoid_backward", "tanh_forward", "tanh_backward", "relu_forward", "relu_backward", "softplus_forward",
                    "softplus_backward"),
    "optim": ("adam_step",),
    "elementwise": ("add_constant", "mul_constant", "div_constant", "sub_from_constant"),
    "softmax_cross_entropy": ("cross_entropy_forward", "cross_entropy_backward"),
    "sigmoid_cross_entropy": ("forward", "backward"),
    "linalg": ("matmul",),
    "sums": ("add", "add_into", "sum_axes"),
}

# (family, device, implementation) -> the module that serves it, written out so that
# "go to definition" and `git grep` find every one.  Imported on first use.
# On the 'cuda' device "nvrtc" and "aot" are the same module: its ``launch`` reads which
# of the two paths is selected (tinygen/backend/cuda_kernels/launch.py).
_REGISTRY = {
    "conv": {
        "cpu": {"numba": "tinygen.backend.numba_kernels.conv",
                "reference": "tinygen.backend.reference.conv"},
        "cuda": {"nvrtc": "tinygen.backend.cuda_kernels.conv",
                 "aot": "tinygen.backend.cuda_kernels.conv"},
    },
    "batch_norm": {
        "cpu": {"numba": "tinygen.backend.numba_kernels.batch_norm",
                "reference": "tinygen.backend.reference.batch_norm"},
        "cuda": {"nvrtc": "tinygen.backend.cuda_kernels.batch_norm",
                 "aot": "tinygen.backend.cuda_kernels.batch_norm"},
    },
    "pooling": {
        "cpu": {"numba": "tinygen.backend.numba_kernels.pooling",
                "reference": "tinygen.backend.reference.pooling"},
        "cuda": {"nvrtc": "tinygen.backend.cuda_kernels.pooling",
                 "aot": "tinygen.backend.cuda_kernels.pooling"},
    },
    "gated_activation": {
        "cpu": {"numba": "tinygen.backend.numba_kernels.gated_activation",
                "reference": "tinygen.backend.reference.gated_activation"},
        "cuda": {"nvrtc": "tinygen.backend.cuda_kernels.gated_activation",
                 "aot": "tinygen.backend.cuda_kernels.gated_activation"},
    },
    "spectral_norm": {
        # No numba kernel: the power iteration's mat-vecs are BLAS calls already.  The
        # CPU's "numba" selection falls back to the reference through _ALIASES below.
        "cpu": {"reference": "tinygen.backend.reference.spectral_norm"},
        "cuda": {"nvrtc": "tinygen.backend.cuda_kernels.spectral_norm",
                 "aot": "tinygen.backend.cuda_kernels.spectral_norm"},
    },
    "wavenet": {
        "cpu": {"numba": "tinygen.backend.numba_kernels.wavenet",
                "reference": "tinygen.backend.reference.wavenet"},
        "cuda": {"nvrtc": "tinygen.backend.cuda_kernels.wavenet",
                 "aot": "tinygen.backend.cuda_kernels.wavenet"},
    },
    "activations": {
        "cpu": {"numba": "tinygen.backend.numba_kernels.activations",
                "reference": "tinygen.backend.reference.activations"},
    },
    "elementwise": {
        "cpu": {"numba": "tinygen.backend.numba_kernels.elementwise",
                "reference": "tinygen.backend.reference.elementwise"},
    },
    "optim": {
        "cpu": {"numba": "tinygen.backend.numba_kernels.optim",
                "reference": "tinygen.backend.reference.optim"},
    },
    "softmax_cross_entropy": {
        "cpu": {"numba": "tinygen.backend.numba_kernels.softmax_cross_entropy",
                "reference": "tinygen.backend.reference.softmax_cross_entropy"},
    },
    "sigmoid_cross_entropy": {
        "cpu": {"numba": "tinygen.backend.numba_kernels.sigmoid_cross_entropy",
                "reference": "tinygen.backend.reference.sigmoid_cross_entropy"},
    },
    "linalg": {
        "cpu": {"numba": "tinygen.backend.numba_kernels.linalg",
                "reference": "tinygen.backend.reference.linalg"},
    },
    "sums": {
        "cpu": {"numba": "tinygen.backend.numba_kernels.sums",
                "reference": "tinygen.backend.reference.sums"},
    },
}

# (family, device, selected implementation) -> the (device, implementation) of _REGISTRY
# that serves it instead: the only place one implementation stands in for another.
_ALIASES = {
    ("spectral_norm", "cpu", "numba"): ("cpu", "reference"),
    # Activations (and their fused backward products) and the optimizers' updates have
    # no CUDA kernels: the array-module generic reference (cupy's elementwise ops on the
    # GPU) serves both CUDA implementation names.
    ("activations", "cuda", "nvrtc"): ("cpu", "reference"),
    ("activations", "cuda", "aot"): ("cpu", "reference"),
    # An array and a number: cupy's own arithmetic through the reference.
    ("elementwise", "cuda", "nvrtc"): ("cpu", "reference"),
    ("elementwise", "cuda", "aot"): ("cpu", "reference"),
    ("optim", "cuda", "nvrtc"): ("cpu", "reference"),
    ("optim", "cuda", "aot"): ("cpu", "reference"),
    # The fused cross-entropy has no CUDA kernel yet: the reference's xp ops serve cupy.
    ("softmax_cross_entropy", "cuda", "nvrtc"): ("cpu", "reference"),
    ("softmax_cross_entropy", "cuda", "aot"): ("cpu", "reference"),
    # Binary cross-entropy on logits: cupy's elementwise ops through the reference.
    ("sigmoid_cross_entropy", "cuda", "nvrtc"): ("cpu", "reference"),
    ("sigmoid_cross_entropy", "cuda", "aot"): ("cpu", "reference"),
    # Matrix products: cupy's matmul (cuBLAS) on the GPU.
    ("linalg", "cuda", "nvrtc"): ("cpu", "reference"),
    ("linalg", "cuda", "aot"): ("cpu", "reference"),
    # The engine's gradient sums and sum_to: cupy's elementwise add and sum.
    ("sums", "cuda", "nvrtc"): ("cpu", "reference"),
    ("sums", "cuda", "aot"): ("cpu", "reference"),
}

# The implementation each device starts with (the CPU's may be overridden by
# $TINYGEN_CPU_IMPL, read on first use).
_DEFAULT_IMPL = {"cpu": "numba", "cuda": "nvrtc"}


class KernelImplError(ValueError):
    """``$TINYGEN_CPU_IMPL`` names no CPU kernel implementation."""


def _cpu_impl_from_env():
    name = os.environ.get(CPU_IMPL_ENV, "").strip().lower() or _DEFAULT_IMPL["cpu"]
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
    if device not in _selected:
        if device == "cpu":
            _selected["cpu"] = _cpu_impl_from_env()
        elif device in _DEFAULT_IMPL:
            _selected[device] = _DEFAULT_IMPL[device]
    return _selected.get(device)


def register(family, device, impl, module):
    """Plug ``module`` (an object or an import path) in as ``impl`` of ``family``
    on ``device`` (for a new family or device; tinygen's own are in ``_REGISTRY``).
    The first implementation registered for a device without a default is selected."""
    _REGISTRY.setdefault(family, {}).setdefault(device, {})[impl] = module
    _selected.setdefault(device, impl)
    _cpu_found.clear()


def get_impl(device="cpu"):
    return _impl(device)


def set_impl(device, name):
    """Select the implementation of every family on ``device``; returns the previous one."""
    known = {impl for devices in _REGISTRY.values() for impl in devices.get(device, ())}
    known |= {selected for (_, dev, selected) in _ALIASES if dev == device}
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


# family -> (the registry, the CPU's selected implementation, the module) last found
# for a numpy array: kernels() runs for nearly every op, and the look-up below costs
# ~0.35 us, the cached one ~0.15 (a third of a small op's x * 0.9).  Valid while the
# registry is the same object and the selection the same.
_cpu_found = {}


def kernels(family, array, op_name=None):
    """The kernel module of ``family`` for ``array``'s device and the selected impl."""
    if type(array) is np.ndarray:
        found = _cpu_found.get(family)
        if found is not None and found[0] is _REGISTRY and found[1] == _selected.get("cpu"):
            return found[2]
    device = device_of(array)
    selected = impl = _impl(device)
    serving_device, impl = _ALIASES.get((family, device, impl), (device, impl))
    by_impl = _REGISTRY[family].get(serving_device)
    if not by_impl:
        raise RuntimeError(
            f"{op_name or family}: no {device} kernels are registered yet (they come with the "
            "GPU backend, kernels/*.cu); move the tensors to the CPU with .cpu()"
        )
    if impl not in by_impl:
        raise RuntimeError(f"{op_name or family}: no {impl!r} kernels are registered for {device}")
    module = by_impl[impl]
    if isinstance(module, str):
        module = by_impl[impl] = importlib.import_module(module)
    if device == "cpu":
        _cpu_found[family] = (_REGISTRY, selected, module)
    return module
