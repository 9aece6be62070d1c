"""The plumbing of ``Module.register_full_backward_hook``: how a module call with full
backward hooks sees the gradients with respect to its inputs and its outputs.

The module's forward is not changed: its tensor inputs and outputs pass through an
identity Function each (``GradientTap``), whose backward hands the gradients to the
``BackwardHookCall`` of that module call, which runs the hooks (PyTorch's semantics).
A module without backward hooks never gets here (no wrapping, no cost).
"""
from ..autograd.function import Function
from ..autograd.tensor import Tensor


class GradientTap(Function):
    """Identity on its tensors; its backward hands the passing gradients to
    ``tap(grads)``, which returns the gradients to pass on (full backward hooks)."""

    def forward(self, *arrays, tap):
        self.tap = tap
        return arrays

    def backward(self, *grads):
        return tuple(self.tap(grads))


class BackwardHookCall:
    """One call of a module with full backward hooks.

    Inputs and outputs go through a ``GradientTap`` each.  Backward reaches the
    output tap first (it records ``grad_output``), then the module's own graph,
    then the input tap, where the hooks run with both.  When no input requires
    grad the hooks run at the output tap, with ``grad_input`` all None.
    """

    def __init__(self, module):
        self.module = module
        self.grad_output = None
        self.tensor_args = ()   # positions of the positional Tensor arguments
        self.tapped = ()        # those of them that require grad

    def wrap_inputs(self, args):
        self.tensor_args = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.tapped = [i for i in self.tensor_args if args[i].requires_grad]
        if not self.tapped:
            return args
        wrapped = GradientTap.apply(*[args[i] for i in self.tapped], tap=self._at_inputs)
        args = list(args)
        for i, t in zip(self.tapped, wrapped):
            args[i] = t
        return tuple(args)

    def wrap_outputs(self, output):
        single = isinstance(output, Tensor)
        items = [output] if single else list(output) if isinstance(output, (tuple, list)) else []
        positions = [i for i, o in enumerate(items) if isinstance(o, Tensor) and o.requires_grad]
        if not positions:
            return output
        wrapped = GradientTap.apply(*[items[i] for i in positions], tap=self._at_outputs)
        for i, t in zip(positions, wrapped):
            items[i] = t
        if single:
            return items[0]
        return type(output)(*items) if hasattr(output, "_fields") else type(output)(items)

    def _run_hooks(self, grad_input):
        for hook in list(self.module._backward_hooks.values()):
            result = hook(self.module, grad_input, self.grad_output)
            if result is not None:
                result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
                if len(result) != len(grad_input):
                    raise RuntimeError(
                        f"backward hook {getattr(hook, '__name__', hook)!r} returned "
                        f"{len(result)} gradients; the module has {len(grad_input)} tensor inputs"
                    )
                grad_input = result
        return grad_input

    def _at_outputs(self, grads):
        self.grad_output = grads
        if not self.tapped:
            self._run_hooks((None,) * len(self.tensor_args))
            self.grad_output = None
        return grads

    def _at_inputs(self, grads):
        if self.grad_output is None:
            # The gradient reached the inputs without passing the outputs: a
            # double backward through the first one's graph.  Not this call's
            # backward, so no hook (PyTorch does the same).
            return grads
        by_position = dict(zip(self.tapped, grads))
        grad_input = self._run_hooks(tuple(by_position.get(i) for i in self.tensor_args))
        self.grad_output = None
        return tuple(grad_input[self.tensor_args.index(i)] for i in self.tapped)
