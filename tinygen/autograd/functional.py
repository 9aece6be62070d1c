"""Gradients as functions: ``grad()``, and for studying backprop ``vjp``, ``jvp``,
``hvp``, ``vhp``, ``jacobian`` and ``hessian`` (PyTorch's ``torch.autograd.functional``
signatures).

Everything is built from reverse mode (the engine has no forward mode):

* ``vjp``: one backward pass, ``v^T J``.
* ``jvp``: the double-vjp trick.  ``u -> J^T u`` is linear in ``u``, so its own vjp
  with cotangent ``v`` is ``(J^T)^T v = J v``: backpropagate a dummy ``u`` (zeros) with
  ``create_graph=True``, then backpropagate ``v`` through that graph to ``u``.  It
  needs every backward to be differentiable in its upstream gradient, which is what
  ``gradgradcheck`` checks.
* ``hvp`` is the jvp of the gradient (``H v``); ``vhp`` its vjp (``v^T H``): equal for a
  twice-differentiable function, whose Hessian is symmetric.
* ``jacobian``: one vjp per output element ("reverse-mode") or one jvp per input
  element ("forward-mode"); ``hessian`` is the jacobian of the gradient.

With ``create_graph=False`` the inputs are detached first and the results carry no
graph; with ``create_graph=True`` the results can be differentiated again.
``strict=True`` raises where an output does not depend on an input (otherwise that
block of the result is zeros, as in PyTorch).
"""
import numpy as np

from ..backend import array_module
from . import tensor as _tensor  # a module reference (tensor.py imports this module too)
from .engine import run_backward
from .function import Function
from .grad_mode import enable_grad
from .primitives import clone


def as_tensor_tuple(values, what):
    Tensor = _tensor.Tensor
    if isinstance(values, Tensor):
        values = (values,)
    values = tuple(values)
    for i, v in enumerate(values):
        if not isinstance(v, Tensor):
            raise TypeError(f"{what}[{i}] must be a Tensor, got {type(v).__name__}")
    return values


