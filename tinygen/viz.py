"""Draw the computation graph behind a tensor, as Graphviz DOT text (or SVG/PNG).

    import tinygen as tg
    x = tg.randn(3, requires_grad=True)
    y = (x * x + x.exp()).sum()
    print(tg.viz.to_dot(y, params={"x": x}))       # DOT text
    tg.viz.save_graph(y, "graph.svg", params={"x": x})  # needs Graphviz's `dot`

Data flows top to bottom: leaf tensors (blue: they require grad and receive
``.grad``), constants (grey: inputs that do not require grad, so no gradient
flows into them), one box per recorded op (its Function's name and output
shape/dtype), and the output (green).  Edges carry the shape and dtype of the
tensor passing along them.  Backward runs the same edges bottom to top.

Rendering to SVG/PNG/PDF calls the ``dot`` program (Debian/Ubuntu: the
``graphviz`` package); without it ``render`` raises ``GraphvizNotFoundError``
saying so, and ``.dot`` files can still be written.
"""
import os
import shutil
import subprocess

from .autograd.function import Function
from .autograd.memory import graph_nodes

__all__ = ["to_dot", "render", "save_graph", "GraphvizNotFoundError"]

_LEAF_STYLE = 'shape=ellipse, style=filled, fillcolor="#cfe2ff"'
_CONST_STYLE = 'shape=ellipse, style="filled,dashed", fillcolor="#eeeeee", fontcolor="#555555"'
_OP_STYLE = 'shape=box, style="rounded,filled", fillcolor="#fff3cd"'
_OUT_STYLE = 'shape=ellipse, style=filled, fillcolor="#d1e7dd"'


def _meta_text(shape, dtype):
    return f"{tuple(shape)} {dtype}"


def _quote(text):
    """A DOT string literal; ``\\n`` in ``text`` becomes a line break."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_dot(tensors, params=None, show_saved=False, name="tinygen"):
    """The graph behind ``tensors`` (a Tensor or a sequence of them) as DOT text.

    ``params``: ``{name: tensor}`` to label leaves (``dict(model.named_parameters())``);
    ``show_saved``: add to each op the bytes it keeps for backward.
    Node names (op0, leaf0, ...) follow a breadth-first walk from the output,
    so the same computation gives the same text.
    """
    from .autograd.tensor import Tensor

    roots = (tensors,) if isinstance(tensors, Tensor) else tuple(tensors)
    names = {id(t): n for n, t in (params or {}).items()}
    nodes = graph_nodes(*roots)
    op_ids = {id(node): f"op{i}" for i, node in enumerate(nodes)}
    leaf_ids = {}
    lines = [f"digraph {name} {{",
             '  graph [rankdir=TB, fontname="Helvetica"];',
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9];']
    edges = []

    def leaf_id(t):
        if id(t) not in leaf_ids:
            ident = leaf_ids[id(t)] = f"leaf{len(leaf_ids)}"
            title = names.get(id(t), "leaf")
            label = f"{title}\n{_meta_text(t.shape, t.dtype)}\nrequires_grad"
            lines.append(f"  {ident} [label={_quote(label)}, {_LEAF_STYLE}];")
        return leaf_ids[id(t)]

    constants = 0
    for node in nodes:
        ident = op_ids[id(node)]
        outs = ", ".join(_meta_text(s, d) for s, d in node.output_meta)
        label = f"{node.name}\n-> {outs}"
        if show_saved:
            unique = {id(a): a for a in node.saved_arrays()}  # x * x saves x once
            nbytes = sum(int(a.nbytes) for a in unique.values())
            label += f"\nsaved: {nbytes:,} B"
        lines.append(f"  {ident} [label={_quote(label)}, {_OP_STYLE}];")
        for position, (edge, (shape, dtype)) in enumerate(zip(node.next_edges, node.input_meta)):
            text = _meta_text(shape, dtype)
            if edge is None:
                const = f"const{constants}"
                constants += 1
                lines.append(f"  {const} [label={_quote('constant' + chr(10) + text)}, "
                             f"{_CONST_STYLE}];")
                edges.append(f"  {const} -> {ident} [label={_quote(text)}, style=dashed];")
                continue
            source, index = edge
            if isinstance(source, Function):
                tail = op_ids[id(source)]
                if len(source.output_meta) > 1:
                    text = f"out {index}: {text}"
            else:
                tail = leaf_id(source)
            edges.append(f"  {tail} -> {ident} [label={_quote(text)}];")

    for i, root in enumerate(roots):
        out = f"out{i}"
        title = names.get(id(root), "output")
        label = f"{title}\n{_meta_text(root.shape, root.dtype)}"
        lines.append(f"  {out} [label={_quote(label)}, {_OUT_STYLE}];")
        if root.grad_fn is not None:
            edges.append(f"  {op_ids[id(root.grad_fn)]} -> {out};")
        elif root.requires_grad:
            edges.append(f"  {leaf_id(root)} -> {out};")
    return "\n".join(lines + edges + ["}"]) + "\n"


class GraphvizNotFoundError(RuntimeError):
    """Rendering needs Graphviz's ``dot`` program, which is not on PATH."""


_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


def render(dot_source, path, format=None):
    """Write ``dot_source`` to ``path``: as text for ``.dot``/``.gv``, otherwise
    rendered by Graphviz's ``dot`` in ``format`` (from the suffix: svg, png, pdf)."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if format is None:
        if suffix in (".dot", ".gv"):
            format = "dot"
        elif suffix in _FORMATS:
            format = _FORMATS[suffix]
        else:
            raise ValueError(f"cannot tell the format of {path!r} from its suffix; use .dot, "
                             ".gv, .svg, .png or .pdf, or pass format=")
    if format == "dot":
        with open(path, "w", encoding="utf-8") as f:
            f.write(dot_source)
        return path
    program = shutil.which("dot")
    if program is None:
        raise GraphvizNotFoundError(
            f"writing {format.upper()} needs the Graphviz 'dot' program, which was not found "
            "on PATH. Install Graphviz (Debian/Ubuntu: sudo apt-get install graphviz; "
            "macOS: brew install graphviz), or write a .dot file instead and render it "
            "elsewhere (dot -Tsvg graph.dot -o graph.svg)."
        )
    result = subprocess.run([program, f"-T{format}", "-o", path], input=dot_source.encode(),
                            capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"dot -T{format} failed (exit {result.returncode}): "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return path


def save_graph(tensors, path, format=None, **to_dot_options):
    """``render(to_dot(tensors, ...), path)``: the graph as a .dot, .svg, .png or .pdf file."""
    return render(to_dot(tensors, **to_dot_options), path, format)
