"""PixelCNN sampling speed on the CPU: naive, windowed and (gated) incremental sampling.

    python -m benchmarks.pixelcnn_sampling [--batch 16] [--naive-pixels 2]
        [--windowed-rows 1] [--threads 2]

Two untrained 28x28, one-channel, 256-way softmax models in float32 (the time does not
depend on the weights): the gated PixelCNN (hidden 64, 10 layers) and the masked
PixelCNN (hidden 64, 5 residual blocks).  A batch of ``--batch`` images is drawn with
each of the samplers of ``tinygen.models.pixelcnn.sampling``:

* incremental (gated only; its ``fast=True``): the whole batch, timed as it is.
* windowed (the masked model's ``fast=True``): the bottom ``--windowed-rows`` rows
  (``complete`` given the rows above), EXTRAPOLATED to all rows (the output says so).
  Rows within ``receptive_rows`` of the top have smaller windows, so this is an upper
  bound of the whole batch's time (0 times the whole batch instead).
* naive (the whole network on the whole image per pixel): its cost is the same at
  every pixel, so ``--naive-pixels`` outputs are timed and EXTRAPOLATED to all pixels.

Prints seconds per image batch and the speed-ups, and whether the windowed and the
incremental samplers completed the bottom rows identically (float32: they would differ
only if rounding moved a draw across a bin edge).
"""
import argparse
import os
import platform


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--naive-pixels", type=int, default=2)
    parser.add_argument("--windowed-rows", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    return parser


from benchmarks._timing import pin_threads  # noqa: E402  (standard library only)

pin_threads(_parser(), __name__ == "__main__")

import time  # noqa: E402

import numpy as np  # noqa: E402

from tinygen.models.pixelcnn import GatedPixelCNN, PixelCNN  # noqa: E402
from tinygen.models.pixelcnn.sampling import Naive  # noqa: E402

MODELS = [("gated PixelCNN, hidden 64, 10 layers", lambda: GatedPixelCNN(1, 64, 10)),
          ("masked PixelCNN, hidden 64, 5 residual blocks", lambda: PixelCNN(1, 64, 5))]


def _seconds(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _time_naive(model, images, pixels):
    """Seconds per batch, extrapolated from ``pixels`` outputs in the bottom row."""
    H, W = model.image_size
    naive = Naive(model, images, None)
    naive.at(H - 1, 0)                                       # warm-up, not timed
    seconds, _ = _seconds(lambda: [naive.at(H - 1, c) for c in range(1, pixels + 1)])
    return seconds / pixels * H * W * model.channels


def _time_windowed(model, images, rows, generator):
    """Seconds per batch (extrapolated from the bottom ``rows`` rows unless 0) and the
    completed images."""
    H = model.image_size[0]
    if rows == 0:
        return _seconds(lambda: model.sample(len(images), generator, fast="windowed"))
    seconds, done = _seconds(lambda: model.complete(images, H - rows, generator,
                                                    fast="windowed"))
    return seconds / rows * H, done


def main():
    args = _parser().parse_args()
    print(f"PixelCNN sampling, batch {args.batch}, 28x28x1, 256-way softmax, float32, "
          f"{args.threads} threads, {platform.machine()}; load average "
          f"{os.getloadavg()[0]:.1f} (shared machine)")
    for name, build in MODELS:
        model = build()
        model.reset_parameters(np.random.default_rng(0))
        H = model.image_size[0]
        rows = args.windowed_rows
        images = np.random.default_rng(1).integers(0, 256, (args.batch, 1, 28, 28),
                                                   dtype=np.uint8)
        for fast in model.samplers[1:]:                       # warm-up (numba compiles)
            model.complete(images[:1], H - 1, np.random.default_rng(2), fast=fast)
        print(f"\n{name}: receptive_rows {model.receptive_rows}")
        times = {"naive": _time_naive(model, images, args.naive_pixels)}
        print(f"  naive        {times['naive']:9.1f} s/batch  (EXTRAPOLATED from "
              f"{args.naive_pixels} pixels' full-image passes)")
        times["windowed"], windowed = _time_windowed(model, images, rows,
                                                     np.random.default_rng(3))
        note = ("" if rows == 0 else f"  (EXTRAPOLATED from the bottom {rows} rows; an "
                "upper bound: rows near the top have smaller windows)")
        print(f"  windowed     {times['windowed']:9.1f} s/batch{note}")
        if "incremental" in model.samplers:
            times["incremental"], _ = _seconds(
                lambda: model.sample(args.batch, np.random.default_rng(3), fast=True))
            print(f"  incremental  {times['incremental']:9.1f} s/batch  (measured, whole "
                  "batch)")
            if rows:
                same = model.complete(images, H - rows, np.random.default_rng(3),
                                      fast="incremental")
                print(f"  bottom {rows} rows drawn identically by windowed and incremental: "
                      f"{np.array_equal(same, windowed)}")
        fastest = model.samplers[-1]
        print(f"  speed-up over naive: windowed {times['naive'] / times['windowed']:.1f}x"
              + (f", incremental {times['naive'] / times['incremental']:.0f}x, "
                 f"incremental over windowed {times['windowed'] / times['incremental']:.1f}x"
                 if fastest == "incremental" else ""))


if __name__ == "__main__":
    main()
