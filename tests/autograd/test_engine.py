"""The backward engine: accumulation, graph freeing, grad(), higher order, limits."""
import gc
import threading

import numpy as np
import pytest
from hypothesis import given

import tinygen as tg
from tinygen.autograd.function import Function
from tinygen.testing import gradcheck, gradgradcheck, strategies as tst


def f64(*shape, requires_grad=True, seed=0):
    rng = np.random.default_rng(seed)
    return tg.tensor(rng.standard_normal(shape), dtype=tg.float64, requires_grad=requires_grad)


def test_gradients_accumulate_across_backward_calls():
    x = f64(3)
    (x * x).sum().backward()
    first = x.grad.numpy().copy()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    np.testing.assert_allclose(first, 2 * x.numpy())


def test_shared_gradient_objects_are_not_aliased_between_leaves():
    a, b = f64(3), f64(3, seed=1)
    (a + b).sum().backward()
    a.grad.data *= 5  # in-place scaling of one leaf's grad (as grad clipping does)
    np.testing.assert_allclose(b.grad.numpy(), np.ones(3))


def test_summing_gradients_never_writes_into_a_gradient_someone_else_holds():
    # The engine sums the gradients of one output in place, but only into an array it
    # allocated itself: here Add's backward hands one gradient object to both of its
    # inputs at every step, so writing into a received gradient would change the
    # other input's gradient too.
    x = f64(3)
    a, b = x * 2.0, x * 3.0
    (((a + b) + a) + b).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 10.0))

    held = tg.tensor(np.array([1.0, 2.0, 3.0]))

    class GivesHeld(Function):  # a backward that returns a tensor its caller keeps
        def forward(self, a):
            return a.copy()

        def backward(self, grad):
            return held

    p = f64(3)
    sum(GivesHeld.apply(p) for _ in range(4)).sum().backward()
    np.testing.assert_allclose(held.numpy(), [1.0, 2.0, 3.0])  # not summed into
    np.testing.assert_allclose(p.grad.numpy(), [4.0, 8.0, 12.0])


def test_gradients_summed_into_an_interior_buffer_reach_hooks_and_leaves_whole():
    x = f64(3)
    h = x * 1.0
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    sum(h * float(k) for k in range(1, 6)).sum().backward()  # 5 gradients into h's buffer
    np.testing.assert_allclose(seen[0], np.full(3, 15.0))
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 15.0))


def test_create_graph_gradients_of_leaves_are_fresh_writable_tensors():
    a, b = f64(3), f64(3, seed=1)
    (a + b).sum().backward(create_graph=True)
    assert a.grad is not b.grad
    a.grad.zero_()  # not a read-only broadcast view shared with b.grad
    np.testing.assert_allclose(b.grad.numpy(), 1.0)


def test_diamond_graph_sums_both_paths():
    x = f64(4)
    y = x.exp()
    z = (y * y + y.tanh()).sum()
    z.backward()
    e = np.exp(x.numpy())
    np.testing.assert_allclose(x.grad.numpy(), 2 * e * e + (1 - np.tanh(e) ** 2) * e, rtol=1e-12)


def test_second_backward_through_freed_graph_raises():
    x = f64(3)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = f64(3)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.exp(x.numpy()))


def test_saved_arrays_are_released_after_backward():
    x = f64(5)
    y = x.exp().tanh()
    node = y.grad_fn
    assert sum(a.nbytes for a in node.saved_arrays()) > 0
    y.sum().backward()
    assert node.saved_arrays() == []


def test_release_frees_an_ops_own_arrays_and_keeps_its_plain_state():
    """release_saved drops every array the op kept (numpy's, or any array-like with
    shape and nbytes, such as cupy's) and passes over numbers, tuples and strings."""

    class ArrayLike:
        shape, nbytes = (2,), 16

    class Scaled(tg.Function):
        def forward(self, a):
            self.mask, self.other = np.ones_like(a), ArrayLike()
            self.scale, self.shape_in, self.name_ = 2.0, a.shape, "s"
            return a * 2.0

        def backward(self, grad):
            return grad * 2.0

    x = f64(3)
    y = Scaled.apply(x)
    node = y.grad_fn
    y.sum().backward()
    assert node.mask is None and node.other is None
    assert (node.scale, node.shape_in, node.name_) == (2.0, (3,), "s")
    np.testing.assert_allclose(x.grad.numpy(), 2.0)


