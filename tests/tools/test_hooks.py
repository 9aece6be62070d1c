"""Tensor hooks and Module forward / full backward hooks."""
import numpy as np
import pytest

import tinygen as tg
from tinygen import nn


def f64(*shape, seed=0, requires_grad=True):
    rng = np.random.default_rng(seed)
    return tg.tensor(rng.standard_normal(shape), dtype=tg.float64, requires_grad=requires_grad)


# --- tensor hooks -----------------------------------------------------------------------
def test_a_hook_that_doubles_a_leaf_gradient_doubles_it():
    x = f64(3)
    (x.exp()).sum().backward()
    plain = x.grad.numpy().copy()
    x.grad = None
    handle = x.register_hook(lambda g: g * 2)
    (x.exp()).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * plain)
    handle.remove()
    x.grad = None
    (x.exp()).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), plain)


def test_a_hook_that_doubles_an_intermediate_gradient_doubles_everything_below_it():
    x, w = f64(3), f64(3, seed=1)
    h = x * w
    h.register_hook(lambda g: g * 2)
    h.tanh().sum().backward()
    upstream = 1 - np.tanh(x.numpy() * w.numpy()) ** 2
    np.testing.assert_allclose(x.grad.numpy(), 2 * upstream * w.numpy())
    np.testing.assert_allclose(w.grad.numpy(), 2 * upstream * x.numpy())


def test_a_hook_that_returns_none_observes_only():
    x = f64(2)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(seen[0], [3.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


# --- module forward hooks -------------------------------------------------------------------
def test_forward_hook_sees_and_may_replace_the_output():
    layer = nn.Linear(3, 2).double()
    calls = []
    handle = layer.register_forward_hook(lambda m, args, out: calls.append((m, args, out)) or out * 0)
    x = f64(4, 3)
    out = layer(x)
    (module, args, original), = calls
    assert module is layer and args[0] is x and original.shape == (4, 2)
    np.testing.assert_array_equal(out.numpy(), 0)
    handle.remove()
    assert np.any(layer(x).numpy() != 0)


# --- module full backward hooks -----------------------------------------------------------
class Cube(nn.Module):
    def forward(self, x):
        return x * x * x


def test_backward_hook_receives_grad_input_and_grad_output():
    layer = nn.Linear(3, 2).double()
    seen = []
    layer.register_full_backward_hook(lambda m, gi, go: seen.append((m, gi, go)))
    x = f64(4, 3)
    y = layer(x)
    upstream = f64(4, 2, seed=5, requires_grad=False)
    y.backward(upstream)
    (module, grad_input, grad_output), = seen
    assert module is layer
    assert len(grad_input) == 1 and len(grad_output) == 1
    np.testing.assert_allclose(grad_output[0].numpy(), upstream.numpy())
    np.testing.assert_allclose(grad_input[0].numpy(), upstream.numpy() @ layer.weight.numpy())
    np.testing.assert_allclose(x.grad.numpy(), grad_input[0].numpy())


def test_backward_hook_that_doubles_grad_input_doubles_the_input_gradient_only():
    layer = nn.Linear(3, 2).double()
    x = f64(4, 3)
    layer(x).sum().backward()
    plain_x, plain_w = x.grad.numpy().copy(), layer.weight.grad.numpy().copy()
    x.grad = None
    layer.zero_grad()
    handle = layer.register_full_backward_hook(lambda m, gi, go: tuple(g * 2 for g in gi))
    layer(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * plain_x)
    np.testing.assert_allclose(layer.weight.grad.numpy(), plain_w)  # parameters untouched
    assert layer(x).grad_fn.name == "GradientTap"  # tinygen/nn/backward_hooks.py
    handle.remove()
    x.grad = None
    out = layer(x)
    assert out.grad_fn.name != "GradientTap"  # no hooks: the fast path, no wrapping
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), plain_x)


def test_backward_hook_runs_when_no_input_requires_grad():
    layer = nn.Linear(3, 2).double()
    seen = []
    layer.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go)))
    layer(f64(4, 3, requires_grad=False)).sum().backward()
    (grad_input, grad_output), = seen
    assert grad_input == (None,)
    np.testing.assert_allclose(grad_output[0].numpy(), np.ones((4, 2)))
    assert layer.weight.grad is not None


def test_backward_hook_in_a_sequential_and_with_several_inputs_and_outputs():
    class Pair(nn.Module):
        def forward(self, a, scale, b):
            return a * b, a + b

    pair = Pair()
    seen = []
    pair.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go)))
    a, b = f64(2), f64(2, seed=1)
    const = f64(2, seed=2, requires_grad=False)
    p, s = pair(a, const, b)
    assert isinstance((p, s), tuple)
    (p * 3.0 + s).sum().backward()
    (grad_input, grad_output), = seen
    assert len(grad_input) == 3 and grad_input[1] is None       # const: no gradient
    np.testing.assert_allclose(grad_output[0].numpy(), [3, 3])
    np.testing.assert_allclose(grad_output[1].numpy(), [1, 1])
    np.testing.assert_allclose(grad_input[0].numpy(), 3 * b.numpy() + 1)
    np.testing.assert_allclose(grad_input[2].numpy(), 3 * a.numpy() + 1)

    order = []
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1)).double()
    for i, layer in enumerate(model):
        layer.register_full_backward_hook(lambda m, gi, go, i=i: order.append(i))
    model(f64(5, 2)).sum().backward()
    assert order == [2, 1, 0]  # backward meets the layers in reverse


def test_backward_hook_with_create_graph_gives_correct_higher_derivatives():
    cube = Cube()
    x = f64(3)
    (g,) = tg.grad(cube(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    seen = []
    cube.register_full_backward_hook(lambda m, gi, go: seen.append(gi) or (gi[0] * 2,))
    (g,) = tg.grad(cube(x).sum(), x, create_graph=True)
    assert seen[0][0].requires_grad  # with create_graph the hook sees tensors with a graph
    np.testing.assert_allclose(g.numpy(), 6 * x.numpy() ** 2)
    g.sum().backward()  # d/dx of 6 x^2 = 12 x: the hook's doubling is differentiated too
    np.testing.assert_allclose(x.grad.numpy(), 12 * x.numpy())


def test_backward_hook_returning_the_wrong_number_of_gradients_is_an_error():
    layer = nn.Linear(3, 2).double()
    layer.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError, match="returned 2 gradients; the module has 1 tensor inputs"):
        layer(f64(1, 3)).sum().backward()


def test_backward_hooks_cost_nothing_under_no_grad():
    layer = nn.Linear(3, 2).double()
    layer.register_full_backward_hook(lambda m, gi, go: None)
    with tg.no_grad():
        out = layer(f64(1, 3))
    assert out.grad_fn is None
