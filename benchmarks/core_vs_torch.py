"""Forward+backward time of tinygen's core against PyTorch CPU, side by side.

Two workloads, each run by both engines in the same process on the same data:
  * an MLP training step's forward+backward (784-256-256-10, ReLU, softmax
    cross-entropy, batch 128, float32);
  * a chain of 100 elementwise ops on a (256, 256) tensor (the per-op
    overhead of the engine dominates), forward+backward.

    python -m benchmarks.core_vs_torch [--repeat 50] [--threads 2]

Prints the median times and the ratio tinygen / PyTorch (lower is better for
tinygen).  Needs ``pip install torch==2.13.0`` (CPU build).
"""
import argparse
import os
import platform

import numpy as np

from benchmarks._timing import time_ms


def mlp_step_tinygen(tg, params, x, y):
    w1, b1, w2, b2, w3, b3 = params

    def step():
        for p in params:
            p.grad = None
        h = (x @ w1 + b1).relu()
        h = (h @ w2 + b2).relu()
        loss = tg.cross_entropy(h @ w3 + b3, y)
        loss.backward()
        return loss

    return step


def mlp_step_torch(torch, params, x, y):
    w1, b1, w2, b2, w3, b3 = params

    def step():
        for p in params:
            p.grad = None
        h = torch.relu(x @ w1 + b1)
        h = torch.relu(h @ w2 + b2)
        loss = torch.nn.functional.cross_entropy(h @ w3 + b3, y)
        loss.backward()
        return loss

    return step


def chain(lib_ops, x, n_ops=100):
    """n_ops elementwise ops cycling through mul, add, tanh, sigmoid, exp-scaled."""
    y = x
    for i in range(n_ops // 4):
        y = y * 0.9
        y = y + 0.1
        y = lib_ops.tanh(y)
        y = lib_ops.sigmoid(y)
    return y.sum()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)

    import torch

    import tinygen as tg

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    shapes = [(784, 256), (256,), (256, 256), (256,), (256, 10), (10,)]
    arrays = [(rng.standard_normal(s) * (0.05 if len(s) == 2 else 0.0)).astype(np.float32)
              for s in shapes]
    xb = rng.standard_normal((128, 784)).astype(np.float32)
    yb = rng.integers(0, 10, 128)

    tg_params = [tg.tensor(a, requires_grad=True) for a in arrays]
    th_params = [torch.tensor(a, requires_grad=True) for a in arrays]
    tg_step = mlp_step_tinygen(tg, tg_params, tg.tensor(xb), tg.tensor(yb))
    th_step = mlp_step_torch(torch, th_params, torch.tensor(xb), torch.tensor(yb))
    # Same numbers first: the comparison is only meaningful if both compute the same thing.
    np.testing.assert_allclose(tg_step().item(), th_step().item(), rtol=1e-4)
    np.testing.assert_allclose(tg_params[0].grad.numpy(), th_params[0].grad.numpy(),
                               rtol=1e-3, atol=1e-6)

    xc = rng.standard_normal((256, 256)).astype(np.float32)
    tg_x = tg.tensor(xc, requires_grad=True)
    th_x = torch.tensor(xc, requires_grad=True)

    def tg_chain():
        tg_x.grad = None
        chain(tg, tg_x).backward()

    def th_chain():
        th_x.grad = None
        chain(torch, th_x).backward()

    rows = [
        ("MLP 784-256-256-10 fwd+bwd, batch 128", time_ms(tg_step, args.repeat),
         time_ms(th_step, args.repeat)),
        ("100-op elementwise chain fwd+bwd, (256,256)", time_ms(tg_chain, args.repeat),
         time_ms(th_chain, args.repeat)),
    ]
    print(f"# tinygen {tg.__version__} vs PyTorch {torch.__version__} (CPU), numpy "
          f"{np.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}")
    print(f"{'workload':<46} {'tinygen ms':>11} {'torch ms':>9} {'ratio':>6}")
    for name, ours, theirs in rows:
        print(f"{name:<46} {ours:>11.3f} {theirs:>9.3f} {ours / theirs:>6.2f}")


if __name__ == "__main__":
    main()
