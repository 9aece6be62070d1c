"""``Optimizer``: parameter groups, per-parameter state, and (de)serialising both.

An optimizer holds ``param_groups``, a list of dicts: ``{'params': [...], 'lr':
..., <other options>}``.  Options missing from a group are taken from the
optimizer's ``defaults``.  ``state[p]`` is a dict of per-parameter buffers
(momentum, moment estimates, step counts).

Updates work on the raw arrays (``p.data``, ``p.grad.data``) in place, through
``xp = array_module(p.data)`` so the same code serves numpy and cupy.  They do
not go through autograd at all, so nothing is recorded and no ``no_grad`` is
needed; hyperparameters are turned into Python floats first, which numpy treats
as "weak" scalars, so float32 parameters stay float32.

``state_dict()`` follows PyTorch: parameters are replaced by their position in
the optimizer (counted across groups), so a state_dict can be loaded into a new
optimizer built over a new copy of the model.
"""
from collections.abc import Mapping
import copy
import math
import numbers

import numpy as np

from ..autograd.tensor import Tensor
from ..autograd.grad_mode import enable_grad
from ..backend import array_module, device_of, to_device, to_numpy


class _RequiredParameter:
    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()

# Types of state values that are never arrays (step counts): _gradients passes over them
# without asking for a shape they lack (a failed hasattr raises and catches inside).
_SCALARS = frozenset([int, float, bool])


def check_number(name, value, low=None, high=None, low_open=False, high_open=True):
    """Validate an option: a finite real number in [low, high) by default; messages name
    it.  (NaN passes every comparison with a bound, so it is refused first: lr=nan would
    turn every parameter into NaN at the first step.)"""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")


