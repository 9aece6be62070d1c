"""The backward engine: reverse-mode accumulation over the recorded graph.

The graph's nodes are Function instances (interior) and leaf Tensors.  An edge
``(node, index)`` names the ``index``-th output of ``node`` (0 for a leaf).

Algorithm, iterative so that a chain of 100,000 ops needs no recursion:
  1. walk the graph from the roots and count, for every node, how many edges
     point at it from reachable nodes (its consumers);
  2. run nodes in topological order (Kahn): a node runs once every consumer has
     sent its gradient, so each node's incoming gradients are complete;
  3. each node's backward returns one gradient per input; the engine sums a
     gradient back to the input's shape (undoing broadcasting, in this one
     place) and adds it into the input node's buffer.
With ``create_graph`` the backward functions run with grad mode on, so the
gradients they return are Tensors with a graph of their own.
"""
from collections import deque
import sys
import time

import numpy as np

from . import tensor as _tensor  # a module reference (tensor.py is still loading when this runs)
from .grad_mode import no_grad, enable_grad
from ..backend.kernels import kernels
from .function import Function
from .hooks import apply_hooks
from .primitives import clone, sum_to, sum_to_array


# Callables ``observer(node, grads_out, grads_in, seconds)`` run after each node's
# backward (trace_backward and detect_anomaly plug in here); empty costs one check.
_backward_observers = []


def _is_leaf_node(node):
    return not isinstance(node, Function)


class _Targets:
    """The tensors whose gradients ``grad()`` returns, keyed by their edge."""

    def __init__(self, inputs):
        self.edges = [t._edge() for t in inputs]
        self.by_node = {}
        for position, (node, index) in enumerate(self.edges):
            self.by_node.setdefault(id(node), []).append((index, position))
        self.results = [None] * len(inputs)

    def capture(self, node, buffer):
        for index, position in self.by_node.get(id(node), ()):
            self.results[position] = buffer[index]


def _collect(root_nodes):
    """Reachable nodes and their consumer counts, without recursion."""
    dependencies = {}
    nodes = {}
    stack = []
    for node in root_nodes:
        if id(node) not in nodes:
            nodes[id(node)] = node
            dependencies[id(node)] = 0
            stack.append(node)
    while stack:
        node = stack.pop()
        if _is_leaf_node(node):
            continue
        for edge in node.next_edges:
            if edge is None:
                continue
            child = edge[0]
            key = id(child)
            if key in nodes:
                dependencies[key] += 1
            else:
                nodes[key] = child
                dependencies[key] = 1
                stack.append(child)
    return nodes, dependencies


def _needed(nodes, targets):
    """Ids of nodes from which some target is reachable (others can be skipped)."""
    target_ids = {id(edge[0]) for edge in targets.edges}
    # Reverse adjacency, then a backward flood from the targets.
    parents = {}
    for key, node in nodes.items():
        if _is_leaf_node(node):
            continue
        for edge in node.next_edges:
            if edge is not None:
                parents.setdefault(id(edge[0]), []).append(key)
    needed = set()
    stack = [key for key in target_ids if key in nodes]
    while stack:
        key = stack.pop()
        if key in needed:
            continue
        needed.add(key)
        stack.extend(parents.get(key, ()))
    return needed


def _sum_to_shape(grad, shape, node, create_graph):
    """Undo broadcasting: sum ``grad`` back to ``shape``.  With create_graph by the
    differentiable ``sum_to`` (a SumTo node), else the same sum on the raw array (as
    ``_add`` sums arrays): no graph is built then, and the op's apply costs a few
    microseconds per call (every bias gradient takes this path on every step)."""
    try:
        if create_graph:
            return sum_to(grad, shape)
        return _tensor.Tensor._make(sum_to_array(grad.data, shape))
    except ValueError as exc:
        raise RuntimeError(
            f"{node.name}.backward returned a gradient of shape {grad.shape} for an input of "
            f"shape {shape}, which is not a broadcast of it"
        ) from exc


def _add(previous, grad, summed, slot):
    """``previous + grad``, the gradients of one output summed.

    With create_graph (``summed`` None) this is the differentiable op, so the sum has a
    graph.  Otherwise only arrays are summed, and into a buffer the engine made itself
    when it can: the first sum at ``slot`` allocates a fresh array (``previous`` may be
    a tensor a backward returned, which another node or the user may also hold: Add's
    backward passes one gradient to both inputs), and ``summed[slot]`` records it; later
    gradients for that slot are added into it in place, since nothing but the buffer
    refers to it until its node runs (the node runs once, after its last gradient came,
    so the buffer never grows again once something else may see it).  A graph with
    fan-out (a parameter used many times, a residual) then allocates one array per
    output rather than one per incoming gradient, and skips the op layer's checks,
    which the engine has already made (one dtype, the input's shape: _backward_node).
    """
    if summed is None:
        return previous + grad
    data = grad.data
    sums = kernels("sums", data)    # (large arrays: shared out among threads on the CPU)
    if summed.get(slot) == id(previous) and previous.data.shape == data.shape:
        sums.add_into(previous.data, data)
        return previous
    total = _tensor.Tensor._make(sums.add(previous.data, data))
    # Its id, not the tensor: a reference kept here would make _handover copy a leaf's
    # summed gradient.  The id stays the buffer's: the buffer lives until its node runs,
    # and nothing is sent to the slot after that.
    summed[slot] = id(total)
    return total


