"""WaveNet generation speed on the CPU: Fast WaveNet with the numba step kernel, Fast
WaveNet with the numpy reference step, and naive recomputation.

    python -m benchmarks.wavenet_generation [--naive-samples 10] [--lengths 1000 16000]
                                            [--batch 8]

A 20-layer WaveNet (dilations 1..512 twice, 64 residual / 128 skip channels, 256
classes, receptive field 2047, float32) generates 1,000 and 16,000 samples with the
per-layer ring buffers (O(layers) per sample), once with each CPU implementation of the
step (``tinygen.backend.kernels`` family "wavenet": "numba", "reference").  The naive
path recomputes the forward over the whole receptive field for every sample; its
per-sample cost is constant once the history is longer than the receptive field, so
it is timed on ``--naive-samples`` samples drawn after a warm-up history of
``receptive_field`` samples and EXTRAPOLATED linearly to 1,000 and 16,000 (the output
says so).  ``--batch B`` also times B sequences drawn together by the numba kernel.
"""
import argparse
import time

import numpy as np

from tinygen import no_grad
from tinygen.backend.kernels import use_impl
from tinygen.models.wavenet import WaveNet
from tinygen.models.wavenet.model import sample_codes


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=20)
    p.add_argument("--residual", type=int, default=64)
    p.add_argument("--skip", type=int, default=128)
    p.add_argument("--naive-samples", type=int, default=10)
    p.add_argument("--lengths", type=int, nargs="+", default=[1000, 16000])
    p.add_argument("--batch", type=int, default=0, help="also time B sequences at once")
    args = p.parse_args()

    m = WaveNet(args.layers, tuple(2 ** i for i in range(10)), args.residual, args.skip)
    m.reset_parameters(np.random.default_rng(0))
    rf = m.receptive_field
    print(f"WaveNet: {args.layers} layers, {args.residual} residual / {args.skip} skip "
          f"channels, receptive field {rf}, float32, CPU")

    fast = {}
    for impl, label in (("numba", "fast, numba kernel"), ("reference", "fast, numpy step")):
        with use_impl(impl):
            m.generate(10, np.random.default_rng(0))             # compile / warm up
            for n in args.lengths:
                seconds = timed(lambda: m.generate(n, np.random.default_rng(0)))
                fast[impl, n] = seconds
                print(f"{label:<20} {n:>6} samples: {seconds:8.2f} s  "
                      f"{n / seconds:10.1f} samples/s")
    if args.batch > 1:
        n = args.lengths[0]
        m.generate(10, np.random.default_rng(0), n_sequences=args.batch)
        seconds = timed(lambda: m.generate(n, np.random.default_rng(0),
                                           n_sequences=args.batch))
        print(f"{'fast, numba, B=' + str(args.batch):<20} {n:>6} samples each: {seconds:8.2f} s"
              f"  {args.batch * n / seconds:10.1f} samples/s in all")

    # naive: a full receptive-field window per sample.  Steady-state cost measured with a
    # full window, so give it a history of rf samples first (not timed).
    with no_grad():
        drawn = m.generate(rf, np.random.default_rng(1))
        history = [None] + [np.array([c]) for c in drawn[:-1]]
        step = m._naive_stepper(1, None, None, history)
        previous = np.array([drawn[-1]])
        rng = np.random.default_rng(2)
        previous = sample_codes(step(previous), 1.0, rng.random(1))   # warm-up, not timed
        start = time.perf_counter()
        for _ in range(args.naive_samples):
            previous = sample_codes(step(previous), 1.0, rng.random(1))
        per_sample = (time.perf_counter() - start) / args.naive_samples
    print(f"naive: measured {args.naive_samples} samples with a full {rf}-sample window: "
          f"{per_sample * 1e3:.1f} ms/sample = {1 / per_sample:.2f} samples/s")
    for n in args.lengths:
        # the first rf samples have shorter windows, so this slightly over-estimates
        naive_total = per_sample * n
        print(f"naive  {n:>6} samples: {naive_total:8.1f} s (EXTRAPOLATED from "
              f"{args.naive_samples} samples)  speed-up of fast numba: "
              f"{naive_total / fast['numba', n]:.0f}x, of fast numpy: "
              f"{naive_total / fast['reference', n]:.0f}x")
    for n in args.lengths:
        print(f"numba kernel vs numpy step at {n} samples: "
              f"{fast['reference', n] / fast['numba', n]:.1f}x")


if __name__ == "__main__":
    main()
