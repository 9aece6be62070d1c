"""Finite-difference checks of gradients (public API).

``gradcheck`` compares the analytic vector-Jacobian product ``v^T J`` for a
random upstream gradient ``v`` with central differences of the scalar
``<v, f(x)>``, element by element, in float64.  On failure it reports the worst
element: which input, where, both values and the error.

``fast_mode=True`` (Chainer's and PyTorch's fast mode) checks one random unit
direction ``u`` per input instead: the analytic ``<v^T J, u>`` against
``(<v, f(x + eps u)> - <v, f(x - eps u)>) / 2 eps``, two evaluations of ``fn`` per
input whatever its size, so tests can use real shapes.  A failure names the
input, not the element: run the element-wise mode on a small case to locate it.
A wrong backward that is wrong everywhere (a factor, a transpose) is always
caught; one wrong in a single element of n is caught unless the direction puts
little weight there (its component is ~1/sqrt(n)): likely, not certain, so use
several seeds or the element-wise mode where that matters.

It also looks for kinks (Chainer's idea): if the one-sided differences on the
left and on the right disagree, the input sits on a non-differentiable point
(relu at 0, abs at 0, max with ties) and the comparison there would be
meaningless, so the check says so instead of reporting a wrong gradient.

``gradgradcheck`` applies the same test to the gradient itself: it treats the
upstream gradient as an extra input and checks the derivatives of the
vector-Jacobian product, which exercises every backward's own backward.
"""
import numpy as np

