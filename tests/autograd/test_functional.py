"""vjp, jvp, hvp, vhp, jacobian, hessian: against central differences in float64 (over
hypothesis shapes) and against PyTorch's torch.autograd.functional (skipped without it)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
from tinygen.autograd import functional as AF
from tinygen.testing import strategies as tst

EPS = 1e-6


def smooth(a, b):
    """Two outputs, both inputs used, broadcasting, nonlinear to third order."""
    return (a * b).tanh() * a.sigmoid(), (a.exp() * b).sum() * 0.5


def scalar(a, b):
    return ((a * b).tanh() ** 3).sum() + (a.sigmoid() * b).sum() ** 2


def numeric_jacobian(func, inputs, eps=EPS):
    """Central differences: J[i][j] of shape outputs[i].shape + inputs[j].shape."""
    def evaluate():
        with tg.no_grad():
            out = func(*inputs)
        return [o.numpy().copy() for o in (out if isinstance(out, tuple) else (out,))]

    outs = evaluate()
    blocks = [[np.zeros(o.shape + x.shape) for x in inputs] for o in outs]
    for j, x in enumerate(inputs):
        flat = x.data.reshape(-1)
        for k in range(flat.size):
            original = flat[k]
            flat[k] = original + eps
            plus = evaluate()
            flat[k] = original - eps
            minus = evaluate()
            flat[k] = original
            index = np.unravel_index(k, x.shape)
            for i in range(len(outs)):
                blocks[i][j][(Ellipsis,) + index] = (plus[i] - minus[i]) / (2 * eps)
    return blocks


def f64(array, requires_grad=False):
    return tg.tensor(np.asarray(array, dtype=np.float64), dtype=tg.float64,
                     requires_grad=requires_grad)


def pair(draw_shapes, data):
    a_shape, b_shape = draw_shapes
    a = f64(data.draw(tst.arrays(a_shape, min_value=-1.5, max_value=1.5)))
    b = f64(data.draw(tst.arrays(b_shape, min_value=-1.5, max_value=1.5)))
    return a, b


shapes = tst.broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)


@settings(max_examples=10)
@given(shapes, st.data())
def test_vjp_and_jvp_match_central_differences(draw_shapes, data):
    a, b = pair(draw_shapes, data)
    numeric = numeric_jacobian(smooth, (a, b))
    out, _ = AF.vjp(smooth, (a, b), v=(tg.ones_like(smooth(a, b)[0]), f64(1.0)))
    v = tuple(f64(data.draw(tst.arrays(o.shape))) for o in out)
    _, vjps = AF.vjp(smooth, (a, b), v)
    for j, g in enumerate(vjps):
        expected = sum(np.tensordot(v[i].numpy(), numeric[i][j], axes=v[i].ndim)
                       for i in range(2))
        np.testing.assert_allclose(g.numpy(), expected, rtol=1e-6, atol=1e-7)
    u = tuple(f64(data.draw(tst.arrays(x.shape))) for x in (a, b))
    _, jvps = AF.jvp(smooth, (a, b), u)
    for i, jv in enumerate(jvps):
        expected = sum(np.tensordot(numeric[i][j], u[j].numpy(), axes=u[j].ndim)
                       for j in range(2))
        np.testing.assert_allclose(jv.numpy(), expected, rtol=1e-6, atol=1e-7)


@settings(max_examples=8)
@given(shapes, st.data(), st.sampled_from(["reverse-mode", "forward-mode"]))
def test_jacobian_and_hessian_match_central_differences(draw_shapes, data, strategy):
    a, b = pair(draw_shapes, data)
    numeric = numeric_jacobian(smooth, (a, b))
    jac = AF.jacobian(smooth, (a, b), strategy=strategy)
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(jac[i][j].numpy(), numeric[i][j], rtol=1e-6, atol=1e-7)
    # the Hessian: central differences of the (analytic) gradient
    def gradient(x, y):
        return AF.vjp(scalar, (x, y))[1]

    numeric_h = numeric_jacobian(gradient, (a, b))
    hess = AF.hessian(scalar, (a, b), outer_jacobian_strategy=strategy)
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(hess[i][j].numpy(), numeric_h[i][j], rtol=1e-5,
                                       atol=1e-6)
    u = tuple(f64(data.draw(tst.arrays(x.shape))) for x in (a, b))
    for product in (AF.hvp, AF.vhp):
        _, hv = product(scalar, (a, b), u)
        for i in range(2):
            expected = sum(np.tensordot(numeric_h[i][j], u[j].numpy(), axes=u[j].ndim)
                           for j in range(2))
            np.testing.assert_allclose(hv[i].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_single_tensors_in_and_out_keep_pytorchs_structure():
    x = f64(np.linspace(-1, 1, 6).reshape(2, 3))
    out, g = AF.vjp(lambda t: (t ** 2).sum(), x)
    assert isinstance(out, tg.Tensor) and isinstance(g, tg.Tensor) and g.shape == (2, 3)
    np.testing.assert_allclose(g.numpy(), 2 * x.numpy())
    jac = AF.jacobian(lambda t: t.tanh(), x)
    assert isinstance(jac, tg.Tensor) and jac.shape == (2, 3, 2, 3)
    hess = AF.hessian(lambda t: (t ** 3).sum(), x)
    assert isinstance(hess, tg.Tensor) and hess.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(hess.numpy().reshape(6, 6), np.diag(6 * x.numpy().ravel()))
    # an identity function: the output is the input itself
    _, jv = AF.jvp(lambda t: t, x, v=tg.ones_like(x))
    np.testing.assert_array_equal(jv.numpy(), np.ones((2, 3)))


def test_without_create_graph_results_are_detached_and_the_caller_graph_untouched():
    x = f64([0.3, -0.2], requires_grad=True)
    y = x * 2  # a caller's graph
    out, g = AF.vjp(lambda t: (t ** 3).sum(), y)
    assert not out.requires_grad and not g.requires_grad
    assert x.grad is None


def test_create_graph_results_can_be_differentiated_again():
    # d/dx of (H(x) v) . 1 for f = sum(x^4): H v = 12 x^2 v, its gradient 24 x v.
    x = f64([0.5, -1.0, 2.0], requires_grad=True)
    v = f64([1.0, 2.0, -1.0])
    _, hv = AF.hvp(lambda t: (t ** 4).sum(), x, v, create_graph=True)
    assert hv.requires_grad
    (g,) = tg.grad(hv.sum(), x)
    np.testing.assert_allclose(g.numpy(), 24 * x.numpy() * v.numpy())
    jac = AF.jacobian(lambda t: t ** 3, x, create_graph=True)
    (g,) = tg.grad(jac.sum(), x)  # sum of diag(3 x^2) -> 6 x
    np.testing.assert_allclose(g.numpy(), 6 * x.numpy())


def test_an_input_passed_twice_gets_its_own_gradient_in_both_modes():
    x = f64([0.5, -1.5], requires_grad=True)
    for create_graph in (False, True):
        _, (ga, gb) = AF.vjp(lambda a, b: (a * b.exp()).sum(), (x, x), create_graph=create_graph)
        np.testing.assert_allclose(ga.numpy(), np.exp(x.numpy()))
        np.testing.assert_allclose(gb.numpy(), x.numpy() * np.exp(x.numpy()))


def test_independent_outputs_give_zeros_or_a_strict_error():
    x, y = f64([1.0, 2.0]), f64([3.0])
    _, (gx, gy) = AF.vjp(lambda a, b: (a * 2).sum(), (x, y))
    np.testing.assert_array_equal(gy.numpy(), [0.0])
    with pytest.raises(RuntimeError, match="does not depend on input 1.*strict=True"):
        AF.vjp(lambda a, b: (a * 2).sum(), (x, y), strict=True)
    with pytest.raises(RuntimeError, match="output 1 of func .* does not depend on the inputs"):
        AF.jvp(lambda a: (a * 2, f64([1.0]) * 3), x, v=tg.ones_like(x), strict=True)
    _, jv = AF.jvp(lambda a: (a * 2, f64([1.0]) * 3), x, v=tg.ones_like(x))
    np.testing.assert_array_equal(jv[1].numpy(), [0.0])
    jac = AF.jacobian(lambda a, b: a * 2, (x, y))
    np.testing.assert_array_equal(jac[1].numpy(), np.zeros((2, 1)))
    for strategy in ("reverse-mode", "forward-mode"):
        with pytest.raises(RuntimeError, match="strict=True"):
            AF.jacobian(lambda a, b: a * 2, (x, y), strict=True, strategy=strategy)


def test_bad_arguments_are_named():
    x = f64([1.0, 2.0])
    with pytest.raises(RuntimeError, match="v may be omitted only when the output of func"):
        AF.vjp(lambda t: t * 2, x)
    with pytest.raises(ValueError, match=r"v\[0\] has shape \(3,\) but inputs\[0\] has shape \(2,\)"):
        AF.jvp(lambda t: t * 2, x, v=f64([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="v has 2 tensors but inputs has 1"):
        AF.hvp(lambda t: t.sum(), x, v=(x, x))
    with pytest.raises(RuntimeError, match="single tensor with one element for a Hessian"):
        AF.hessian(lambda t: t * 2, x)
    with pytest.raises(NotImplementedError, match="vectorize=True needs vmap"):
        AF.jacobian(lambda t: t, x, vectorize=True)
    with pytest.raises(ValueError, match="strategy must be"):
        AF.jacobian(lambda t: t, x, strategy="sideways")
    with pytest.raises(TypeError, match=r"inputs\[0\] has dtype int64"):
        AF.vjp(lambda t: t, tg.tensor([1, 2]))
    with pytest.raises(TypeError, match=r"func's outputs\[0\] must be a Tensor, got float"):
        AF.vjp(lambda t: 3.0, x)


# --- against PyTorch ---------------------------------------------------------------------
def test_every_function_matches_torch_autograd_functional():
    torch = pytest.importorskip("torch")
    TF = torch.autograd.functional
    rng = np.random.default_rng(7)
    arrays = (rng.standard_normal((2, 3)), rng.standard_normal(3))
    ours = tuple(f64(a) for a in arrays)
    theirs = tuple(torch.tensor(a) for a in arrays)
    out_dirs = (rng.standard_normal((2, 3)), rng.standard_normal(()))
    in_dirs = (rng.standard_normal((2, 3)), rng.standard_normal(3))

    def close(a, b):
        if isinstance(b, torch.Tensor):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
        else:
            assert len(a) == len(b)
            for x, y in zip(a, b):
                close(x, y)

    def dirs(values, as_torch):
        return tuple(torch.tensor(v) if as_torch else f64(v) for v in values)

    close(AF.vjp(smooth, ours, dirs(out_dirs, False))[1],
          TF.vjp(smooth, theirs, dirs(out_dirs, True))[1])
    close(AF.jvp(smooth, ours, dirs(in_dirs, False))[1],
          TF.jvp(smooth, theirs, dirs(in_dirs, True))[1])
    for ours_fn, theirs_fn in ((AF.hvp, TF.hvp), (AF.vhp, TF.vhp)):
        close(ours_fn(scalar, ours, dirs(in_dirs, False))[1],
              theirs_fn(scalar, theirs, dirs(in_dirs, True))[1])
    for strategy in ("reverse-mode", "forward-mode"):
        close(AF.jacobian(smooth, ours, strategy=strategy),
              TF.jacobian(smooth, theirs, strategy=strategy,
                          vectorize=strategy == "forward-mode"))
    close(AF.hessian(scalar, ours), TF.hessian(scalar, theirs))
    close(AF.hessian(lambda a: (a.tanh() ** 3).sum(), ours[0]),
          TF.hessian(lambda a: (a.tanh() ** 3).sum(), theirs[0]))
    # third order: the gradient of an hvp made with create_graph
    x = f64(arrays[0], requires_grad=True)
    tx = torch.tensor(arrays[0], requires_grad=True)
    v0 = in_dirs[0]
    (g,) = tg.grad(AF.hvp(lambda a: (a.tanh() ** 3).sum(), x, f64(v0), create_graph=True)[1]
                   .sum(), x)
    (tg_,) = torch.autograd.grad(TF.hvp(lambda a: (a.tanh() ** 3).sum(), tx, torch.tensor(v0),
                                        create_graph=True)[1].sum(), tx)
    close(g, tg_)
