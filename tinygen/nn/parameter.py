"""``Parameter``: a leaf tensor that a ``Module`` registers as a learnable weight.

Assigning a Parameter to a Module attribute is what puts it into
``parameters()`` and ``state_dict()``; a plain Tensor attribute stays invisible.
A Parameter built from a Tensor or an array shares that data (no copy), the
way ``torch.nn.Parameter`` does.
"""
import numpy as np

from ..autograd.tensor import Tensor


class Parameter(Tensor):
    # Tensor declares __slots__; an empty tuple keeps Parameters dict-free too.
    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            data = data.data  # share the array; the graph (if any) is cut
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