def test_backward_on_non_scalar_needs_a_gradient():
    x = f64(2, 3)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(2, 3\)"):
        y.backward()
    g = np.arange(6.0).reshape(2, 3)
    y.backward(tg.tensor(g, dtype=tg.float64))
    np.testing.assert_allclose(x.grad.numpy(), 2 * g)


def test_backward_gradient_must_match_output():
    x = f64(2, 3)
    with pytest.raises(ValueError, match=r"shape \(3,\).*shape \(2, 3\)"):
        (x * 2).backward(tg.ones(3, dtype=tg.float64))
    with pytest.raises(TypeError, match="float32.*float64"):
        (x * 2).backward(tg.ones(2, 3))


def test_backward_on_tensor_without_grad_raises():
    x = f64(3, requires_grad=False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        (x * 2).sum().backward()


def test_only_float_tensors_can_require_grad():
    with pytest.raises(TypeError, match="int64"):
        tg.arange(3, requires_grad=True)


def test_grad_returns_gradients_and_leaves_dot_grad_alone():
    x, w = f64(3), f64(3, seed=1)
    gx, gw = tg.grad((x * w).sum(), [x, w])
    np.testing.assert_allclose(gx.numpy(), w.numpy())
    np.testing.assert_allclose(gw.numpy(), x.numpy())
    assert x.grad is None and w.grad is None
    assert not gx.requires_grad


def test_grad_with_respect_to_an_intermediate_tensor():
    x = f64(3)
    h = x.exp()
    y = (h * h).sum()
    (gh,) = tg.grad(y, h)
    np.testing.assert_allclose(gh.numpy(), 2 * np.exp(x.numpy()))


def test_grad_unused_input():
    x, unused = f64(3), f64(2, seed=1)
    with pytest.raises(RuntimeError, match=r"input 1 \(shape \(2,\)\) was not used"):
        tg.grad((x * 2).sum(), [x, unused])
    gx, gu = tg.grad((x * 2).sum(), [x, unused], allow_unused=True)
    assert gu is None
    np.testing.assert_allclose(gx.numpy(), 2.0)


def test_grad_skips_branches_that_do_not_lead_to_inputs():
    calls = []

    class Spy(Function):
        def forward(self, a):
            return a * 1.0

        def backward(self, grad):
            calls.append(1)
            return grad

    x, w = f64(3), f64(3, seed=1)
    y = (Spy.apply(w) * x).sum()
    tg.grad(y, x)
    assert calls == []


def test_grad_tells_a_node_which_of_its_inputs_lead_to_a_target():
    """A node whose other input is no target (a layer's weights under a gradient
    penalty) is asked for the target's side only, the flags restored after; the
    gradient is the same as backward's."""
    seen = []

    class Product(Function):
        def forward(self, a, b):
            self.save_inputs(0, 1)
            return a * b

        def backward(self, grad):
            a, b = self.saved_inputs()
            seen.append(self.needs_input_grad)
            return (grad * b if self.needs_input_grad[0] else None,
                    grad * a if self.needs_input_grad[1] else None)

    x, w = f64(4), f64(4, seed=1)
    y = (Product.apply(x, w) ** 2).sum()
    (gx,) = tg.grad(y, x, retain_graph=True)
    assert seen == [(True, False)]
    gx2, gw = tg.grad(y, [x, w], retain_graph=True)
    assert seen[1] == (True, True)
    (gw2,) = tg.grad(y, w, retain_graph=True)
    assert seen[2] == (False, True)
    y.backward()
    assert seen[3] == (True, True)
    np.testing.assert_allclose(gx.numpy(), 2 * x.numpy() * w.numpy() ** 2)
    for got in (gx, gx2):
        np.testing.assert_allclose(got.numpy(), x.grad.numpy())
    for got in (gw, gw2):
        np.testing.assert_allclose(got.numpy(), w.grad.numpy())


def test_gradient_penalty_skips_the_weight_gradients_and_stays_exact(monkeypatch):
    """grad() of a conv's output with respect to its input, with create_graph (WGAN-GP's
    penalty): no weight-gradient node is built, and the penalty's gradients, weights'
    included, match finite differences."""
    from tinygen.ops.conv import Conv2dWeightGradFn
    import tinygen.nn.functional as F

    x = f64(2, 2, 5, 5)
    w = f64(3, 2, 3, 3, seed=1)
    built = []
    original = Conv2dWeightGradFn.forward

    def counting(self, *args, **kwargs):
        built.append(1)
        return original(self, *args, **kwargs)

    def penalty(x, w):
        (g,) = tg.grad(F.conv2d(x, w, padding=1).tanh().sum(), x, create_graph=True)
        return (g * g).sum()

    monkeypatch.setattr(Conv2dWeightGradFn, "forward", counting)
    penalty(x, w)
    assert built == []
    monkeypatch.undo()
    assert gradcheck(penalty, (x, w))


def test_create_graph_gives_differentiable_gradients():
    x = f64(4)
    (g,) = tg.grad((x ** 3).sum(), x, create_graph=True)
    assert g.requires_grad
    (h,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.numpy())


def test_hessian_vector_product():
    a = f64(3, 3, requires_grad=False)
    A = a.numpy() + a.numpy().T
    x, v = f64(3, seed=1), np.array([1.0, -2.0, 0.5])
    f = lambda x: 0.5 * (x * (tg.tensor(A, dtype=tg.float64) @ x)).sum()  # noqa: E731
    (g,) = tg.grad(f(x), x, create_graph=True)
    (hv,) = tg.grad((g * tg.tensor(v, dtype=tg.float64)).sum(), x)
    np.testing.assert_allclose(hv.numpy(), A @ v, rtol=1e-12)


def test_third_derivative_of_tanh_matches_closed_form():
    x = f64(6)
    (g1,) = tg.grad(x.tanh().sum(), x, create_graph=True)
    (g2,) = tg.grad(g1.sum(), x, create_graph=True)
    (g3,) = tg.grad(g2.sum(), x)
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(g3.numpy(), -2 * (1 - t * t) * (1 - 3 * t * t), rtol=1e-10)


def test_backward_with_create_graph_then_backward_again():
    x = f64(3)
    y = (x ** 2).sum()
    y.backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2.0)


