"""WaveNet generation speed: Fast-WaveNet queues vs naive recomputation (CPU).

    python -m benchmarks.wavenet_generation [--naive-samples 10] [--lengths 1000 16000]

A 20-layer WaveNet (dilations 1..512 twice, 64 residual / 128 skip channels, 256
classes, receptive field 2047) generates 1,000 and 16,000 samples with the per-layer
queues (O(layers) per sample).  The naive path recomputes the forward over the whole
receptive field for every sample; its per-sample cost is constant once the history is
longer than the receptive field, so it is timed on ``--naive-samples`` samples drawn
after a warm-up history of ``receptive_field`` samples and EXTRAPOLATED linearly to
1,000 and 16,000 (the script says so in its output).
"""
import argparse
import time

import numpy as np

from tinygen.models.wavenet import WaveNet


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=20)
    p.add_argument("--residual", type=int, default=64)
    p.add_argument("--skip", type=int, default=128)
    p.add_argument("--naive-samples", type=int, default=10)
    p.add_argument("--lengths", type=int, nargs="+", default=[1000, 16000])
    args = p.parse_args()

    m = WaveNet(args.layers, tuple(2 ** i for i in range(10)), args.residual, args.skip)
    m.reset_parameters(np.random.default_rng(0))
    rf = m.receptive_field
    print(f"WaveNet: {args.layers} layers, {args.residual} residual / {args.skip} skip "
          f"channels, receptive field {rf}, float32, CPU")

    fast = {}
    for n in args.lengths:
        start = time.perf_counter()
        m.generate(n, np.random.default_rng(0))
        fast[n] = time.perf_counter() - start
        print(f"fast   {n:>6} samples: {fast[n]:8.2f} s  {n / fast[n]:10.1f} samples/s")

    # naive: a full receptive-field window per sample.  Steady-state cost measured with a
    # full window, so give it a history of rf samples first (not timed).
    from tinygen import no_grad
    from tinygen.models.wavenet.model import _sample
    with no_grad():
        history = [None] + [int(c) for c in m.generate(rf, np.random.default_rng(1))]
        step = m._naive_stepper(None, history[:-1])
        previous = history[-1]
        rng = np.random.default_rng(2)
        start = time.perf_counter()
        for _ in range(args.naive_samples):
            previous = _sample(step(previous), 1.0, rng.random())
        per_sample = (time.perf_counter() - start) / args.naive_samples
    print(f"naive: measured {args.naive_samples} samples with a full {rf}-sample window: "
          f"{per_sample * 1e3:.1f} ms/sample = {1 / per_sample:.2f} samples/s")
    for n in args.lengths:
        # the first rf samples have shorter windows, so this slightly over-estimates
        naive_total = per_sample * n
        print(f"naive  {n:>6} samples: {naive_total:8.1f} s (EXTRAPOLATED from "
              f"{args.naive_samples} samples)  speed-up of fast: {naive_total / fast[n]:.0f}x")


if __name__ == "__main__":
    main()
