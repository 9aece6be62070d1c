"""Tensor gradient hooks: ``tensor.register_hook(fn)``.

A leaf keeps its hooks itself; a non-leaf tensor's hooks live on the node that
produced it, keyed by output index, because the engine meets a non-leaf
tensor's gradient only as that node's incoming buffer.
"""
import itertools

_ids = itertools.count()


class RemovableHandle:
    """Returned by every ``register_*hook`` (tensors and modules); ``remove()``
    unregisters the hook."""

    def __init__(self, store):
        self._store = store
        self.id = next(_ids)

    def remove(self):
        self._store.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def register_tensor_hook(tensor, hook):
    if not callable(hook):
        raise TypeError(f"hook must be callable, got {type(hook).__name__}")
    if not tensor.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that does not require grad")
    if tensor.grad_fn is None:
        if tensor._hooks is None:
            tensor._hooks = {}
        store = tensor._hooks
    else:
        node = tensor.grad_fn
        if node._tensor_hooks is None:
            node._tensor_hooks = {}
        store = node._tensor_hooks.setdefault(tensor._output_index, {})
    handle = RemovableHandle(store)
    store[handle.id] = hook
    return handle


def apply_hooks(store, grad):
    """Run ``store``'s hooks in registration order; a hook may replace ``grad``."""
    for hook in list(store.values()):
        result = hook(grad)
        if result is not None:
            if tuple(result.shape) != tuple(grad.shape):
                raise RuntimeError(
                    f"hook {getattr(hook, '__name__', hook)!r} returned a gradient of shape "
                    f"{tuple(result.shape)}; expected {tuple(grad.shape)}"
                )
            grad = result
    return grad
