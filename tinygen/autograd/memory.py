"""Memory view: how many bytes a graph keeps alive for its backward.

Every recorded node keeps what its backward needs (``Function.saved_arrays()``:
saved inputs, saved outputs, arrays stored on the node).  Those arrays live as
long as the graph does; the engine drops them as it runs each node's backward
unless ``retain_graph=True``.  So

    loss = model(x).sum()
    saved_tensor_bytes(loss)      # > 0: the activations backward will need
    loss.backward()
    saved_tensor_bytes(loss)      # 0: the graph was freed

An array saved by several nodes (the same input feeding two ops) is counted
once: arrays are deduplicated by identity.
"""
from collections import Counter, deque

from .function import Function


def graph_nodes(*tensors):
    """The Function nodes reachable from ``tensors``, breadth first (deterministic).

    Iterative, so a chain of 100,000 ops needs no recursion.
    """
    seen = set()
    order = []
    queue = deque()
    for t in tensors:
        node = t.grad_fn
        if node is not None and id(node) not in seen:
            seen.add(id(node))
            queue.append(node)
    while queue:
        node = queue.popleft()
        order.append(node)
        for edge in node.next_edges:
            if edge is None or not isinstance(edge[0], Function):
                continue
            child = edge[0]
            if id(child) not in seen:
                seen.add(id(child))
                queue.append(child)
    return order


def _unique_arrays(nodes):
    seen = set()
    for node in nodes:
        for array in node.saved_arrays():
            if id(array) not in seen:
                seen.add(id(array))
                yield node, array


def saved_tensor_bytes(*tensors):
    """Total bytes of the arrays saved for backward in the graph behind ``tensors``."""
    return sum(int(array.nbytes) for _, array in _unique_arrays(graph_nodes(*tensors)))


class GraphSummary:
    """Nodes of a graph grouped by op, with the bytes each op's nodes hold."""

    def __init__(self, rows, nodes, leaves):
        self.rows = rows          # [(op, count, saved_bytes)] in first-met order
        self.nodes = nodes        # number of Function nodes
        self.leaves = leaves      # number of leaf tensors that receive gradients

    @property
    def saved_bytes(self):
        return sum(row[2] for row in self.rows)

    def __str__(self):
        width = max([len("total")] + [len(op) for op, _, _ in self.rows])
        lines = [f"{'op':<{width}}  {'nodes':>5}  {'saved bytes':>11}",
                 f"{'-' * width}  {'-' * 5}  {'-' * 11}"]
        for op, count, nbytes in self.rows:
            lines.append(f"{op:<{width}}  {count:>5}  {nbytes:>11,}")
        lines.append(f"{'-' * width}  {'-' * 5}  {'-' * 11}")
        lines.append(f"{'total':<{width}}  {self.nodes:>5}  {self.saved_bytes:>11,}")
        lines.append(f"leaf tensors receiving gradients: {self.leaves}")
        return "\n".join(lines)

    __repr__ = __str__


def graph_summary(*tensors):
    """A ``GraphSummary`` of the graph behind ``tensors`` (print it for a table)."""
    nodes = graph_nodes(*tensors)
    counts = Counter(node.name for node in nodes)
    nbytes = Counter()
    for node, array in _unique_arrays(nodes):
        nbytes[node.name] += int(array.nbytes)
    order = list(dict.fromkeys(node.name for node in nodes))
    leaves = {id(edge[0]) for node in nodes for edge in node.next_edges
              if edge is not None and not isinstance(edge[0], Function)}
    leaves.update(id(t) for t in tensors if t.grad_fn is None and t.requires_grad)
    return GraphSummary([(op, counts[op], nbytes[op]) for op in order], len(nodes), len(leaves))
