"""``Module``: the base class of layers and models (PyTorch's ``nn.Module`` shape).

A Module owns three ordered registries, filled by plain attribute assignment:

* ``_parameters``: ``Parameter`` objects (``self.weight = Parameter(...)``);
* ``_modules``:    sub-Modules (``self.fc = Linear(2, 3)``);
* ``_buffers``:    Tensors that are state but not learnable (``register_buffer``),
  such as batch-norm running statistics.

Everything else (``parameters()``, ``state_dict()``, ``to()``, ``train()``...)
walks these registries, so a name like ``layers.0.weight`` is simply the path of
attribute names from the root module down to the tensor.

Registered entries are *not* in the instance ``__dict__``: attribute lookup
finds them through ``__getattr__``, which Python calls only after the normal
lookup failed, so ordinary attributes cost nothing extra.
"""
from collections import OrderedDict, namedtuple
from collections.abc import Mapping
import numbers

import numpy as np

from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from ..autograd.hooks import RemovableHandle
from ..backend import array_module, to_device, normalize_device
from .backward_hooks import BackwardHookCall
from .parameter import Parameter



class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What a non-strict ``load_state_dict`` could not match."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


def _check_name(name, kind):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a str, got {type(name).__name__}")
    if not name:
        raise KeyError(f'{kind} name can\'t be empty string ""')
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain ".", got {name!r}')


def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"Module.to only accepts floating-point dtypes, got {dtype}")
    return dtype


def _is_dtype(value):
    if isinstance(value, str):
        try:
            np.dtype(value)
            return True
        except TypeError:
            return False
    return isinstance(value, (np.dtype, type))


