"""The memory view: bytes held by saved tensors, before and after backward."""
import numpy as np

import tinygen as tg
from tinygen import nn
from tinygen.autograd.memory import graph_nodes, graph_summary, saved_tensor_bytes
from tinygen.testing import f64


def test_known_expression_counts_each_saved_array():
    x, y = f64([1.0, 2.0, 3.0]), f64([4.0, 5.0, 6.0])
    z = (x * y + x.exp()).sum()
    # Mul keeps x and y (2 x 24 B), Exp keeps its output (24 B); Add and Sum keep nothing
    assert saved_tensor_bytes(z) == 72


def test_saved_bytes_drop_to_zero_after_backward():
    x, y = f64([1.0, 2.0, 3.0]), f64([4.0, 5.0, 6.0])
    z = (x * y + x.exp()).tanh().sum()
    assert saved_tensor_bytes(z) > 0
    z.backward()
    assert saved_tensor_bytes(z) == 0


def test_retain_graph_keeps_the_saved_tensors_until_the_last_backward():
    x = f64([1.0, 2.0])
    z = (x.exp() * x).sum()
    before = saved_tensor_bytes(z)
    z.backward(retain_graph=True)
    assert saved_tensor_bytes(z) == before
    z.backward()
    assert saved_tensor_bytes(z) == 0


def test_grad_frees_the_graph_too():
    x = f64([1.0, 2.0])
    z = x.tanh().sum()
    assert saved_tensor_bytes(z) > 0
    tg.grad(z, x)
    assert saved_tensor_bytes(z) == 0


def test_an_array_saved_by_several_nodes_is_counted_once():
    x = f64(np.ones(100))           # 800 B
    assert saved_tensor_bytes(x * x) == 800          # Mul saves x twice
    two, three = f64([2.0]), f64([3.0])
    assert saved_tensor_bytes((x * two) + (x * three)) == 800 + 2 * 8  # x once, two and three
    assert saved_tensor_bytes((x * 2) + (x * 3)) == 0   # a number is the op's, not a saved tensor
    assert saved_tensor_bytes(x) == 0                # a leaf has no graph


def test_a_model_step_frees_its_activations():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))
    loss = model(tg.randn(8, 16)).sum()
    held = saved_tensor_bytes(loss)
    # at least the tanh output (8x32 floats) and the input of the second Linear
    assert held >= 8 * 32 * 4
    loss.backward()
    assert saved_tensor_bytes(loss) == 0


def test_graph_summary_table():
    x, y = f64([1.0, 2.0, 3.0]), f64([4.0, 5.0, 6.0])
    z = (x * y + x.exp()).sum()
    summary = graph_summary(z)
    assert summary.rows == [("Sum", 1, 0), ("Add", 1, 0), ("Mul", 1, 48), ("Exp", 1, 24)]
    assert (summary.nodes, summary.leaves, summary.saved_bytes) == (4, 2, 72)
    text = str(summary)
    assert text.splitlines()[0].split() == ["op", "nodes", "saved", "bytes"]
    assert text.splitlines()[-2].split() == ["total", "4", "72"]
    assert text.splitlines()[-1] == "leaf tensors receiving gradients: 2"
    z.backward()
    assert graph_summary(z).saved_bytes == 0


def test_graph_nodes_walks_long_chains_without_recursion():
    x = f64([1.0])
    y = x
    for _ in range(20000):
        y = y * x
    assert len(graph_nodes(y)) == 20000
    assert saved_tensor_bytes(y) > 0
