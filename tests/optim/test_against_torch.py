"""Each optimizer's trajectory on a least-squares problem matches torch.optim (float64)."""
import numpy as np
import pytest

import tinygen as tg
from tinygen import nn, optim

torch = pytest.importorskip("torch")

STEPS = 20
RNG = np.random.default_rng(42)
A = RNG.normal(size=(10, 3))
B = RNG.normal(size=(10, 2))
W0 = RNG.normal(size=(3, 2))
C0 = RNG.normal(size=(2,))


def _loss_tg(w, c):
    r = tg.tensor(A) @ w + c - tg.tensor(B)
    return (r * r).mean()


def _loss_torch(w, c):
    r = torch.tensor(A) @ w + c - torch.tensor(B)
    return (r * r).mean()


def trajectory_tg(name, kwargs, groups=False):
    w, c = nn.Parameter(W0.copy()), nn.Parameter(C0.copy())
    params = [{"params": [w]}, {"params": [c], "lr": 0.05}] if groups else [w, c]
    opt = getattr(optim, name)(params, **kwargs)
    out = []
    for _ in range(STEPS):
        opt.zero_grad()
        _loss_tg(w, c).backward()
        opt.step()
        out.append(np.concatenate([w.numpy().ravel(), c.numpy()]))
    return np.array(out)


def trajectory_torch(name, kwargs, groups=False):
    w = torch.nn.Parameter(torch.tensor(W0.copy()))
    c = torch.nn.Parameter(torch.tensor(C0.copy()))
    params = [{"params": [w]}, {"params": [c], "lr": 0.05}] if groups else [w, c]
    opt = getattr(torch.optim, name)(params, **kwargs)
    out = []
    for _ in range(STEPS):
        opt.zero_grad()
        _loss_torch(w, c).backward()
        opt.step()
        out.append(np.concatenate([w.detach().numpy().ravel(), c.detach().numpy()]))
    return np.array(out)


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.1)),
    ("Adam", dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.1, weight_decay=0.1)),
    ("Adam", dict(lr=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.1, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("AdamW", dict(lr=0.1)),
    ("AdamW", dict(lr=0.1, weight_decay=0.3, amsgrad=True)),
    ("AdamW", dict(lr=0.1, weight_decay=0.3, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.7)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, weight_decay=0.1, maximize=True)),
]


@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_trajectory_matches_torch(name, kwargs):
    ours = trajectory_tg(name, kwargs)
    theirs = trajectory_torch(name, kwargs)
    assert not np.allclose(ours[0], ours[-1])  # the parameters actually moved
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_param_groups_match_torch(name):
    kwargs = {"lr": 0.01, "momentum": 0.9} if name in ("SGD", "RMSprop") else {"lr": 0.01}
    ours = trajectory_tg(name, kwargs, groups=True)
    theirs = trajectory_torch(name, kwargs, groups=True)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_defaults_match_torch():
    p = [nn.Parameter(tg.zeros(1))]
    tp = [torch.nn.Parameter(torch.zeros(1))]
    for name in ("SGD", "Adam", "AdamW", "RMSprop"):
        ours = getattr(optim, name)(p).defaults
        theirs = getattr(torch.optim, name)(tp).defaults
        for key, value in ours.items():
            assert theirs[key] == value, (name, key)