def default_grad_output(output, gradient):
    """The upstream gradient for ``output``: given, or 1 for a scalar."""
    Tensor = _tensor.Tensor   # (no import statement: this runs on every backward)
    if gradient is None:
        if output.data.size != 1:
            raise RuntimeError(
                "grad can be implicitly created only for scalar outputs; the output has shape "
                f"{output.shape}: pass gradient= (a tensor of that shape)"
            )
        data = output.data
        xp = np if type(data) is np.ndarray else array_module(data)
        return Tensor._make(xp.ones(data.shape, dtype=data.dtype))
    if not isinstance(gradient, Tensor):
        gradient = Tensor(array_module(output.data).asarray(gradient, dtype=output.dtype))
    if gradient.shape != output.shape:
        raise ValueError(
            f"gradient has shape {gradient.shape} but the output has shape {output.shape}"
        )
    if gradient.dtype != output.dtype:
        raise TypeError(f"gradient has dtype {gradient.dtype} but the output has {output.dtype}")
    if gradient.device != output.device:
        raise RuntimeError(
            f"gradient is on {gradient.device} but the output is on {output.device}"
        )
    return gradient


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Sum of vector-Jacobian products of ``outputs`` w.r.t. each of ``inputs``.

    Unlike ``backward()`` this returns the gradients and leaves ``.grad``
    alone.  With ``create_graph=True`` the returned gradients carry a graph, so
    they can be differentiated again (gradient penalties, Hessian-vector
    products, third derivatives).
    """
    outputs = as_tensor_tuple(outputs, "outputs")
    inputs = as_tensor_tuple(inputs, "inputs")
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    elif not isinstance(grad_outputs, (tuple, list)):
        grad_outputs = (grad_outputs,)
    if len(grad_outputs) != len(outputs):
        raise ValueError(
            f"got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs"
        )
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"inputs[{i}] (shape {t.shape}) does not require grad")
    roots, root_grads = [], []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not out.requires_grad:
            raise RuntimeError(
                f"outputs[{i}] (shape {out.shape}) does not require grad: it does not depend "
                "on any input that requires grad"
            )
        roots.append(out)
        root_grads.append(default_grad_output(out, g))
    if retain_graph is None:
        retain_graph = create_graph
    return run_backward(roots, root_grads, retain_graph=retain_graph,
                        create_graph=create_graph, inputs=inputs, allow_unused=allow_unused)


# --- helpers for the functional API ---------------------------------------------------------
def _tensors(values, what):
    """``values`` as a tuple of Tensors, and whether it was given as a tuple/list."""
    from .tensor import Tensor

    given_as_tuple = isinstance(values, (tuple, list))
    values = as_tensor_tuple(values if given_as_tuple else (values,), what)
    return values, given_as_tuple


def _shaped_like(values, was_tuple):
    return values if was_tuple else values[0]


def _zeros(like):
    from .tensor import Tensor

    return Tensor._make(array_module(like.data).zeros(like.shape, dtype=like.dtype))


def _ones(like):
    from .tensor import Tensor

    return Tensor._make(array_module(like.data).ones(like.shape, dtype=like.dtype))


def _prepare_inputs(inputs, create_graph):
    """Tensors to differentiate with respect to: under create_graph a clone of each
    input that requires grad (connected to its graph, yet a node of its own, so an
    input passed twice gets two gradients), else a detached alias."""
    inputs, was_tuple = _tensors(inputs, "inputs")
    for i, t in enumerate(inputs):
        if t.dtype.kind != "f":
            raise TypeError(f"inputs[{i}] has dtype {t.dtype}: only floating-point inputs "
                            "can be differentiated")
    prepared = tuple(clone(t) if create_graph and t.requires_grad
                     else t.detach().requires_grad_() for t in inputs)
    return prepared, was_tuple


def _call(func, inputs):
    with enable_grad():
        outputs = func(*inputs)
    return _tensors(outputs, "func's outputs")


def _check_v(v, against, what):
    """The direction ``v``, one Tensor per tensor of ``against``; None means 1 for a
    single one-element tensor (as PyTorch)."""
    if v is None:
        if len(against) != 1 or against[0].numel() != 1:
            raise RuntimeError(
                f"v may be omitted only when {what} is a single tensor with one element; "
                f"{what} has shapes {[t.shape for t in against]}: pass v"
            )
        return (_ones(against[0]),)
    v, _ = _tensors(v, "v")
    if len(v) != len(against):
        raise ValueError(f"v has {len(v)} tensors but {what} has {len(against)}")
    for i, (vi, t) in enumerate(zip(v, against)):
        if vi.shape != t.shape:
            raise ValueError(f"v[{i}] has shape {vi.shape} but {what}[{i}] has shape {t.shape}")
        if vi.dtype != t.dtype:
            raise TypeError(f"v[{i}] has dtype {vi.dtype} but {what}[{i}] has {t.dtype}")
    return tuple(vi.detach() for vi in v)


def _vjp_or_none(outputs, inputs, cotangents, create_graph):
    """``sum_i cotangents_i^T d outputs_i / d inputs_j`` for each input j (None for an
    input that no output depends on)."""
    live = [(o, c) for o, c in zip(outputs, cotangents) if o.requires_grad]
    if not live:
        return (None,) * len(inputs)
    return grad([o for o, _ in live], inputs, grad_outputs=[c for _, c in live],
                retain_graph=True, create_graph=create_graph, allow_unused=True)


def _filled(grads, likes, strict, independent):
    """None -> zeros, or under ``strict`` the error ``independent(j)`` describes."""
    result = []
    for j, (g, like) in enumerate(zip(grads, likes)):
        if g is None:
            if strict:
                raise RuntimeError(f"{independent(j)}, which strict=True does not allow")
            g = _zeros(like)
        result.append(g)
    return tuple(result)


def _vjp(outputs, inputs, cotangents, create_graph, strict):
    grads = _vjp_or_none(outputs, inputs, cotangents, create_graph)
    return _filled(grads, inputs, strict, lambda j: (
        f"the output of func does not depend on input {j} (shape {inputs[j].shape})"))


def _jvp(outputs, inputs, v, create_graph, strict):
    """``J v`` by the double-vjp trick (module docstring)."""
    dummies = tuple(_zeros(o).requires_grad_() for o in outputs)
    transposed = _vjp_or_none(outputs, inputs, dummies, create_graph=True)
    # d<J^T u, v>/du = J v; an output that depends on no input gets zeros.
    live = [(t, vj) for t, vj in zip(transposed, v) if t is not None and t.requires_grad]
    grads = _vjp_or_none([t for t, _ in live], dummies, [vj for _, vj in live], create_graph)
    return _filled(grads, outputs, strict, lambda i: (
        f"output {i} of func (shape {outputs[i].shape}) does not depend on the inputs"))


def _finish(values, create_graph):
    return tuple(values) if create_graph else tuple(t.detach() for t in values)


# --- the functional API --------------------------------------------------------------------
def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(*inputs), v^T J)``: the vector-Jacobian product for cotangent ``v``
    (one tensor per output of ``func``; optional for one one-element output)."""
    inputs, in_tuple = _prepare_inputs(inputs, create_graph)
    outputs, out_tuple = _call(func, inputs)
    v = _check_v(v, outputs, "the output of func")
    result = _vjp(outputs, inputs, v, create_graph, strict)
    return (_shaped_like(_finish(outputs, create_graph), out_tuple),
            _shaped_like(_finish(result, create_graph), in_tuple))


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(*inputs), J v)``: the Jacobian-vector product for the input direction
    ``v`` (one tensor per input), computed by the double-vjp trick."""
    inputs, in_tuple = _prepare_inputs(inputs, create_graph)
    v = _check_v(v, inputs, "inputs")
    outputs, out_tuple = _call(func, inputs)
    result = _jvp(outputs, inputs, v, create_graph, strict)
    return (_shaped_like(_finish(outputs, create_graph), out_tuple),
            _shaped_like(_finish(result, create_graph), out_tuple))


def _scalar_and_gradient(func, inputs, strict):
    output, out_tuple = _call(func, inputs)
    if out_tuple or output[0].numel() != 1:
        raise RuntimeError(
            "func must return a single tensor with one element for a Hessian, got "
            f"shapes {[o.shape for o in output]}"
        )
    gradient = _vjp(output, inputs, (_ones(output[0]),), create_graph=True, strict=strict)
    return output[0], gradient


def _hessian_product(func, inputs, v, create_graph, strict, product):
    inputs, in_tuple = _prepare_inputs(inputs, create_graph)
    v = _check_v(v, inputs, "inputs")
    output, gradient = _scalar_and_gradient(func, inputs, strict)
    result = product(gradient, inputs, v, create_graph, strict)
    return (_finish((output,), create_graph)[0],
            _shaped_like(_finish(result, create_graph), in_tuple))


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(*inputs), H v)`` for a scalar ``func``: the jvp of its gradient."""
    return _hessian_product(func, inputs, v, create_graph, strict, _jvp)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(*inputs), v^T H)`` for a scalar ``func``: the vjp of its gradient."""
    return _hessian_product(func, inputs, v, create_graph, strict, _vjp)


class _Stack(Function):
    """Stack equally shaped tensors along a new first axis (the Jacobian's rows), so
    that a Jacobian built with create_graph stays differentiable."""

    def forward(self, *arrays):
        return array_module(arrays[0]).stack(arrays)

    def backward(self, grad):
        return tuple(grad[k] for k in range(grad.shape[0]))


def _one_hots(like):
    """Each one-element direction (a one-hot tensor shaped like ``like``), in order."""
    from .tensor import Tensor

    xp = array_module(like.data)
    for k in range(like.numel()):
        e = xp.zeros(like.numel(), dtype=like.dtype)
        e[k] = 1
        yield Tensor._make(e.reshape(like.shape))


def _block(pieces, lead_shape, tail_shape, like, transpose):
    """Stack the pieces (one per element of ``lead``) into ``out.shape + in.shape``."""
    if not pieces:
        from .tensor import Tensor

        xp = array_module(like.data)
        shape = tail_shape + lead_shape if transpose else lead_shape + tail_shape
        return Tensor._make(xp.zeros(shape, dtype=like.dtype))
    stacked = _Stack.apply(*pieces)
    if transpose:  # columns (one per input element) -> out.shape + in.shape
        n_in = len(pieces)
        stacked = stacked.reshape(n_in, -1).transpose(0, 1)
        return stacked.reshape(tail_shape + lead_shape)
    return stacked.reshape(lead_shape + tail_shape)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """The Jacobian of ``func`` at ``inputs``: for output i and input j a tensor of shape
    ``outputs[i].shape + inputs[j].shape``, nested as ``J[i][j]`` where ``func`` returns
    (or ``inputs`` is) a tuple.  "reverse-mode" takes one vjp per output element,
    "forward-mode" one jvp (double vjp) per input element."""
    if vectorize:
        raise NotImplementedError("jacobian: vectorize=True needs vmap, which tinygen does "
                                  "not have; leave vectorize=False")
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f"jacobian: strategy must be 'reverse-mode' or 'forward-mode', "
                         f"got {strategy!r}")
    inputs, in_tuple = _prepare_inputs(inputs, create_graph)
    outputs, out_tuple = _call(func, inputs)
    blocks = [[None] * len(inputs) for _ in outputs]
    if strategy == "reverse-mode":
        for i, out in enumerate(outputs):
            rows = [[] for _ in inputs]
            for e in _one_hots(out):
                for j, g in enumerate(_vjp((out,), inputs, (e,), create_graph, strict)):
                    rows[j].append(g)
            for j, x in enumerate(inputs):
                blocks[i][j] = _block(rows[j], out.shape, x.shape, out, transpose=False)
    else:
        for j, x in enumerate(inputs):
            columns = [[] for _ in outputs]
            for e in _one_hots(x):
                for i, c in enumerate(_jvp(outputs, (x,), (e,), create_graph, strict)):
                    columns[i].append(c)
            for i, out in enumerate(outputs):
                blocks[i][j] = _block(columns[i], x.shape, out.shape, out, transpose=True)
    blocks = [_finish(row, create_graph) for row in blocks]
    return _shaped_like(tuple(_shaped_like(row, in_tuple) for row in blocks), out_tuple)


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a scalar ``func``: the jacobian of its gradient, a tensor of shape
    ``inputs.shape * 2`` (``H[i][j]`` of shape ``inputs[i].shape + inputs[j].shape`` for
    a tuple of inputs)."""
    inputs, in_tuple = _tensors(inputs, "inputs")

    def gradient(*xs):
        return _shaped_like(_scalar_and_gradient(func, xs, strict)[1], in_tuple)

    return jacobian(gradient, _shaped_like(inputs, in_tuple), create_graph=create_graph,
                    strict=strict, vectorize=vectorize, strategy=outer_jacobian_strategy)
