"""Public names of the batch-norm, pooling and spectral-norm families, and the WGAN-GP
gradient penalty through all of them (a critic with every op of the three)."""
import numpy as np

import tinygen as tg
from tinygen import nn
import tinygen.nn.functional as F
from tinygen.testing import f64


def test_public_names():
    for name in ("batch_norm", "max_pool2d", "avg_pool2d", "interpolate", "upsample_nearest",
                 "gated_activation"):
        assert callable(getattr(F, name))
    for name in ("BatchNorm1d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "Upsample",
                 "GatedActivation"):
        assert issubclass(getattr(nn, name), nn.Module)
    assert callable(nn.utils.spectral_norm) and callable(nn.utils.remove_spectral_norm)


def test_the_batch_norm_module_does_not_shadow_the_norm_function():
    import tinygen.ops.batch_norm  # noqa: F401  (the family module)

    assert callable(tg.ops.norm)
    np.testing.assert_allclose(tg.tensor([3.0, 4.0]).norm().item(), 5.0)


def test_gradient_penalty_through_bn_pool_gate_and_spectral_norm_matches_pytorch(torch):
    """A critic with every op of the family; the gradient of ||d critic / d x||^2
    w.r.t. the parameters (a gradient of a gradient) agrees with PyTorch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 4, 6, 6))
    lin_w = rng.standard_normal((1, 2 * 3 * 3)) * 0.3
    bn_w, bn_b = rng.uniform(0.5, 1.5, 4), rng.standard_normal(4) * 0.1

    def critic(lib, F_, x, linear, bn_w, bn_b):
        h = F_.batch_norm(x, None, None, bn_w, bn_b, training=True)
        h = F_.leaky_relu(h, 0.2)
        h = F_.max_pool2d(h, 2)
        h = F_.interpolate(h, scale_factor=2)
        h = F_.avg_pool2d(h, 2)
        if lib is torch:
            a, b = h.chunk(2, dim=1)
            h = torch.tanh(a) * torch.sigmoid(b)
        else:
            h = F_.gated_activation(h)
        return linear(h.reshape(4, -1)).sum()

    tg.manual_seed(0)
    ours_lin = nn.utils.spectral_norm(nn.Linear(18, 1, bias=False).double())
    ours_lin.weight_orig.copy_(lin_w)
    theirs_lin = torch.nn.utils.spectral_norm(torch.nn.Linear(18, 1, bias=False).double())
    with torch.no_grad():
        theirs_lin.weight_orig.copy_(torch.tensor(lin_w))
        theirs_lin.weight_u.copy_(torch.tensor(ours_lin.weight_u.numpy()))
        theirs_lin.weight_v.copy_(torch.tensor(ours_lin.weight_v.numpy()))

    xs, ws, bs = f64(x), f64(bn_w), f64(bn_b)
    (gx,) = tg.grad(critic(tg, F, xs, ours_lin, ws, bs), [xs], create_graph=True)
    penalty = ((gx * gx).sum() - 1.0) ** 2
    ours = tg.grad(penalty, [ws, bs, ours_lin.weight_orig])

    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, bn_w, bn_b))
    (tgx,) = torch.autograd.grad(critic(torch, torch.nn.functional, tx, theirs_lin, tw, tb),
                                 [tx], create_graph=True)
    tpen = ((tgx * tgx).sum() - 1.0) ** 2
    theirs = torch.autograd.grad(tpen, [tw, tb, theirs_lin.weight_orig])
    np.testing.assert_allclose(penalty.item(), tpen.item(), rtol=1e-10)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-8, atol=1e-12)
