"""Containers: ``Sequential``, ``ModuleList`` and ``ModuleDict``.

Children are registered under their index (``"0"``, ``"1"``...) or key, so
state_dict names read ``layers.0.weight`` exactly as in PyTorch.
"""
from collections import OrderedDict
from collections.abc import Mapping
import numbers

from .module import Module


def _index(i, n, kind):
    if isinstance(i, bool) or not isinstance(i, numbers.Integral):
        raise TypeError(f"{kind} indices must be integers or slices, got {type(i).__name__}")
    i = int(i)
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of range for {kind} of length {n}")
    return i + n if i < 0 else i


def _check_module(module):
    if not isinstance(module, Module):
        raise TypeError(f"{type(module).__name__} is not a Module subclass")
    return module


class _IndexedContainer(Module):
    """Shared by Sequential and ModuleList: children keyed "0".."n-1"."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def _renumber(self, modules):
        self._modules.clear()
        for i, module in enumerate(modules):
            self._modules[str(i)] = module

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return list(self._modules.values())[_index(idx, len(self), type(self).__name__)]

    def __setitem__(self, idx, module):
        idx = _index(idx, len(self), type(self).__name__)
        self._modules[str(idx)] = _check_module(module)

    def __delitem__(self, idx):
        modules = list(self._modules.values())
        if isinstance(idx, slice):
            del modules[idx]
        else:
            del modules[_index(idx, len(modules), type(self).__name__)]
        self._renumber(modules)  # keep names contiguous, like PyTorch

    def append(self, module):
        self.add_module(str(len(self)), _check_module(module))
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        modules = list(self._modules.values())
        modules.insert(index, _check_module(module))
        self._renumber(modules)


class Sequential(_IndexedContainer):
    """Applies its children in order: ``Sequential(Linear(2, 8), ReLU(), Linear(8, 1))``.

    Also accepts one OrderedDict of ``name -> module`` to name the children.
    """

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            Module.__init__(self)
            for name, module in args[0].items():
                self.add_module(name, _check_module(module))
        else:
            super().__init__(args)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)

    def __setitem__(self, idx, module):
        key = list(self._modules)[_index(idx, len(self), "Sequential")]
        self._modules[key] = _check_module(module)

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input


class ModuleList(_IndexedContainer):
    """A list of modules, registered so that their parameters are found."""

    def __init__(self, modules=None):
        super().__init__(modules if modules is not None else ())

    def __iadd__(self, modules):
        return self.extend(modules)


class ModuleDict(Module):
    """An ordered dict of modules, registered so that their parameters are found."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, _check_module(module))

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def pop(self, key):
        module = self._modules[key]
        del self._modules[key]
        return module

    def clear(self):
        self._modules.clear()

    def update(self, modules):
        items = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        for entry in items:
            if isinstance(entry, Module) or len(entry) != 2:
                raise ValueError("ModuleDict.update expects a mapping or (key, module) pairs")
            key, module = entry
            self[key] = module