def _zeros_for(meta, like):
    from .tensor import Tensor
    from ..backend import array_module

    shape, dtype = meta
    xp = array_module(like.data)
    return Tensor._make(xp.zeros(shape, dtype=dtype))


def run_backward(roots, root_grads, *, retain_graph, create_graph, inputs=None,
                 allow_unused=False):
    """Backpropagate ``root_grads`` from ``roots``.

    With ``inputs`` (``grad()``), returns their gradients and leaves ``.grad``
    untouched; otherwise (``backward()``) accumulates into every reachable
    leaf's ``.grad``.
    """
    targets = _Targets(inputs) if inputs is not None else None
    root_nodes = [t._edge()[0] for t in roots]
    nodes, dependencies = _collect(root_nodes)
    needed = _needed(nodes, targets) if targets is not None else None

    buffers = {}
    summed = {} if not create_graph else None

    def send(node, index, grad):
        key = id(node)
        if not isinstance(node, Function):  # a leaf
            previous = buffers.get(key)
            buffers[key] = grad if previous is None else _add(previous, grad, summed, key)
            return
        buffer = buffers.get(key)
        if buffer is None:
            buffer = buffers[key] = [None] * len(node.output_meta)
        previous = buffer[index]
        buffer[index] = grad if previous is None else _add(previous, grad, summed, (key, index))

    grad_mode = enable_grad if create_graph else no_grad
    with grad_mode():
        for root, grad in zip(roots, root_grads):
            node, index = root._edge()
            send(node, index, grad)
        _execute(root_nodes, dependencies, buffers, send, targets, needed,
                 retain_graph, create_graph)

    if targets is None:
        return None
    results = targets.results
    for position, (grad, tensor) in enumerate(zip(results, inputs)):
        if grad is None:
            if not allow_unused:
                raise RuntimeError(
                    f"input {position} (shape {tensor.shape}) was not used to compute the "
                    "outputs; pass allow_unused=True to get None for it"
                )
        elif not create_graph:
            results[position] = grad.detach()
    return tuple(results)


def _execute(root_nodes, dependencies, buffers, send, targets, needed, retain_graph,
             create_graph):
    """Kahn's algorithm over the collected graph (runs under the chosen grad mode)."""
    ready = deque({id(node): node for node in root_nodes if dependencies[id(node)] == 0}.values())
    while ready:
        node = ready.popleft()
        key = id(node)
        buffer = buffers.pop(key, None)

        if not isinstance(node, Function):  # a leaf
            if buffer is not None and node._hooks:
                buffer = apply_hooks(node._hooks, buffer)
            if targets is not None:
                if buffer is not None:
                    targets.capture(node, [buffer])
            elif buffer is not None:
                _accumulate_leaf(node, buffer, create_graph)
            continue

        if buffer is not None and node._tensor_hooks:
            for index, store in node._tensor_hooks.items():
                if buffer[index] is not None and store:
                    buffer[index] = apply_hooks(store, buffer[index])
        if targets is not None and buffer is not None:
            targets.capture(node, buffer)
        run = buffer is not None and (needed is None or key in needed)
        if run:
            _backward_node(node, buffer, send, needed, create_graph)
            if not retain_graph:
                node.release_saved()

        for edge in node.next_edges:
            if edge is not None:
                child_key = id(edge[0])
                left = dependencies[child_key] - 1
                dependencies[child_key] = left
                if not left:
                    ready.append(edge[0])


def _backward_node(node, buffer, send, needed, create_graph):
    """Run one node's backward and send each input's gradient down its edge."""
    if node._freed:
        node._check_not_freed()
    if len(buffer) == 1:  # one output, and the engine runs a node only with a gradient
        grads_out = buffer
    else:
        present = next(g for g in buffer if g is not None)
        grads_out = [g if g is not None else _zeros_for(meta, present)
                     for g, meta in zip(buffer, node.output_meta)]
    needs = node.needs_input_grad
    # grad() asking for some inputs only: an input from which no target is reachable
    # gets no gradient, so the node's backward is told not to compute it (a conv in a
    # gradient penalty, whose weights are no target, skips its weight gradient) --
    # for this call only: with retain_graph a later one may want it.
    wanted = needs if needed is None else tuple(
        [n and edge is not None and id(edge[0]) in needed
         for n, edge in zip(needs, node.next_edges)])
    if wanted == needs:
        grads_in = _run_backward(node, grads_out)
    else:
        node.needs_input_grad = wanted
        try:
            grads_in = _run_backward(node, grads_out)
        finally:
            node.needs_input_grad = needs
    if not isinstance(grads_in, tuple):
        grads_in = (grads_in,)
    if len(grads_in) != len(node.next_edges):
        raise RuntimeError(
            f"{node.name}.backward returned {len(grads_in)} gradients for "
            f"{len(node.next_edges)} inputs"
        )
    for edge, grad, (shape, dtype) in zip(node.next_edges, grads_in, node.input_meta):
        if edge is None or grad is None:
            continue
        if needed is not None and id(edge[0]) not in needed:
            continue
        if grad.data.shape != shape:
            grad = _sum_to_shape(grad, shape, node, create_graph)
        if grad.data.dtype != dtype:
            raise RuntimeError(
                f"{node.name}.backward returned a {grad.dtype} gradient for a {dtype} input"
            )
        send(edge[0], edge[1], grad)