def test_backward_inputs_restricts_accumulation():
    x, w = f64(3), f64(3, seed=1)
    (x * w).sum().backward(inputs=[w])
    assert x.grad is None
    np.testing.assert_allclose(w.grad.numpy(), x.numpy())


def test_broadcasting_is_undone_by_the_engine():
    a, b = f64(3, 1), f64(4, seed=1)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,)
    np.testing.assert_allclose(a.grad.numpy(), np.full((3, 1), b.numpy().sum()))
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, a.numpy().sum()))


@given(tst.broadcastable_shapes(num_shapes=2))
def test_broadcast_binary_ops_pass_gradcheck(shapes):
    rng = np.random.default_rng(0)
    a = tg.tensor(rng.uniform(0.5, 2, shapes[0]), dtype=tg.float64, requires_grad=True)
    b = tg.tensor(rng.uniform(0.5, 2, shapes[1]), dtype=tg.float64, requires_grad=True)
    gradcheck(lambda a, b: a * b + a / b - b, (a, b))
    gradgradcheck(lambda a, b: a * b + a / b - b, (a, b))


def test_chain_of_100k_ops_backpropagates_without_recursion():
    x = tg.tensor(1.0, dtype=tg.float64, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad.item() == 1.0
    del y
    gc.collect()  # freeing the long chain must not recurse either


def test_deep_chain_with_create_graph():
    x = tg.tensor(0.3, dtype=tg.float64, requires_grad=True)
    y = x
    for _ in range(2000):
        y = y.tanh()
    (g,) = tg.grad(y, x, create_graph=True)
    (h,) = tg.grad(g, x)
    assert np.isfinite(h.item())


def test_no_grad_context_and_decorator():
    x = f64(3)
    with tg.no_grad():
        y = x * 2
        with tg.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad

    @tg.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad
    assert tg.is_grad_enabled()


def test_no_grad_is_thread_local():
    seen = []
    x = f64(3)
    with tg.no_grad():
        t = threading.Thread(target=lambda: seen.append((x * 2).requires_grad))
        t.start()
        t.join()
    assert seen == [True]


def test_tensor_hooks_can_replace_gradients():
    x = f64(3)
    handle = x.register_hook(lambda g: g * 2)
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2.0)
    handle.remove()
    x.grad = None
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.0)


