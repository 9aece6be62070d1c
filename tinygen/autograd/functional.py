"""``grad()``: gradients of outputs with respect to chosen inputs."""
from ..backend import array_module
from .engine import run_backward


def as_tensor_tuple(values, what):
    from .tensor import Tensor

    if isinstance(values, Tensor):
        values = (values,)
    values = tuple(values)
    for i, v in enumerate(values):
        if not isinstance(v, Tensor):
            raise TypeError(f"{what}[{i}] must be a Tensor, got {type(v).__name__}")
    return values


def default_grad_output(output, gradient):
    """The upstream gradient for ``output``: given, or 1 for a scalar."""
    from .tensor import Tensor

    if gradient is None:
        if output.data.size != 1:
            raise RuntimeError(
                "grad can be implicitly created only for scalar outputs; the output has shape "
                f"{output.shape}: pass gradient= (a tensor of that shape)"
            )
        return Tensor._make(array_module(output.data).ones(output.shape, dtype=output.dtype))
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
