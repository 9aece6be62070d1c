"""tinygen.viz: the DOT text of known graphs, and rendering with and without Graphviz."""
import re
import shutil

import numpy as np
import pytest

import tinygen as tg
from tinygen.autograd.function import Function
from tinygen.testing import f64


def parse(dot):
    """{node id: first label line}, {node id: full label}, [(tail id, head id, edge label)]."""
    names, labels, edges = {}, {}, []
    for line in dot.splitlines():
        edge = re.match(r'\s*(\w+) -> (\w+)(?: \[label="([^"]*)")?', line)
        if edge:
            edges.append(edge.groups())
            continue
        node = re.match(r'\s*(\w+) \[label="([^"]*)"', line)
        if node:
            label = node.group(2).replace("\\n", "\n")
            names[node.group(1)] = label.split("\n")[0]
            labels[node.group(1)] = label
    return names, labels, edges


def named_edges(dot):
    names, _, edges = parse(dot)
    return sorted((names[a], names[b]) for a, b, _ in edges)


def test_known_expression_has_the_expected_nodes_and_edges():
    x, y = f64([1.0, 2.0, 3.0]), f64([4.0, 5.0, 6.0])
    z = (x * y + x.exp()).sum()
    dot = tg.viz.to_dot(z, params={"x": x, "y": y})
    assert dot.startswith("digraph tinygen {") and dot.rstrip().endswith("}")
    names, labels, edges = parse(dot)
    assert sorted(names.values()) == sorted(["Sum", "Add", "Mul", "Exp", "x", "y", "output"])
    assert named_edges(dot) == sorted([
        ("x", "Mul"), ("y", "Mul"), ("x", "Exp"),      # x feeds two ops: one node, two edges
        ("Mul", "Add"), ("Exp", "Add"), ("Add", "Sum"), ("Sum", "output"),
    ])
    by_name = {names[k]: v for k, v in labels.items()}
    assert by_name["x"] == "x\n(3,) float64\nrequires_grad"
    assert by_name["Mul"] == "Mul\n-> (3,) float64"
    assert by_name["Sum"] == "Sum\n-> () float64"
    assert by_name["output"] == "output\n() float64"
    # edges carry the shape and dtype of the tensor passing along them
    edge_labels = {(names[a], names[b]): label for a, b, label in edges}
    assert edge_labels[("Mul", "Add")] == "(3,) float64"


def test_inputs_that_do_not_require_grad_are_dashed_constants():
    x = f64([1.0, 2.0])
    c = f64([3.0, 4.0], requires_grad=False)
    dot = tg.viz.to_dot((x * c).sum(), params={"x": x})
    names, labels, edges = parse(dot)
    const = [k for k, v in names.items() if v == "constant"]
    assert len(const) == 1
    assert "requires_grad" not in labels[const[0]]
    assert re.search(rf"{const[0]} -> \w+ \[.*style=dashed", dot)
    assert named_edges(dot) == sorted([("x", "Mul"), ("constant", "Mul"), ("Mul", "Sum"),
                                       ("Sum", "output")])


def test_unnamed_leaves_shared_parameters_and_unnamed_output():
    w = tg.randn(2, 2, requires_grad=True)
    out = w @ w
    names, _, edges = parse(tg.viz.to_dot(out))
    assert sorted(names.values()) == ["MatMul", "leaf", "output"]
    assert sum(1 for a, b, _ in edges if names[a] == "leaf") == 2


def test_multiple_outputs_are_labelled_by_index():
    class Halves(Function):
        def forward(self, a):
            n = a.shape[0] // 2
            return a[:n].copy(), a[n:].copy()

        def backward(self, g1, g2):
            return tg.concatenate([g1, g2])

    x = f64([1.0, 2.0, 3.0, 4.0])
    first, second = Halves.apply(x)
    dot = tg.viz.to_dot(first * second)
    assert 'label="out 0: (2,) float64"' in dot
    assert 'label="out 1: (2,) float64"' in dot


def test_several_roots_a_leaf_root_and_show_saved():
    x = f64([1.0, 2.0])
    a, b = x.exp(), x * x
    dot = tg.viz.to_dot([a, b, x], params={"x": x}, show_saved=True)
    names, labels, _ = parse(dot)
    assert sorted(n for n in names.values()) == ["Exp", "Mul", "output", "output", "x", "x"]
    saved = {names[k]: v.split("\n")[-1] for k, v in labels.items() if names[k] in ("Exp", "Mul")}
    assert saved == {"Exp": "saved: 16 B", "Mul": "saved: 16 B"}


def test_output_is_deterministic_and_labels_are_escaped():
    x = f64([1.0])
    y = (x.tanh() * 2).sum()
    assert tg.viz.to_dot(y, params={'say "hi"\\': x}) == tg.viz.to_dot(y, params={'say "hi"\\': x})
    assert 'label="say \\"hi\\"\\\\\\n(1,) float64' in tg.viz.to_dot(y, params={'say "hi"\\': x})


def test_render_dot_text(tmp_path):
    x = f64([1.0])
    path = tg.viz.save_graph((x * x).sum(), tmp_path / "g.dot")
    assert open(path).read() == tg.viz.to_dot((x * x).sum())


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG")])
def test_render_with_graphviz(tmp_path, suffix, magic):
    x = f64([1.0, 2.0])
    path = tmp_path / f"g{suffix}"
    tg.viz.save_graph((x * x).sum(), path, params={"x": x})
    assert path.read_bytes().startswith(magic)


def test_render_without_graphviz_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(tg.viz.GraphvizNotFoundError, match=r"Graphviz 'dot'.*apt-get install graphviz"):
        tg.viz.render("digraph g {}", tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()
    tg.viz.render("digraph g {}", tmp_path / "g.dot")  # text needs no Graphviz


def test_render_rejects_unknown_suffix_and_reports_dot_errors(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        tg.viz.render("digraph g {}", tmp_path / "g.txt")
    if shutil.which("dot") is not None:
        with pytest.raises(RuntimeError, match="dot -Tsvg failed"):
            tg.viz.render("this is not dot", tmp_path / "bad.svg")
