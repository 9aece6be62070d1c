"""Third derivatives: of tanh, and of a small MLP's loss w.r.t. its input, agree with
finite differences (and, for tanh, with the closed form).

Each backward is written with differentiable ops, so grad(..., create_graph=True)
can be nested: the function x -> d2f/dx2 is itself an ordinary differentiable
function, and gradcheck of it checks the third derivative.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygen as tg
from tinygen.testing import assert_close, f64, gradcheck, gradgradcheck, strategies as tst

from ._helpers import small_shapes


def second_derivative(f):
    """x -> d/dx (sum of d/dx sum f(x)): elementwise f'' for an elementwise f."""
    def d2(x):
        (g1,) = tg.grad(f(x).sum(), x, create_graph=True)
        (g2,) = tg.grad(g1.sum(), x, create_graph=True)
        return g2
    return d2


def directional_derivatives(f, x, u, order):
    """The ``order``-th derivative of t -> f(x + t u) at t = 0, through nested grad()."""
    value = f(x)
    for _ in range(order):
        (g,) = tg.grad(value, x, create_graph=True)
        value = (g * u).sum()
    return value.item()


def third_difference(g, h=1e-2):
    """Estimate of g'''(0): the central 5-point difference (error O(h^2)) with one
    Richardson step (error O(h^4)), so it does not hinge on g's fifth derivative."""
    def central(h):
        return (g(2 * h) - 2 * g(h) + 2 * g(-h) - g(-2 * h)) / (2 * h ** 3)
    return (4.0 * central(h / 2) - central(h)) / 3.0


# --- tanh --------------------------------------------------------------------------------------
@given(x=tst.tensors(small_shapes(), min_value=-2.5, max_value=2.5, requires_grad=True))
def test_third_derivative_of_tanh_matches_finite_differences_and_closed_form(x):
    d2 = second_derivative(tg.tanh)
    t = np.tanh(x.numpy())
    assert_close(d2(x), -2.0 * t * (1 - t ** 2), rtol=1e-9, atol=1e-12)
    assert gradcheck(d2, [x])  # third derivative vs finite differences of the second
    (g3,) = tg.grad(d2(x).sum(), x)
    assert_close(g3, -2.0 * (1 - t ** 2) * (1 - 3 * t ** 2), rtol=1e-9, atol=1e-12)


def test_fourth_derivative_of_tanh_via_gradgradcheck():
    x = f64(np.linspace(-2.0, 2.0, 7))
    assert gradgradcheck(second_derivative(tg.tanh), [x])


def test_third_derivative_of_tanh_by_a_plain_third_difference():
    x0 = np.array([-1.3, -0.2, 0.0, 0.7, 1.9])
    x = f64(x0)
    (g3,) = tg.grad(second_derivative(tg.tanh)(x).sum(), x)
    numeric = third_difference(lambda t: np.tanh(x0 + t))
    np.testing.assert_allclose(g3.numpy(), numeric, rtol=1e-5, atol=1e-6)


# --- a small MLP built from raw tensors -------------------------------------------------------------
ACTIVATIONS = {"tanh": tg.tanh, "softplus": tg.softplus, "sigmoid": tg.sigmoid}


def make_mlp(n_in, n_hidden, n_out, activation, loss, seed=0):
    rng = np.random.default_rng(seed)
    w1 = f64(rng.standard_normal((n_in, n_hidden)) * 0.8, requires_grad=False)
    b1 = f64(rng.standard_normal(n_hidden) * 0.3, requires_grad=False)
    w2 = f64(rng.standard_normal((n_hidden, n_out)) * 0.8, requires_grad=False)
    b2 = f64(rng.standard_normal(n_out) * 0.3, requires_grad=False)
    act = ACTIVATIONS[activation]

    def loss_fn(x, target):
        hidden = act(x @ w1 + b1)
        out = hidden @ w2 + b2
        if loss == "mse":
            return tg.mse_loss(out, target)
        return tg.cross_entropy(out, target)

    return loss_fn, (w1, b1, w2, b2)


def _targets(loss, n, n_out, seed=1):
    rng = np.random.default_rng(seed)
    if loss == "mse":
        return f64(rng.standard_normal((n, n_out)), requires_grad=False)
    return tg.tensor(rng.integers(0, n_out, n))


MLP_CASES = [("tanh", "mse"), ("softplus", "cross_entropy"), ("sigmoid", "mse"),
             ("tanh", "cross_entropy")]


@pytest.mark.parametrize("activation, loss", MLP_CASES)
@given(x=tst.tensors(st.tuples(st.integers(1, 2), st.just(3)), min_value=-2.0, max_value=2.0,
                     requires_grad=True))
def test_third_derivative_of_mlp_loss_wrt_input_matches_finite_differences(activation, loss, x):
    loss_fn, _ = make_mlp(3, 4, 3, activation, loss)
    target = _targets(loss, x.shape[0], 3)

    def d2(t):
        (g1,) = tg.grad(loss_fn(t, target), t, create_graph=True)
        (g2,) = tg.grad(g1.sum(), t, create_graph=True)
        return g2

    assert gradcheck(d2, [x])


@pytest.mark.parametrize("activation, loss", MLP_CASES)
def test_directional_third_derivative_of_mlp_loss_matches_a_third_difference(activation, loss):
    loss_fn, _ = make_mlp(3, 5, 3, activation, loss, seed=4)
    rng = np.random.default_rng(5)
    x0 = rng.standard_normal((2, 3))
    u = rng.standard_normal((2, 3))
    target = _targets(loss, 2, 3)
    x = f64(x0)
    analytic = directional_derivatives(lambda t: loss_fn(t, target), x, f64(u, False), 3)
    with tg.no_grad():
        numeric = third_difference(lambda s: loss_fn(f64(x0 + s * u, False), target).item())
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-6)


def test_third_order_mixed_derivative_through_a_gradient_penalty():
    # WGAN-GP's pattern one order higher: the gradient (w.r.t. the weights) of a
    # penalty on the input gradient's norm, checked against finite differences.
    loss_fn, (w1, b1, w2, b2) = make_mlp(3, 4, 1, "softplus", "mse", seed=2)
    rng = np.random.default_rng(3)
    x = f64(rng.standard_normal((2, 3)))
    target = f64(np.zeros((2, 1)), requires_grad=False)
    w1.requires_grad = True

    def penalty_grad(w):
        def loss_w(inp):
            hidden = tg.softplus(inp @ w + b1)
            return tg.mse_loss(hidden @ w2 + b2, target)
        (gx,) = tg.grad(loss_w(x), x, create_graph=True)
        penalty = ((gx * gx).sum() - 1.0) ** 2
        (gw,) = tg.grad(penalty, w, create_graph=True)
        return gw

    assert gradcheck(penalty_grad, [w1])


# --- third order through the data-movement ops -----------------------------------------------------
def test_third_derivative_through_indexing_padding_and_shape_ops():
    # The backward of a data-movement op is another data-movement op (getitem <->
    # scatter-add, pad -> slice, permute -> inverse permute...), and so is *its*
    # backward: a cubic after them makes every one of those levels matter.
    rng = np.random.default_rng(6)
    x = f64(rng.uniform(-1.5, 1.5, (2, 3)))
    index = np.array([0, 2, 2, -1])

    def f(t):
        moved = tg.pad(t, (2, 1), mode="reflect").permute(1, 0)  # (6, 2)
        picked = tg.concatenate([moved[index], moved[1:, ::-1]], axis=0)
        return (tg.gather(picked, 1, np.array([[1, 1]] * 9)) ** 3).sum(axis=1).max()

    d2 = second_derivative(f)
    assert gradcheck(d2, [x])


LINEAR_OPS = {
    "getitem-repeated": lambda t: t[np.array([0, 1, 1, -1])],
    "getitem-mask": lambda t: t[np.array([[True, False, True], [False, True, True]])],
    "pad-reflect": lambda t: tg.pad(t, (2, 1), mode="reflect"),
    "pad-constant": lambda t: tg.pad(t, (1, 2, 0, 1)),
    "gather": lambda t: tg.gather(t, 1, np.array([[2, 2, 0], [1, 0, 0]])),
    "permute": lambda t: t.permute(1, 0),
    "broadcast_to": lambda t: tg.broadcast_to(t, (2, 2, 3)),
    "concatenate": lambda t: tg.concatenate([t, t[:, 1:]], axis=1),
    "sum": lambda t: t.sum(axis=0, keepdims=True),
    "matmul": lambda t: t @ f64(np.arange(6.0).reshape(3, 2), requires_grad=False),
}


@pytest.mark.parametrize("name", list(LINEAR_OPS))
def test_backward_of_linear_ops_is_twice_differentiable(name):
    # For a linear op L the vector-Jacobian product v -> L^T v is linear too; its
    # own backward (L again) and that backward's backward (L^T) must keep the
    # graph, or derivatives of order three and up silently vanish.
    rng = np.random.default_rng(8)
    x = f64(rng.standard_normal((2, 3)))
    op = LINEAR_OPS[name]
    v = f64(rng.standard_normal(op(x).shape))

    def vjp(upstream):
        (g,) = tg.grad(op(x), x, grad_outputs=upstream, create_graph=True)
        return g

    assert gradcheck(vjp, [v])
    assert gradgradcheck(vjp, [v])
