"""Comparing results (public API): float64 leaves, relative errors, and one op run on
every kernel implementation.

    from tinygen.testing import compare_impls, f64

    x, w = f64(rng.standard_normal((2, 3, 8, 8))), f64(rng.standard_normal((4, 3, 3, 3)))
    compare_impls(lambda x, w: tinygen.nn.functional.conv2d(x, w, padding=1), (x, w))

``compare_impls`` runs ``fn`` with the numpy reference, the numba kernels and (when a
'cuda' device is available, the fake one of ``tinygen.testing.fake_cuda`` included)
the CUDA kernels, and checks that every implementation gives the first one's
outputs and, for the inputs that require grad, its gradients for one random
upstream gradient.
"""
import numpy as np

from ..autograd.tensor import Tensor
from ..autograd.functional import grad as autograd_grad
from ..backend import cuda, to_numpy
from ..backend.kernels import use_impl
from ..creation import tensor as _tensor
from .gradcheck import _as_tuple

CPU_IMPLS = ("reference", "numba")


class ImplMismatch(AssertionError):
    """Two kernel implementations disagree."""


def f64(array, requires_grad=True):
    """A float64 leaf holding a copy of ``array`` (what gradcheck wants)."""
    return _tensor(np.array(array, dtype=np.float64), dtype=np.float64,
                   requires_grad=requires_grad)


def _host(x):
    return to_numpy(x.data) if isinstance(x, Tensor) else np.asarray(x)


def rel_error(actual, expected):
    """``max|actual - expected| / max|expected|`` in float64 (Tensors or arrays; the
    shapes must match)."""
    actual = _host(actual).astype(np.float64)
    expected = _host(expected).astype(np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    scale = max(np.abs(expected).max(initial=0.0), 1e-300)
    return np.abs(actual - expected).max(initial=0.0) / scale


def assert_close(actual, expected, rtol=1e-10, atol=1e-12):
    """Compare a Tensor (or array) with a numpy reference, shapes included."""
    actual, expected = _host(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def _tolerance(dtype):
    """float32 kernels sum in other orders than the reference: 1e-5; float64 1e-10."""
    return (1e-5, 1e-5) if np.dtype(dtype) == np.float32 else (1e-10, 1e-10)


def _run(fn, inputs, upstream, rng, device):
    """Outputs and input gradients of ``fn`` on ``device``, as host arrays.  The
    upstream gradients are drawn at the first run (from its output shapes) and
    shared by the others."""
    moved = []
    for t in inputs:
        m = t.detach().to(device=device) if isinstance(t, Tensor) else t
        if isinstance(t, Tensor) and t.requires_grad:
            m.requires_grad_()
        moved.append(m)
    outs = _as_tuple(fn(*moved))
    if not upstream:
        upstream.extend(rng.standard_normal(o.shape) for o in outs)
    wrt = [m for m in moved if isinstance(m, Tensor) and m.requires_grad]
    live = [(o, g) for o, g in zip(outs, upstream) if o.requires_grad]
    grads = [None] * len(wrt)
    if wrt and live:
        grads = autograd_grad([o for o, _ in live], wrt,
                              grad_outputs=[_tensor(g, dtype=o.dtype, device=device)
                                            for o, g in live], allow_unused=True)
    return ([to_numpy(o.data) for o in outs],
            [None if g is None else to_numpy(g.data) for g in grads])


def compare_impls(fn, inputs, impls=("reference", "numba", "cuda"), rtol=None, atol=None,
                  seed=0):
    """Run ``fn(*inputs)`` on each kernel implementation in ``impls`` and check that all
    agree with the first, outputs and gradients (see the module docstring).

    ``"reference"`` and ``"numba"`` are the CPU implementations; ``"cuda"`` moves the
    inputs to the 'cuda' device and uses its selected implementation, and is left
    out when no 'cuda' device is available.  Tolerances default by dtype (float32
    1e-5, float64 1e-10).  Returns the names of the implementations compared;
    raises ``ImplMismatch`` naming the implementation, the output or input, and
    the error.
    """
    inputs = _as_tuple(inputs)
    unknown = [name for name in impls if name not in CPU_IMPLS + ("cuda",)]
    if unknown:
        raise ValueError(f"compare_impls: unknown implementation(s) {unknown}; expected "
                         f"names from {CPU_IMPLS + ('cuda',)}")
    names = [name for name in impls if name != "cuda" or cuda.is_available()]
    if len(names) < 2:
        raise ValueError(f"compare_impls: fewer than two of {tuple(impls)} are available "
                         "here; nothing to compare")
    rng = np.random.default_rng(seed)
    upstream = []
    results = {}
    for name in names:
        if name == "cuda":
            results[name] = _run(fn, inputs, upstream, rng, "cuda")
        else:
            with use_impl(name):
                results[name] = _run(fn, inputs, upstream, rng, "cpu")

    first = names[0]
    for name in names[1:]:
        for kind, index, ours, theirs in _pairs(results[name], results[first]):
            if (ours is None) != (theirs is None):
                raise ImplMismatch(f"compare_impls: {name} and {first} disagree on whether "
                                   f"{kind} {index} gets a gradient")
            if ours is None:
                continue
            if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
                raise ImplMismatch(
                    f"compare_impls: {kind} {index} is {ours.dtype}{list(ours.shape)} with "
                    f"{name} but {theirs.dtype}{list(theirs.shape)} with {first}")
            default_rtol, default_atol = _tolerance(theirs.dtype)
            r = default_rtol if rtol is None else rtol
            a = default_atol if atol is None else atol
            excess = np.abs(ours.astype(np.float64) - theirs) - (a + r * np.abs(theirs))
            if excess.size and excess.max() > 0:
                at = np.unravel_index(int(np.argmax(excess)), excess.shape)
                raise ImplMismatch(
                    f"compare_impls: {kind} {index} differs between {name} and {first} at "
                    f"index {tuple(int(k) for k in at)}: {float(ours[at]):.10g} vs "
                    f"{float(theirs[at]):.10g} "
                    f"(rel_error {rel_error(ours, theirs):.3g}; rtol {r}, atol {a})")
    return tuple(names)


def _pairs(ours, theirs):
    for index, (o, t) in enumerate(zip(ours[0], theirs[0])):
        yield "output", index, o, t
    for index, (o, t) in enumerate(zip(ours[1], theirs[1])):
        yield "gradient of input", index, o, t
