"""Real behaviour: a small MLP learns a separable two-class problem with Adam."""
import time

import numpy as np

import tinygen as tg
from tinygen import nn, optim
from tinygen.nn import functional as F


def _two_moons_like(n, rng):
    """Two interleaved noisy arcs: separable, but not by a line."""
    t = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.where(label == 0, np.cos(t), 1 - np.cos(t))
    y = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
    points = np.stack([x, y], axis=1) + rng.normal(0, 0.08, (n, 2))
    return points.astype(np.float32), label.astype(np.int64)


def test_mlp_reaches_high_accuracy_with_adam():
    start = time.perf_counter()
    tg.manual_seed(0)
    rng = np.random.default_rng(0)
    x_np, y_np = _two_moons_like(256, rng)
    x, y = tg.tensor(x_np), tg.tensor(y_np)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(300):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with tg.no_grad():
        x_test, y_test = _two_moons_like(512, rng)
        accuracy = (model(tg.tensor(x_test)).numpy().argmax(1) == y_test).mean()
    assert accuracy > 0.95, accuracy
    assert losses[-1] < 0.25 * losses[0]
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert time.perf_counter() - start < 5.0  # typically well under 1 s