from ..autograd.tensor import Tensor
from ..autograd.functional import grad as autograd_grad
from ..backend import to_numpy, array_module


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree (or the check could not run)."""


def _as_tuple(x):
    if isinstance(x, Tensor):
        return (x,)
    return tuple(x)


def _outputs(fn, inputs):
    out = fn(*inputs)
    outs = _as_tuple(out)
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise GradcheckError(f"fn returned a {type(o).__name__} as output {i}; expected Tensors")
        if o.dtype != np.float64:
            raise GradcheckError(f"output {i} has dtype {o.dtype}; gradcheck needs float64")
    return outs


def _dot(outs, vs):
    total = 0.0
    for o, v in zip(outs, vs):
        total += float(to_numpy((o.data * v.data).sum()))
    return total


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, grad_outputs=None, seed=0,
              check_kinks=True, raise_exception=True, fast_mode=False):
    """Check ``fn``'s gradients w.r.t. every input that requires grad.

    ``inputs`` are float64 Tensors (a single Tensor is accepted).  Returns True,
    or raises ``GradcheckError`` naming the worst element (with ``fast_mode``, the
    input) or returns False when ``raise_exception=False``.
    """
    inputs = _as_tuple(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"inputs[{i}] is a {type(t).__name__}; gradcheck needs Tensors")
        if t.requires_grad and t.dtype != np.float64:
            raise GradcheckError(
                f"inputs[{i}] has dtype {t.dtype}: finite differences need float64 inputs"
            )
    wrt = [i for i, t in enumerate(inputs) if t.requires_grad]
    if not wrt:
        raise GradcheckError("no input requires grad: nothing to check")

    outs = _outputs(fn, inputs)
    rng = np.random.default_rng(seed)
    if grad_outputs is None:
        vs = tuple(Tensor._make(array_module(o.data).asarray(rng.standard_normal(o.shape)))
                   for o in outs)
    else:
        vs = _as_tuple(grad_outputs)

    # Analytic: v^T J through the engine (outputs that do not depend on the
    # inputs contribute nothing).
    live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    if live:
        grads = autograd_grad([o for o, _ in live], [inputs[i] for i in wrt],
                              grad_outputs=[v for _, v in live], allow_unused=True)
    else:
        grads = (None,) * len(wrt)
    analytic = [
        to_numpy(g.data) if g is not None else np.zeros(inputs[i].shape)
        for g, i in zip(grads, wrt)
    ]

    # Grad mode stays on: fn may itself take gradients (gradgradcheck's does).
    f0 = _dot(_outputs(fn, inputs), vs) if check_kinks else None
    check = _check_direction if fast_mode else _check_elements
    failure = check(fn, inputs, vs, wrt, analytic, f0, eps, atol, rtol, rng)
    if failure is None:
        return True
    if raise_exception:
        raise GradcheckError(failure)
    return False


def _kink(left, right, numeric, err, atol, rtol):
    """One-sided differences that disagree where the check fails: a kink, not a bug."""
    tol = atol + rtol * abs(numeric)
    return err > tol and abs(right - left) > 10 * tol


def _check_direction(fn, inputs, vs, wrt, analytic, f0, eps, atol, rtol, rng):
    """Fast mode: the derivative along one random unit direction per input."""
    for a_grad, i in zip(analytic, wrt):
        data = inputs[i].data
        xp = array_module(data)
        u = rng.standard_normal(data.shape)
        u /= max(np.linalg.norm(u), 1e-300)
        original = data.copy()
        step = xp.asarray(eps * u, dtype=data.dtype)
        data[...] = original + step
        f_plus = _dot(_outputs(fn, inputs), vs)
        data[...] = original - step
        f_minus = _dot(_outputs(fn, inputs), vs)
        data[...] = original
        numeric = (f_plus - f_minus) / (2 * eps)
        directional = float(np.sum(a_grad * u))
        err = abs(directional - numeric)
        if f0 is not None and _kink((f0 - f_minus) / eps, (f_plus - f0) / eps, numeric, err,
                                    atol, rtol):
            return (f"gradcheck (fast mode): inputs[{i}] (shape {inputs[i].shape}) lies on a "
                    "kink along the random direction: the one-sided derivatives differ, so "
                    "the function is not differentiable there; move the test input away "
                    "from it")
        if err > atol + rtol * abs(numeric):
            return (f"gradcheck (fast mode) failed for inputs[{i}] (shape {inputs[i].shape}): "
                    f"along a random unit direction the analytic derivative is "
                    f"{directional:.10g}, the numerical {numeric:.10g}, |difference| "
                    f"{err:.3g} > atol {atol} + rtol {rtol} * |numerical|; rerun with "
                    "fast_mode=False on a small input to find the element")
    return None


def _check_elements(fn, inputs, vs, wrt, analytic, f0, eps, atol, rtol, rng):
    """Element-wise mode: central differences for every element; the worst one."""
    worst = None
    for a_grad, i in zip(analytic, wrt):
        data = inputs[i].data
        flat = data.reshape(-1)  # a view: writes perturb the input
        if flat.base is None and data.size:
            raise GradcheckError(f"inputs[{i}] is not contiguous; pass a contiguous tensor")
        for j in range(flat.size):
            original = float(flat[j])
            flat[j] = original + eps
            f_plus = _dot(_outputs(fn, inputs), vs)
            flat[j] = original - eps
            f_minus = _dot(_outputs(fn, inputs), vs)
            flat[j] = original
            numeric = (f_plus - f_minus) / (2 * eps)
            analytic_j = float(a_grad.reshape(-1)[j])
            err = abs(analytic_j - numeric)
            if f0 is not None:
                right = (f_plus - f0) / eps
                left = (f0 - f_minus) / eps
                if _kink(left, right, numeric, err, atol, rtol):
                    index = np.unravel_index(j, data.shape)
                    return (
                        f"gradcheck: inputs[{i}] at index {tuple(int(k) for k in index)} "
                        f"(value {original!r}) lies on a kink: one-sided derivatives "
                        f"{left:.6g} (left) and {right:.6g} (right) differ, so the function "
                        "is not differentiable there; move the test input away from it"
                    )
            tol = atol + rtol * abs(numeric)
            if err > tol and (worst is None or err - tol > worst[0]):
                worst = (err - tol, i, np.unravel_index(j, data.shape), analytic_j, numeric, err)
    if worst is None:
        return None
    _, i, index, a, n, err = worst
    return (
        f"gradcheck failed for inputs[{i}] (shape {inputs[i].shape}) at index "
        f"{tuple(int(k) for k in index)}: analytic {a:.10g}, numerical {n:.10g}, "
        f"|difference| {err:.3g} > atol {atol} + rtol {rtol} * |numerical|"
    )


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0,
                  check_kinks=True, raise_exception=True, fast_mode=False):
    """Check second derivatives: gradcheck of ``(x, v) -> v^T J(x)`` (``fast_mode``:
    along one random direction per input, as in ``gradcheck``)."""
    inputs = _as_tuple(inputs)
    wrt = [i for i, t in enumerate(inputs) if t.requires_grad]
    outs = _outputs(fn, inputs)
    rng = np.random.default_rng(seed + 1)
    if grad_outputs is None:
        vs = tuple(
            Tensor._make(array_module(o.data).asarray(rng.standard_normal(o.shape))).requires_grad_()
            for o in outs
        )
    else:
        vs = tuple(Tensor._make(v.data.copy()).requires_grad_() for v in _as_tuple(grad_outputs))
    n_inputs = len(inputs)

    def vjp(*args):
        xs, v = args[:n_inputs], args[n_inputs:]
        ys = _outputs(fn, xs)
        live = [(y, g) for y, g in zip(ys, v) if y.requires_grad]
        if not live:
            return tuple(Tensor._make(array_module(xs[i].data).zeros(xs[i].shape)) for i in wrt)
        grads = autograd_grad([y for y, _ in live], [xs[i] for i in wrt],
                              grad_outputs=[g for _, g in live], create_graph=True,
                              allow_unused=True)
        return tuple(
            g if g is not None else Tensor._make(array_module(xs[i].data).zeros(xs[i].shape))
            for g, i in zip(grads, wrt)
        )

    return gradcheck(vjp, tuple(inputs) + vs, eps=eps, atol=atol, rtol=rtol, seed=seed + 2,
                     check_kinks=check_kinks, raise_exception=raise_exception,
                     fast_mode=fast_mode)


def check_grads(fn, inputs, atol=1e-5, rtol=1e-3, second_order=True, fast_mode=False, **kw):
    """``gradcheck`` and (unless ``second_order=False``) ``gradgradcheck`` of ``fn`` at
    ``inputs``; both must pass (a failure raises ``GradcheckError``)."""
    gradcheck(fn, inputs, atol=atol, rtol=rtol, fast_mode=fast_mode, **kw)
    if second_order:
        gradgradcheck(fn, inputs, atol=atol, rtol=rtol, fast_mode=fast_mode, **kw)
    return True
