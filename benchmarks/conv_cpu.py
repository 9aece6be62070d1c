"""Convolution forward+backward on the CPU: tinygen's numba kernels, its numpy
reference, and PyTorch, on model-like shapes (float32).

Workloads (each: forward, then backward of a random upstream gradient to the
input and the weight):
  * conv2d 3x3, N=32, 64->64 channels, 28x28, padding 1 (a DCGAN/VAE body layer);
  * PixelCNN's first layer: 7x7 mask A, 1->64 channels, N=32, 28x28 -- computed
    over its 24 kept taps; the same conv with a dense 7x7 weight for comparison;
  * WaveNet's causal conv1d: k=2, dilation 8, 64->64 channels, N=4, L=4000.

    python -m benchmarks.conv_cpu [--repeat 10] [--threads 2] [--skip-reference]

Prints the best-of-N milliseconds and the ratios numba/torch and reference/numba
(lower is better for tinygen in the first).  Needs torch (CPU build) for the
torch column; it is left blank without it.
"""
import argparse
import os
import platform


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip-reference", action="store_true",
                        help="do not time the (slow) numpy reference")
    return parser


from benchmarks._timing import pin_threads  # noqa: E402  (standard library only)

pin_threads(_parser(), __name__ == "__main__")

import numpy as np  # noqa: E402

from benchmarks._timing import time_ms  # noqa: E402


def _workloads(rng):
    f32 = np.float32
    return [
        dict(name="conv2d 3x3 N32 64->64 28x28 pad1", kind="conv2d",
             x=rng.standard_normal((32, 64, 28, 28)).astype(f32),
             w=(rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(f32), kwargs=dict(padding=1)),
        dict(name="masked 7x7 A N32 1->64 28x28 (24 taps)", kind="masked",
             x=rng.standard_normal((32, 1, 28, 28)).astype(f32),
             w=(rng.standard_normal((64, 1, 7, 7)) * 0.1).astype(f32), kwargs=dict(mask_type="A")),
        dict(name="dense 7x7 N32 1->64 28x28 (49 taps)", kind="conv2d",
             x=rng.standard_normal((32, 1, 28, 28)).astype(f32),
             w=(rng.standard_normal((64, 1, 7, 7)) * 0.1).astype(f32), kwargs=dict(padding=3)),
        dict(name="causal conv1d k2 d8 N4 64->64 L4000", kind="causal",
             x=rng.standard_normal((4, 64, 4000)).astype(f32),
             w=(rng.standard_normal((64, 64, 2)) * 0.1).astype(f32), kwargs=dict(dilation=8)),
    ]


def _tinygen_step(tg, C, load):
    x = tg.tensor(load["x"], requires_grad=True)
    w = tg.tensor(load["w"], requires_grad=True)
    kind, kwargs = load["kind"], load["kwargs"]

    def forward():
        if kind == "conv2d":
            return C.conv2d(x, w, **kwargs)
        if kind == "masked":
            return C.masked_conv2d(x, w, **kwargs)
        return C.causal_conv1d(x, w, **kwargs)

    g = None

    def step():
        nonlocal g
        y = forward()
        if g is None:
            g = tg.tensor(np.random.default_rng(1).standard_normal(y.shape).astype(np.float32))
        return tg.grad(y, (x, w), grad_outputs=g)

    return step


def _torch_step(torch, C, load):
    TF = torch.nn.functional
    x = torch.tensor(load["x"], requires_grad=True)
    w = torch.tensor(load["w"], requires_grad=True)
    kind, kwargs = load["kind"], load["kwargs"]
    if kind == "masked":
        mask = torch.tensor(C.pixelcnn_mask(7, kwargs["mask_type"], 1, 64))

    def forward():
        if kind == "conv2d":
            return TF.conv2d(x, w, **kwargs)
        if kind == "masked":
            return TF.conv2d(x, w * mask, padding=3)
        d = kwargs["dilation"]
        return TF.conv1d(TF.pad(x, [d * (w.shape[2] - 1), 0]), w, dilation=d)

    g = None

    def step():
        nonlocal g
        y = forward()
        if g is None:
            g = torch.tensor(np.random.default_rng(1).standard_normal(tuple(y.shape))
                             .astype(np.float32))
        return torch.autograd.grad(y, (x, w), grad_outputs=g)

    return step


def main(argv=None):
    args = _parser().parse_args(argv)

    import numba

    import tinygen as tg
    from tinygen.ops import conv as C
    from tinygen.backend.kernels import use_impl

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    rng = np.random.default_rng(0)
    rows = []
    for load in _workloads(rng):
        step = _tinygen_step(tg, C, load)
        with use_impl("numba"):
            fast = time_ms(step, args.repeat, warmup=2, statistic='min')
            fast_grads = step()
        reference = None
        if not args.skip_reference:
            with use_impl("reference"):
                reference = time_ms(step, max(1, args.repeat // 3), warmup=1, statistic='min')
                ref_grads = step()
            for a, b in zip(fast_grads, ref_grads):  # same numbers first
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-3)
        theirs = None
        if torch is not None:
            theirs = time_ms(_torch_step(torch, C, load), args.repeat, warmup=2, statistic='min')
        rows.append((load["name"], fast, reference, theirs))

    print(f"# tinygen {tg.__version__} conv (numba {numba.__version__}) vs numpy reference vs "
          f"PyTorch {torch.__version__ if torch else '-'} (CPU), float32 fwd+bwd, "
          f"{args.threads} thread(s), {platform.processor() or platform.machine()}")
    title = f"workload (best of {args.repeat})"
    print(f"{title:<42} {'numba ms':>9} {'ref ms':>9} {'torch ms':>9} "
          f"{'numba/torch':>11} {'ref/numba':>9}")

    def fmt(v, spec):
        return format(v, spec) if v is not None else format("-", spec.split(".")[0] + "s")

    for name, fast, reference, theirs in rows:
        print(f"{name:<42} {fast:>9.2f} {fmt(reference, '>9.1f')} {fmt(theirs, '>9.2f')} "
              f"{fmt(fast / theirs if theirs else None, '>11.2f')} "
              f"{fmt(reference / fast if reference else None, '>9.1f')}")


if __name__ == "__main__":
    main()
