"""PyTorch's argument names on numpy-named ops: ``dim`` for ``axis``, ``keepdim`` for
``keepdims``. Both spellings work, so ``x.sum(dim=1, keepdim=True)`` and
``x.sum(axis=1, keepdims=True)`` are the same call (giving both is an error).

``max``/``min`` follow the spelling's library in what they return too: with ``dim`` they
return PyTorch's ``(values, indices)`` pair, with ``axis`` numpy's values alone.
"""
import functools
from collections import namedtuple

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])

_RENAMES = (("dim", "axis"), ("keepdim", "keepdims"))


def torch_names(fn=None, *, indices=None):
    """Decorate an op (or a Tensor method) taking ``axis``/``keepdims``; ``indices``:
    the arg-op whose result joins the values when called PyTorch's way with ``dim``."""
    if fn is None:
        return functools.partial(torch_names, indices=indices)

    @functools.wraps(fn)
    def op(*args, **kwargs):
        if kwargs:
            torch_dim = "dim" in kwargs
            for torch_name, numpy_name in _RENAMES:
                if torch_name in kwargs:
                    if numpy_name in kwargs:
                        raise TypeError(f"{fn.__name__}() got both {numpy_name!r} and "
                                        f"{torch_name!r} (the same argument, spelled the "
                                        f"numpy and the PyTorch way)")
                    kwargs[numpy_name] = kwargs.pop(torch_name)
            if torch_dim and indices is not None and kwargs["axis"] is not None:
                return ValuesIndices(fn(*args, **kwargs), indices(*args, **kwargs))
        return fn(*args, **kwargs)

    return op