def _run_backward(node, grads_out):
    if _backward_observers:
        return _observed_backward(node, grads_out)
    return node.backward(*grads_out)


def _observed_backward(node, grads_out):
    """``node.backward``, timed and shown to every backward observer."""
    start = time.perf_counter()
    grads_in = node.backward(*grads_out)
    seconds = time.perf_counter() - start
    if not isinstance(grads_in, tuple):
        grads_in = (grads_in,)
    for observer in list(_backward_observers):
        observer(node, tuple(grads_out), grads_in, seconds)
    return grads_in


def _accumulate_leaf(leaf, grad, create_graph):
    # (no import here: a function-level import costs microseconds on every leaf)
    Tensor = _tensor.Tensor
    if not create_graph:
        if leaf.grad is None:
            # The gradient's own array when nothing else can see it (see _handover), else a
            # fresh copy: the same gradient object may reach several leaves (add's backward
            # passes one tensor to both inputs), and a user who scales one leaf's .grad in
            # place must not change another's.
            data = grad.data if _handover(grad) else grad.data.copy()
        else:
            data = kernels("sums", grad.data).add(leaf.grad.data, grad.data)
        leaf.grad = Tensor._make(data)
    else:
        # A clone made with a differentiable op: a fresh array, with the graph kept.
        leaf.grad = clone(grad) if leaf.grad is None else leaf.grad + grad


# --- handing a gradient's array over to .grad without a copy ------------------------------
# A leaf's gradient usually arrives in a fresh array that only the engine refers to (a
# GEMM's or a kernel's output): copying it into .grad costs a pass over memory per
# parameter and step (and, for a transposed view, a slow strided one).  Whether anything
# else refers to it is what CPython's reference counts say: the gradient Tensor must be
# referred to by the engine alone, its array by that Tensor alone, and a view's base
# (a reshape of a fresh array) by the view alone.  The counts the engine itself holds
# are measured once, on a fresh tensor passed down the same call path
# (_execute -> _accumulate_leaf -> _handover), so that any reference from elsewhere (a
# user's variable, another tensor sharing the array, a hook that kept it) shows as one
# more and the array is copied as before.

def _handover_counts(grad):
    """(references to grad, to its array, to each base down the view chain)."""
    data = grad.data
    counts = [sys.getrefcount(grad), sys.getrefcount(data)]
    base = data.base
    while base is not None:
        counts.append(sys.getrefcount(base))
        base = base.base if isinstance(base, np.ndarray) else None
    return counts


def _handover(grad):
    """Whether ``grad``'s array may become a leaf's .grad as it is (see above)."""
    if not _HANDOVER_COUNTS:
        _HANDOVER_COUNTS.extend(_calibrate_handover())
    expected = _HANDOVER_COUNTS
    data = grad.data
    if (type(data) is not np.ndarray or not data.flags.c_contiguous
            or not data.flags.writeable or expected[0] is None):
        return False
    base = data.base
    while base is not None:  # a view (of a view...) of one fresh array, all of it
        if type(base) is not np.ndarray or base.nbytes != data.nbytes:
            return False
        base = base.base
    del data, base  # not to be counted below
    counts = _handover_counts(grad)
    return (counts[0] == expected[0] and counts[1] == expected[1]
            and all(c == expected[2] for c in counts[2:]))


def _calibrate_handover():
    """The counts of a gradient only the engine holds, on the call path it takes."""
    def accumulate(leaf, grad, create_graph):   # stands for _accumulate_leaf's frame
        return probe(grad)

    def probe(grad):                            # stands for _handover's
        return _handover_counts(grad)

    from .tensor import Tensor

    fresh = np.empty(4)
    buffer = Tensor._make(fresh.reshape(2, 2))  # stands for _execute's `buffer`
    del fresh
    if not hasattr(sys, "getrefcount"):  # not CPython: always copy
        return [None]
    counts = accumulate(None, buffer, False)
    return counts if len(counts) == 3 else [None]


# Filled on first use (Tensor is not importable yet when this module loads).
_HANDOVER_COUNTS = []
