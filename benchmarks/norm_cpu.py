"""Norm-family kernels on the CPU: numba vs the numpy reference vs PyTorch.

Workloads (float32, same data for every engine, results checked equal first):
  * batch_norm training forward+backward, x (64, 64, 16, 16) with affine weight/bias;
  * one spectral-norm power-iteration step on a (512, 4608) matrix (a 512-channel
    3x3 conv's weight): v = normalize(W^T u), u = normalize(W v);
  * max_pool2d 2x2 forward+backward and gated_activation forward+backward on
    (64, 64, 16, 16) (the other hot paths of the generative models).

    python -m benchmarks.norm_cpu [--repeat 30] [--threads 2]

Prints median milliseconds and the ratios numba / torch and reference / numba.
"""
import argparse
import os
import platform

import numpy as np

from benchmarks._timing import time_ms


def _with_impl(name, fn):
    from tinygen.backend.kernels import use_impl

    def run():
        with use_impl(name):
            return fn()

    return run


def _fwd_bwd(op, x, params, g):
    """A forward+backward step; tinygen and PyTorch tensors share this API."""
    tensors = [x] + params

    def step():
        for t in tensors:
            t.grad = None
        y = op(x, *params)
        y.backward(g)
        return y, [t.grad for t in tensors]

    return step


def _check(ours, theirs, rtol=2e-3, atol=2e-4):
    y, grads = ours()
    ty, tgrads = theirs()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=rtol, atol=atol)
    for a, b in zip(grads, tgrads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=rtol, atol=atol)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)

    import numba
    import torch

    import tinygen as tg
    from tinygen.ops.normalization import batch_norm
    from tinygen.ops.pooling import max_pool2d, gated_activation
    from tinygen.ops.spectral_norm import power_iteration

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    rng = np.random.default_rng(0)
    rows = []

    # batch_norm, training mode, forward + backward
    x = (rng.standard_normal((64, 64, 16, 16)) * 2 + 0.5).astype(np.float32)
    w, b = rng.standard_normal(64).astype(np.float32), rng.standard_normal(64).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    tg_args = ([tg.tensor(x, requires_grad=True)],
               [tg.tensor(w, requires_grad=True), tg.tensor(b, requires_grad=True)], tg.tensor(g))
    th_args = ([torch.tensor(x, requires_grad=True)],
               [torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)],
               torch.tensor(g))
    tg_bn = _fwd_bwd(lambda t, wt, bt: batch_norm(t, None, None, wt, bt, True),
                             tg_args[0][0], tg_args[1], tg_args[2])
    th_bn = _fwd_bwd(lambda t, wt, bt: torch.nn.functional.batch_norm(
        t, None, None, wt, bt, True), th_args[0][0], th_args[1], th_args[2])
    _check(_with_impl("numba", tg_bn), th_bn)
    _check(_with_impl("reference", tg_bn), th_bn)
    rows.append(("batch_norm train fwd+bwd (64,64,16,16)",
                 time_ms(_with_impl("numba", tg_bn), args.repeat),
                 time_ms(_with_impl("reference", tg_bn), args.repeat),
                 time_ms(th_bn, args.repeat)))

    # power iteration step on a (512, 4608) matrix
    wm = (rng.standard_normal((512, 4608)) * 0.02).astype(np.float32)
    u0 = rng.standard_normal(512).astype(np.float32)
    v0 = rng.standard_normal(4608).astype(np.float32)
    u0 /= np.linalg.norm(u0)
    v0 /= np.linalg.norm(v0)
    tw, tu = torch.tensor(wm), torch.tensor(u0)

    def tg_power():
        return power_iteration(wm, u0, v0, 1, 1e-12)

    def th_power():
        with torch.no_grad():
            v = torch.nn.functional.normalize(torch.mv(tw.t(), tu), dim=0, eps=1e-12)
            u = torch.nn.functional.normalize(torch.mv(tw, v), dim=0, eps=1e-12)
        return u, v

    for a, c in zip(tg_power(), th_power()):
        np.testing.assert_allclose(a, c.numpy(), rtol=1e-4, atol=1e-6)
    power_ms = time_ms(tg_power, args.repeat)
    rows.append(("power iteration step (512, 4608)", power_ms, power_ms,
                 time_ms(th_power, args.repeat)))

    # max_pool2d 2x2 and gated_activation, forward + backward
    x2 = rng.standard_normal((64, 64, 16, 16)).astype(np.float32)
    for name, op, th_op, out_shape in [
        ("max_pool2d 2x2 fwd+bwd (64,64,16,16)", lambda t: max_pool2d(t, 2),
         lambda t: torch.nn.functional.max_pool2d(t, 2), (64, 64, 8, 8)),
        ("gated_activation fwd+bwd (64,64,16,16)", gated_activation,
         lambda t: torch.tanh(t[:, :32]) * torch.sigmoid(t[:, 32:]), (64, 32, 16, 16)),
    ]:
        gg = rng.standard_normal(out_shape).astype(np.float32)
        ours = _fwd_bwd(op, tg.tensor(x2, requires_grad=True), [], tg.tensor(gg))
        theirs = _fwd_bwd(th_op, torch.tensor(x2, requires_grad=True), [],
                                torch.tensor(gg))
        _check(_with_impl("numba", ours), theirs)
        rows.append((name, time_ms(_with_impl("numba", ours), args.repeat),
                     time_ms(_with_impl("reference", ours), args.repeat),
                     time_ms(theirs, args.repeat)))

    print(f"# tinygen {tg.__version__} norm kernels vs PyTorch {torch.__version__} (CPU), numba "
          f"{numba.__version__}, numpy {np.__version__}, {args.threads} thread(s), "
          f"{platform.processor() or platform.machine()}")
    print(f"{'workload':<42} {'numba ms':>9} {'ref ms':>8} {'torch ms':>9} "
          f"{'numba/torch':>11} {'ref/numba':>9}")
    for name, fast, ref, theirs in rows:
        print(f"{name:<42} {fast:>9.3f} {ref:>8.3f} {theirs:>9.3f} {fast / theirs:>11.2f} "
              f"{ref / fast:>9.2f}")
    print("(the power iteration has no numba kernel: two BLAS matrix-vector products, "
          "the same code on every device)")


if __name__ == "__main__":
    main()