def test_hook_on_intermediate_tensor():
    x = f64(3)
    h = x * 3.0
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 10)
    h.sum().backward()
    np.testing.assert_allclose(seen[0], 1.0)
    np.testing.assert_allclose(x.grad.numpy(), 30.0)


def test_custom_function_multiple_outputs_with_one_unused():
    class SplitHalves(Function):
        def forward(self, a):
            n = a.shape[0] // 2
            return a[:n] * 2, a[n:] * 3

        def backward(self, g1, g2):
            return tg.concatenate([g1 * 2, g2 * 3])

    x = f64(4)
    first, _ = SplitHalves.apply(x)
    first.sum().backward()  # the unused output's gradient is filled with zeros
    np.testing.assert_allclose(x.grad.numpy(), [2, 2, 0, 0])


@given(tst.broadcastable_shapes(num_shapes=2))
def test_broadcast_gradients_are_summed_alike_with_and_without_a_graph(shapes):
    # without create_graph the engine sums raw arrays; with it, SumTo nodes
    rng = np.random.default_rng(0)
    a = tg.tensor(rng.standard_normal(shapes[0]), dtype=tg.float64, requires_grad=True)
    b = tg.tensor(rng.standard_normal(shapes[1]), dtype=tg.float64, requires_grad=True)
    out = a * b
    g = tg.tensor(rng.standard_normal(out.shape), dtype=tg.float64)
    raw = tg.grad(out, [a, b], g, retain_graph=True)
    graph = tg.grad(out, [a, b], g, create_graph=True)
    for r, c, t, other in zip(raw, graph, (a, b), (b, a)):
        assert r.shape == c.shape == t.shape
        np.testing.assert_array_equal(r.numpy(), c.numpy())
        full = g.numpy() * np.broadcast_to(other.numpy(), out.shape)
        lead = out.ndim - t.ndim
        summed = full.sum(axis=tuple(range(lead)))
        summed = summed.sum(axis=tuple(i for i, n in enumerate(t.shape) if n == 1 and
                                       summed.shape[i] != 1), keepdims=True)
        np.testing.assert_allclose(r.numpy(), summed, rtol=1e-12, atol=1e-12)


def test_custom_function_wrong_gradient_count_is_reported():
    class Bad(Function):
        def forward(self, a, b):
            return a + b

        def backward(self, g):
            return g

    with pytest.raises(RuntimeError, match="returned 1 gradients for 2 inputs"):
        Bad.apply(f64(2), f64(2)).sum().backward()


def test_custom_function_wrong_gradient_shape_is_reported():
    class Bad(Function):
        def forward(self, a):
            return a * 2

        def backward(self, g):
            return tg.ones(5, dtype=tg.float64)

    with pytest.raises(RuntimeError, match=r"gradient of shape \(5,\) for an input of shape \(3,\)"):
        Bad.apply(f64(3)).sum().backward()
    # (with create_graph too: there the SumTo node refuses it, else the engine's raw sum)
    with pytest.raises(RuntimeError, match=r"gradient of shape \(5,\) for an input of shape \(3,\)"):
        Bad.apply(f64(3)).sum().backward(create_graph=True)


def test_detach_cuts_the_graph():
    x = f64(3)
    y = (x * 2).detach() * x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


def test_ops_under_no_grad_record_nothing():
    x = f64(3)
    with tg.no_grad():
        y = x.exp()
    assert y.grad_fn is None and not y.requires_grad
