"""``Function``: one differentiable op, and a node of the graph once applied.

A Function has a ``forward`` on raw arrays (numpy or cupy, through the backend)
and a ``backward`` written with tinygen ops on Tensors.  Because backward is
made of ordinary differentiable ops, running it with grad mode on builds a graph
of the gradient itself: that is all higher-order derivatives need.

    class Mul(Function):
        def forward(self, a, b):          # raw arrays in
            self.save_inputs(0, 1)        # keep the input Tensors for backward
            return a * b                  # raw array out
        def backward(self, grad):         # Tensors in, one gradient per input
            a, b = self.saved_inputs()
            return grad * b, grad * a

Broadcasting is not undone here: backward may return a gradient in the
broadcast (output) shape and the engine sums it back to the input's shape.
"""
import numpy as np

from . import tensor as _tensor  # a module reference: tensor.py imports this module too
from .grad_mode import _state as _grad_state

class Function:
    """Base class of every differentiable op (see module docstring)."""

    # The graph's bookkeeping lives in slots, the op's own saved state (self.axes,
    # self.mask, ...) in the instance __dict__: apply() then writes fixed slots rather
    # than a dict per op, and release_saved()/saved_arrays() see the op's state alone.
    # A recorded node has every slot set by apply(); an unrecorded one only the first
    # three (forward may read needs_input_grad and call save_inputs/save_outputs).
    __slots__ = ("needs_input_grad", "_save_input_idx", "_save_output_idx",
                 "next_edges", "input_meta", "output_meta", "_saved_inputs",
                 "_saved_output_data", "_saved_versions", "_output_versions", "_freed",
                 "_tensor_hooks", "_creation_stack", "__dict__")

    # --- what subclasses write ------------------------------------------------
    def forward(self, *arrays, **params):
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__} is not differentiable")

    # --- saving state for backward -------------------------------------------
    def save_inputs(self, *indices):
        """Keep the input Tensors at ``indices`` (with their graph) for backward."""
        self._save_input_idx = indices

    def save_outputs(self, *indices):
        """Keep the outputs at ``indices`` for backward.

        Only the raw array is stored; ``saved_outputs()`` rebuilds a Tensor whose
        grad_fn is this node, so no reference cycle is made and a gradient taken
        through it (double backward) flows back into this op as it should.
        """
        self._save_output_idx = indices

    def saved_inputs(self):
        self._check_not_freed()
        saved = self._saved_inputs
        if self._saved_versions:
            for t, (version, data) in zip(saved, self._saved_versions):
                if t.data is not data or (t._vc is not None and t._vc[0] != version):
                    k = next(k for k, s in enumerate(saved) if s is t)
                    raise _modified_error(self, f"input {self._save_input_idx[k]}", t, version)
        return saved

    def saved_outputs(self):
        self._check_not_freed()
        make = _tensor.Tensor._make
        outputs = []    # (a loop, not a generator: this runs in every backward that uses it)
        for (i, data), vc in zip(self._saved_output_data, self._output_versions):
            if vc[0]:
                raise _modified_error(self, f"output {i}", _SavedOutput(data, vc), 0)
            outputs.append(make(data, self, i))
        return tuple(outputs)

    def _check_not_freed(self):
        if self._freed:
            raise RuntimeError(
                f"trying to backward through {type(self).__name__} a second time, but its "
                "saved tensors were freed by the first backward; pass retain_graph=True to "
                "the first backward() or grad() call if you need to backward twice"
            )

    # --- applying --------------------------------------------------------------
    @classmethod
    def apply(cls, *inputs, **params):
        """Run forward on ``inputs`` (Tensors) and record a node when needed.

        This runs for every op (a few hundred times per training step), so it is
        written for speed: one pass over the inputs (type check, requires_grad, arrays,
        device), a second over those of a recorded node (its edges and the inputs'
        shapes), no comprehensions or generators (each is a function call), slots.
        """
        Tensor = _tensor.Tensor
        needs = []
        arrays = []
        all_numpy = True
        for t in inputs:
            if type(t) is not Tensor and not isinstance(t, Tensor):   # (a Parameter)
                raise TypeError(f"{cls.__name__} expects Tensor inputs, got {type(t).__name__}")
            needs.append(t._requires_grad)
            data = t.data
            arrays.append(data)
            # Every numpy array is on the CPU: only other arrays need a device comparison.
            if type(data) is not np.ndarray:
                all_numpy = False
        if not all_numpy:
            _check_one_device(cls, inputs)
        node = cls()
        node.needs_input_grad = needs = tuple(needs)
        node._save_input_idx = node._save_output_idx = ()

        out = node.forward(*arrays, **params)
        multiple = isinstance(out, tuple)
        # (grad mode's flag read directly: is_grad_enabled() is one more call per op)
        if not (True in needs and _grad_state.enabled):
            if multiple:
                return tuple([Tensor._make(o) for o in out])
            return Tensor._make(out)

        edges = []
        input_meta = []
        for t, data in zip(inputs, arrays):
            if not t._requires_grad:
                edges.append(None)
            elif t.grad_fn is None:
                edges.append((t, 0))
            else:
                edges.append((t.grad_fn, t._output_index))
            input_meta.append((data.shape, data.dtype))
        node.next_edges = tuple(edges)
        node.input_meta = tuple(input_meta)
        node._freed = False
        node._tensor_hooks = None
        saved_idx = node._save_input_idx
        if saved_idx:  # what saved_inputs() checks: nothing changed in place
            # (a loop: two comprehensions here cost ~1 us per node on Python 3.11)
            saved = []
            versions = []
            for i in saved_idx:
                t = inputs[i]
                saved.append(t)
                vc = t._vc
                versions.append((0 if vc is None else vc[0], t.data))
            node._saved_inputs = tuple(saved)
            node._saved_versions = versions
        else:
            node._saved_inputs = ()
            node._saved_versions = ()
        if not multiple:
            node.output_meta = ((out.shape, out.dtype),)
            if node._save_output_idx:
                node._saved_output_data = ((0, out),)
                result = Tensor._make(out, node, 0)
                # what saved_outputs() checks: still at version 0
                node._output_versions = [result._version_counter()]
            else:
                node._saved_output_data = ()
                node._output_versions = ()
                result = Tensor._make(out, node, 0)
            if _record_observers:
                for observer in _record_observers:
                    observer(node)
            return result
        node.output_meta = tuple([(o.shape, o.dtype) for o in out])
        saved_idx = node._save_output_idx
        node._saved_output_data = tuple([(i, out[i]) for i in saved_idx]) if saved_idx else ()
        if _record_observers:
            for observer in _record_observers:
                observer(node)
        results = tuple([Tensor._make(o, node, i) for i, o in enumerate(out)])
        node._output_versions = [results[i]._version_counter() for i in saved_idx]
        return results

    # --- graph bookkeeping -------------------------------------------------------
    def saved_arrays(self):
        """Every array this node keeps for backward (for the memory view)."""
        arrays = []
        for t in self._saved_inputs or ():
            arrays.append(t.data)
        for _, data in self._saved_output_data or ():
            arrays.append(data)
        for value in vars(self).values():  # the op's own state (bookkeeping is in slots)
            if hasattr(value, "nbytes") and hasattr(value, "shape"):
                arrays.append(value)
        return arrays

    def release_saved(self):
        """Drop saved state after backward (the graph is freed)."""
        self._saved_inputs = None
        self._saved_output_data = None
        self._saved_versions = ()
        self._output_versions = ()
        state = vars(self)
        for name, value in state.items():
            if type(value) is np.ndarray or (type(value) not in _PLAIN
                                             and hasattr(value, "nbytes")
                                             and hasattr(value, "shape")):
                state[name] = None
        self._freed = True

    @property
    def name(self):
        return type(self).__name__

    def __repr__(self):
        return f"<{self.name} backward>"