class Module:
    """Base class of every layer and model; subclasses define ``forward``."""

    # Set per instance in __init__; the class default lets __getattr__ and
    # __setattr__ tell "Module.__init__ was never called" apart from a typo.
    training = True

    def __init__(self):
        # object.__setattr__ bypasses our __setattr__, which needs these to exist.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_backward_hooks", OrderedDict())

    # --- forward ----------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        if not (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks):
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        backward_hook = None
        if self._backward_hooks and is_grad_enabled():
            backward_hook = BackwardHookCall(self)
            args = backward_hook.wrap_inputs(args)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        if backward_hook is not None:
            output = backward_hook.wrap_outputs(output)
        return output

    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` runs before forward; it may return replacement args."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` runs after forward; it may return a new output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_full_backward_hook(self, hook):
        """``hook(module, grad_input, grad_output)`` runs when the gradients with respect
        to the module's inputs have been computed.

        ``grad_input``: one entry per positional Tensor argument (None where it does
        not require grad); ``grad_output``: one per Tensor output.  The hook may return
        a replacement ``grad_input`` tuple.  Works with ``create_graph=True`` (the
        gradients are then Tensors with a graph).
        """
        handle = RemovableHandle(self._backward_hooks)
        self._backward_hooks[handle.id] = hook
        return handle

    # --- registration ----------------------------------------------------------------
    def _require_init(self, name):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() call "
                f"(call super().__init__() first in {type(self).__name__}.__init__)"
            )

    def register_parameter(self, name, param):
        """Add ``param`` (a Parameter, or None for an absent one) under ``name``."""
        self._require_init(name)
        _check_name(name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute {name!r} already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter {name!r} "
                "(tinygen.nn.Parameter or None required)"
            )
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a non-learnable state tensor; ``persistent=False`` keeps it out of state_dict."""
        self._require_init(name)
        _check_name(name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute {name!r} already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer {name!r} "
                "(Tensor or None required)"
            )
        if isinstance(tensor, Parameter):
            raise TypeError(f"buffer {name!r} cannot be a Parameter; use register_parameter")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        """Add ``module`` (or None) as a child named ``name``."""
        self._require_init(name)
        _check_name(name, "module")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute {name!r} already exists")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            self._require_init(name)
            d.pop(name, None)
            self._buffers.pop(name, None)
            self._modules.pop(name, None)
            self._non_persistent_buffers.discard(name)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter {name!r} "
                    "(tinygen.nn.Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            self._require_init(name)
            d.pop(name, None)
            self._parameters.pop(name, None)
            self._buffers.pop(name, None)
            self._non_persistent_buffers.discard(name)
            self._modules[name] = value
        elif params is not None and name in d["_modules"]:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module {name!r} "
                    "(Module or None expected)"
                )
            d["_modules"][name] = None
        elif params is not None and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as buffer {name!r} "
                    "(Tensor or None expected)"
                )
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only reached when normal lookup failed: check the three registries.
        d = self.__dict__
        if "_parameters" in d:
            params = d["_parameters"]
            if name in params:
                return params[name]
            buffers = d["_buffers"]
            if name in buffers:
                return buffers[name]
            modules = d["_modules"]
            if name in modules:
                return modules[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers.discard(name)
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def __dir__(self):
        keys = set(super().__dir__())
        keys.update(self._parameters, self._buffers, self._modules)
        return sorted(k for k in keys if not k[0].isdigit())

    # --- traversal --------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """``(name, module)`` for this module and every descendant, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry, prefix, recurse, remove_duplicate=True):
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) \
            if recurse else [(prefix, self)]
        seen = set()
        for module_prefix, module in modules:
            for name, value in module.__dict__[registry].items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """``(name, Parameter)`` pairs; a parameter shared by two modules appears once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def get_submodule(self, target):
        """The module at dotted path ``target`` ('' is this module)."""
        module = self
        if target == "":
            return module
        for part in target.split("."):
            child = module._modules.get(part) if isinstance(module, Module) else None
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (in {target!r})")
            module = child
        return module

    def num_parameters(self, only_trainable=False):
        """Number of scalar parameters (shared parameters counted once)."""
        return sum(p.numel() for p in self.parameters()
                   if p.requires_grad or not only_trainable)

    # --- modes -------------------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode on this module and every descendant; returns self."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be a bool, got {mode!r}")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all parameters (to None, or to zeros)."""
        for p in self.parameters():
            _zero_grad(p, set_to_none)

    def apply(self, fn):
        """Call ``fn(module)`` on every child (recursively), then on self; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # --- dtype / device ----------------------------------------------------------------
    def to(self, *args, dtype=None, device=None):
        """Convert parameters and buffers in place: ``to(float64)``, ``to('cuda')`` or both.

        Only floating-point tensors change dtype.  The Parameter objects stay the
        same (their ``.data`` is replaced), so an optimizer built before the call
        keeps updating the model's parameters.
        """
        for arg in args:
            if _is_dtype(arg):
                dtype = arg
            elif isinstance(arg, Tensor):
                dtype, device = arg.dtype, arg.device
            else:
                device = arg
        if dtype is not None:
            dtype = _float_dtype(dtype)
        if device is not None:
            device = normalize_device(device)

        def convert(array):
            if dtype is not None and array.dtype.kind == "f" and array.dtype != dtype:
                array = array.astype(dtype)
            if device is not None:
                array = to_device(array, device)
            return array

        seen = set()
        for module in self.modules():
            for registry in (module._parameters, module._buffers):
                for t in registry.values():
                    if t is None or id(t) in seen:
                        continue
                    seen.add(id(t))
                    t.data = convert(t.data)
                    if t.grad is not None:
                        t.grad.data = convert(t.grad.data)
        return self

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def cpu(self):
        return self.to(device="cpu")

    def cuda(self):
        return self.to(device="cuda")

    # --- state_dict ----------------------------------------------------------------------
    def _state_entries(self, prefix=""):
        """``(key, tensor)`` for every entry state_dict holds, in PyTorch's order.

        Like PyTorch this walks ``_modules`` without deduplication: a module
        reachable under two names is saved under both.
        """
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                yield prefix + name, b
        for name, module in self._modules.items():
            if module is not None:
                yield from module._state_entries(prefix + name + ".")

    def state_dict(self, prefix="", keep_vars=False):
        """Ordered ``name -> Tensor`` of parameters and persistent buffers.

        The values are snapshots (copies, cut from the graph), so training on
        after the call does not change a saved state_dict; ``keep_vars=True``
        returns the live Parameter/buffer objects instead.
        """
        out = OrderedDict()
        for key, t in self._state_entries(prefix):
            out[key] = t if keep_vars else Tensor._make(t.data.copy())
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy ``state_dict``'s values into this module's parameters and buffers.

        Values may be Tensors or numpy arrays (as read back from an ``.npz``).
        Everything is checked before anything is written, so a failed load
        leaves the module untouched.  With ``strict`` every missing and every
        unexpected key is an error (all listed in one message); without it they
        are returned as ``(missing_keys, unexpected_keys)``.  Shape mismatches
        and float values for integer buffers are errors either way.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"expected a mapping for state_dict, got {type(state_dict).__name__}")
        expected = OrderedDict(self._state_entries())
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        errors = []
        if strict:
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.append("Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ".")
        copies = []
        for key, target in expected.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            source, problem = _as_array(value)
            if problem:
                errors.append(f"value for {key!r} is {problem}")
                continue
            if tuple(source.shape) != target.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(source.shape)} "
                    f"from checkpoint, the shape in current model is {target.shape}."
                )
                continue
            if source.dtype.kind in "fc" and target.dtype.kind in "iub":
                errors.append(
                    f"dtype mismatch for {key}: cannot copy floating-point values ({source.dtype}) "
                    f"into the {target.dtype} buffer"
                )
                continue
            copies.append((target, source))
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors)
            )
        for target, source in copies:
            xp = array_module(target.data)
            source = to_device(source, target.device)
            target.data[...] = xp.asarray(source).astype(target.dtype, copy=False)
        return _IncompatibleKeys(missing, unexpected)

    # --- repr --------------------------------------------------------------------------
    def extra_repr(self):
        """Arguments shown between the parentheses of ``repr`` (override in layers)."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        # PyTorch's layout: one-line when there is at most a one-line extra_repr,
        # otherwise one indented line per extra_repr line and per child.
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): {_add_indent(repr(module), 2)}"
                       for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        text = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"


def _add_indent(text, spaces):
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _as_array(value):
    """(array, None) for a Tensor / array / number, or (None, why-not)."""
    if isinstance(value, Tensor):
        return value.data, None
    if hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "astype"):
        return value, None  # numpy or cupy array, or a numpy scalar
    if isinstance(value, (bool, numbers.Number)):
        return np.asarray(value), None
    return None, f"a {type(value).__name__}, expected a Tensor or a numpy array"


def _zero_grad(p, set_to_none):
    """Shared by Module.zero_grad and Optimizer.zero_grad."""
    if p.grad is None:
        return
    if set_to_none:
        p.grad = None
    elif p.grad.grad_fn is not None:  # a grad with a graph (create_graph=True): cut it
        p.grad = Tensor._make(array_module(p.grad.data).zeros_like(p.grad.data))
    else:
        p.grad.data[...] = 0
