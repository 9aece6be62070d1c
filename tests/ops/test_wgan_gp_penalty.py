"""WGAN-GP's gradient penalty differentiates a gradient through conv, batchnorm,
leaky-relu and linear layers: its gradient w.r.t. the critic's weights must match
finite differences (this exercises every backward's own backward)."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.nn import functional as F
from tinygen.testing import gradcheck


def critic(x, conv_w, conv_b, bn_w, bn_b, lin_w, lin_b):
    h = F.conv2d(x, conv_w, conv_b, stride=2, padding=1)
    h = F.batch_norm(h, None, None, bn_w, bn_b, training=True)
    h = F.leaky_relu(h, 0.2)
    return F.linear(h.flatten(1), lin_w, lin_b)


def gradient_penalty(x, *params):
    """((||d critic(x) / dx||_2 - 1)^2).mean() with the gradient kept in the graph."""
    x = x.detach().requires_grad_()
    scores = critic(x, *params)
    (grad_x,) = tg.grad(scores.sum(), x, create_graph=True)
    norms = grad_x.flatten(1).norm(axis=1)
    return ((norms - 1.0) ** 2).mean()


@pytest.fixture
def setup():
    rng = np.random.default_rng(3)

    def f64(*shape, scale=0.5):
        return tg.tensor(rng.standard_normal(shape) * scale, dtype=tg.float64, requires_grad=True)

    x = tg.tensor(rng.standard_normal((3, 2, 5, 5)), dtype=tg.float64)
    params = [f64(4, 2, 3, 3), f64(4), f64(4, scale=0.3) + 1.0, f64(4), f64(1, 36, scale=0.2),
              f64(1)]
    params = [p.detach().requires_grad_() for p in params]
    return x, params


def test_penalty_reaches_every_critic_weight(setup):
    x, params = setup
    gradient_penalty(x, *params).backward()
    names = ["conv weight", "conv bias", "bn weight", "bn bias", "linear weight", "linear bias"]
    for name, p in zip(names, params):
        if name in ("conv bias", "bn bias", "linear bias"):
            continue  # biases shift scores, not their gradient w.r.t. x (exactly zero below)
        assert p.grad is not None and np.abs(p.grad.numpy()).max() > 1e-6, name


def test_penalty_gradient_matches_finite_differences(setup):
    x, params = setup
    gradcheck(lambda *p: gradient_penalty(x, *p), params, atol=1e-6, rtol=1e-4)


def test_penalty_gradient_matches_pytorch(setup):
    torch = pytest.importorskip("torch")
    x, params = setup
    gradient_penalty(x, *params).backward()
    tx = torch.tensor(x.numpy(), requires_grad=True)
    tp = [torch.tensor(p.numpy(), requires_grad=True) for p in params]
    h = torch.nn.functional.conv2d(tx, tp[0], tp[1], stride=2, padding=1)
    h = torch.nn.functional.batch_norm(h, None, None, tp[2], tp[3], training=True)
    h = torch.nn.functional.leaky_relu(h, 0.2)
    scores = torch.nn.functional.linear(h.flatten(1), tp[4], tp[5])
    (gx,) = torch.autograd.grad(scores.sum(), tx, create_graph=True)
    ((gx.flatten(1).norm(dim=1) - 1) ** 2).mean().backward()
    for ours, theirs in zip(params, tp):
        # A weight the penalty does not reach has no gradient in either engine
        # (the linear bias); compare it as zeros.
        a = ours.grad.numpy() if ours.grad is not None else np.zeros(ours.shape)
        b = theirs.grad.numpy() if theirs.grad is not None else np.zeros(ours.shape)
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