class _SavedOutput:
    """What the error message needs of a saved output (the node keeps only its array)."""

    def __init__(self, data, vc):
        self.data, self._vc = data, vc
        self.shape, self.dtype = tuple(data.shape), data.dtype


def _modified_error(node, which, t, version):
    """The RuntimeError for a tensor saved for backward and then changed in place."""
    if t._vc is not None and t._vc[0] != version:
        what = f"{t._vc[1] or 'an in-place op'} (version {version} when saved, {t._vc[0]} now)"
    else:
        what = "an assignment to its .data"
    return RuntimeError(
        f"{node.name} backward: its {which} (a {t.dtype} tensor of shape "
        f"{tuple(t.shape)}), saved for backward, was modified in place by {what}, so its "
        f"gradient would be computed from the new values; make the change after backward(), "
        f"on a .clone(), or under a new forward pass")


def _check_one_device(cls, inputs):
    device = inputs[0].device
    for t in inputs[1:]:
        if t.device != device:
            raise RuntimeError(
                f"{cls.__name__}: inputs are on different devices ({device} and {t.device}); "
                "move them to one device with .to(device)"
            )


# Types of an op's own state that are never arrays: release_saved() passes over them
# without asking for attributes they lack (a failed hasattr raises and catches inside).
_PLAIN = frozenset([int, float, bool, str, tuple, type(None)])

# Callables run on every newly recorded node (debugging tools plug in here).
_record_observers = []