class Optimizer:
    """Base class: subclasses set ``defaults``, ``_check_options`` and ``_update_group``."""

    # State entries that are counters, not per-element arrays.
    _scalar_state = ("step",)

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self._check_options(self.defaults)
        self.state = {}
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                f"dicts, but got a single {type(params).__name__}; wrap it in a list"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError("params must be an ordered iterable (a list), not a set: "
                            "the order fixes the indices in state_dict")
        param_groups = list(params)
        if not param_groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    # --- what subclasses write ------------------------------------------------------
    def _check_options(self, options):
        """Raise on invalid hyperparameters (``options`` is a defaults or group dict)."""

    def _update_group(self, group):
        raise NotImplementedError(f"{type(self).__name__} must define _update_group or step")

    def _gradients(self, group):
        """``(param, xp, gradient array)`` for each of ``group``'s parameters that has
        a gradient; the gradient is negated when the group maximizes.

        The parameter's state follows it to its device: after ``model.to('cuda')``
        the moment estimates built on the CPU are moved on the next step.
        """
        what = f"{type(self).__name__}.step"
        for p in group["params"]:
            if p.grad is None:
                continue
            # updated in place: a graph that saved p before this step cannot backward
            p._bump_version(what)
            # numpy arrays are all on the CPU: only other arrays need their devices
            # compared (a few device_of calls per parameter and step otherwise)
            on_cpu = type(p.data) is np.ndarray
            device = "cpu" if on_cpu else p.device
            if not (on_cpu and type(p.grad.data) is np.ndarray) and p.grad.device != device:
                raise RuntimeError(
                    f"{type(self).__name__}.step: a parameter of shape {p.shape} is on {device} "
                    f"but its gradient is on {p.grad.device}"
                )
            state = self.state.get(p)
            if state:
                for name, value in state.items():
                    if on_cpu and type(value) is np.ndarray or type(value) in _SCALARS:
                        continue
                    if hasattr(value, "shape") and device_of(value) != device:
                        state[name] = to_device(value, device)
            g = p.grad.data
            yield p, array_module(p.data), (-g if group["maximize"] else g)

    # --- groups -------------------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a group ``{'params': [...], <options>}``; missing options come from defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        if "params" not in group:
            raise ValueError("param_group must have a 'params' entry")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("a param group's 'params' must be an ordered iterable (a list), not a set")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list (in a param group)")
        seen = set()
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor (one produced by an op); "
                                 "optimize the leaf parameters it was computed from")
            if id(p) in seen:
                raise ValueError("a parameter group contains the same parameter twice")
            seen.add(id(p))
        existing = {id(q) for g in self.param_groups for q in g["params"]}
        if seen & existing:
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            group.setdefault(name, default)
        self._check_options(group)
        self.param_groups.append(group)

    # --- stepping ----------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Reset every parameter's gradient to None (default) or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                elif p.grad.grad_fn is not None:  # a grad with a graph (create_graph=True)
                    p.grad = Tensor._make(array_module(p.grad.data).zeros_like(p.grad.data))
                else:
                    p.grad.data[...] = 0

    def register_step_pre_hook(self, hook):
        """``hook(optimizer, args, kwargs)`` runs at the start of every ``step()`` (after a
        closure's backward), e.g. to average gradients over data-parallel ranks; returns a
        handle whose ``remove()`` unregisters it (PyTorch's method of the same name)."""
        from ..autograd.hooks import RemovableHandle

        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        store = self.__dict__.setdefault("_step_pre_hooks", {})
        handle = RemovableHandle(store)
        store[handle.id] = hook
        return handle

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()``'s loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for hook in list(self.__dict__.get("_step_pre_hooks", {}).values()):
            hook(self, (closure,), {})
        for group in self.param_groups:
            self._update_group(group)
        return loss

    # --- state_dict ----------------------------------------------------------------------
    def state_dict(self):
        """``{'state': {index: {name: array or number}}, 'param_groups': [...]}``.

        Arrays are numpy copies (fetched from the GPU when needed); parameters
        are named by their index across all groups, in order.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {
                        k: (to_numpy(v).copy() if hasattr(v, "shape") else v)
                        for k, v in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore the groups' options and the per-parameter state from ``state_dict``.

        Checks first (number of groups, parameters per group, state shapes
        against the parameters), then replaces; a failed load changes nothing.
        Accepts what ``state_dict()`` returns and also its round trip through an
        ``.npz`` file (string keys, 0-d arrays for numbers, lists for tuples).
        """
        if not isinstance(state_dict, Mapping) or "state" not in state_dict \
                or "param_groups" not in state_dict:
            raise ValueError("optimizer state_dict must be a dict with 'state' and 'param_groups'")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter group(s), but the optimizer "
                f"has {len(self.param_groups)}"
            )
        by_index = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if "params" not in saved:
                raise ValueError(f"parameter group {i} of the loaded state dict has no 'params'")
            saved_params = [int(_scalar(k)) for k in _as_list(saved["params"])]
            if len(saved_params) != len(group["params"]):
                raise ValueError(
                    f"loaded state dict's parameter group {i} has {len(saved_params)} parameter(s), "
                    f"but the optimizer's group {i} has {len(group['params'])}"
                )
            for k, p in zip(saved_params, group["params"]):
                by_index[k] = p

        new_state = {}
        for key, entries in dict(state_dict["state"]).items():
            k = int(key)
            if k not in by_index:
                raise ValueError(f"loaded state dict has state for parameter {k}, which is in no "
                                 "parameter group")
            p = by_index[k]
            xp = array_module(p.data)
            restored = {}
            for name, value in dict(entries).items():
                # An array of the parameter's shape, or a number (a 0-d array after
                # an .npz round trip, unless the parameter itself is 0-d).
                is_array = hasattr(value, "shape") and (len(value.shape) > 0 or p.ndim == 0)
                if name in self._scalar_state or not is_array:
                    restored[name] = _number(value)
                else:
                    if tuple(value.shape) != p.shape:
                        raise ValueError(
                            f"state {name!r} of parameter {k} has shape {tuple(value.shape)}, "
                            f"but the parameter has shape {p.shape}"
                        )
                    restored[name] = xp.asarray(to_device(value, p.device)).astype(p.dtype, copy=True)
            new_state[p] = restored

        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            options = {}
            for name, value in saved.items():
                if name == "params":
                    continue
                current = group.get(name)
                value = _scalar(value)
                if isinstance(current, tuple) and isinstance(value, (list, tuple, np.ndarray)):
                    value = tuple(_scalar(v) for v in value)
                options[name] = value
            merged = dict(group)
            merged.update(options)
            self._check_options(merged)
            new_groups.append(merged)
        self.param_groups = new_groups
        self.state = new_state

    # --- repr ------------------------------------------------------------------------------
    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _scalar(value):
    """A 0-d array (what an .npz gives back for a number) as a Python scalar."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    return value


def _number(value):
    value = _scalar(value)
    if hasattr(value, "shape"):
        value = to_numpy(value).item()
    return value


def _as_list(value):
    if isinstance(value, np.ndarray):
        return value.reshape(-1).tolist()
    return list(value)
