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
from .grad_mode import is_grad_enabled

# Attribute names that belong to the graph's bookkeeping, not to saved state.
_BOOKKEEPING = frozenset(
    {"next_edges", "input_meta", "output_meta", "needs_input_grad", "_recording",
     "_inputs", "_save_input_idx", "_save_output_idx", "_freed", "_saved_output_data",
     "_saved_inputs", "_creation_stack", "_tensor_hooks", "_saved_versions",
     "_output_versions"}
)


class Function:
    """Base class of every differentiable op (see module docstring)."""

    # Filled by apply() when the node is recorded.
    next_edges = ()
    input_meta = ()
    output_meta = ()
    _freed = False
    _saved_inputs = None
    _saved_output_data = None
    _saved_versions = ()
    _output_versions = ()
    _tensor_hooks = None

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
        for (i, data), vc in zip(self._saved_output_data, self._output_versions):
            if vc[0]:
                raise _modified_error(self, f"output {i}", _SavedOutput(data, vc), 0)
        return tuple(_tensor.Tensor._make(data, self, i) for i, data in self._saved_output_data)

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
        """Run forward on ``inputs`` (Tensors) and record a node when needed."""
        Tensor = _tensor.Tensor
        node = cls()
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"{cls.__name__} expects Tensor inputs, got {type(t).__name__}")
        # Every numpy array is on the CPU: only other arrays need a device comparison.
        if any(type(t.data) is not np.ndarray for t in inputs):
            _check_one_device(cls, inputs)
        needs = tuple([t._requires_grad for t in inputs])
        recording = any(needs) and is_grad_enabled()
        node.needs_input_grad = needs
        node._save_input_idx = ()
        node._save_output_idx = ()

        out = node.forward(*[t.data for t in inputs], **params)
        multiple = isinstance(out, tuple)
        outs = out if multiple else (out,)
        if not recording:
            results = tuple(Tensor._make(o) for o in outs)
            return results if multiple else results[0]

        node.next_edges = tuple(t._edge() if need else None for t, need in zip(inputs, needs))
        node.input_meta = tuple((t.shape, t.dtype) for t in inputs)
        node.output_meta = tuple((o.shape, o.dtype) for o in outs)
        node._saved_inputs = tuple(inputs[i] for i in node._save_input_idx)
        node._saved_output_data = tuple((i, outs[i]) for i in node._save_output_idx)
        if node._save_input_idx:  # what saved_inputs() checks: nothing changed in place
            node._saved_versions = [(0 if t._vc is None else t._vc[0], t.data)
                                    for t in node._saved_inputs]
        if _record_observers:
            for observer in _record_observers:
                observer(node)
        results = tuple(Tensor._make(o, node, i) for i, o in enumerate(outs))
        if node._save_output_idx:  # what saved_outputs() checks: still at version 0
            versions = node._output_versions = []
            for i in node._save_output_idx:
                versions.append(results[i]._version_counter())
        return results if multiple else results[0]

    # --- graph bookkeeping -------------------------------------------------------
    def saved_arrays(self):
        """Every array this node keeps for backward (for the memory view)."""
        arrays = []
        for t in self._saved_inputs or ():
            arrays.append(t.data)
        for _, data in self._saved_output_data or ():
            arrays.append(data)
        for name, value in vars(self).items():
            if name not in _BOOKKEEPING and hasattr(value, "nbytes") and hasattr(value, "shape"):
                arrays.append(value)
        return arrays

    def release_saved(self):
        """Drop saved state after backward (the graph is freed)."""
        self._saved_inputs = None
        self._saved_output_data = None
        self._saved_versions = ()
        self._output_versions = ()
        for name, value in list(vars(self).items()):
            if name not in _BOOKKEEPING and hasattr(value, "nbytes") and hasattr(value, "shape"):
                setattr(self, name, None)
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


# Callables run on every newly recorded node (debugging tools plug in here).
_record_observers = []
