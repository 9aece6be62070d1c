"""Every CUDA kernel once, on small odd shapes, float32 and float64, NVRTC and AOT:
the program that compute-sanitizer runs (``benchmarks/gpu_session.sh``).

    compute-sanitizer --tool memcheck python -m benchmarks.check_kernels

The calls are the rows of ``benchmarks.kernels`` at their 'tiny' size (every family:
dense, strided, transposed, masked, gated-stack and causal convolutions in all three
directions, batchnorm, power iteration, gated activation, the WaveNet step), each
compared with the cuDNN / PyTorch result.  cupy's memory pool is switched off first, so
that every array is an allocation of its own and memcheck sees any access past its end.
Exits 1 if a result differs or a call fails, 2 without a GPU.
"""
import argparse
import sys

import numpy as np

from benchmarks._kernel_workloads import Env, workloads
from benchmarks.kernels import _available_impls, compare, gpu_missing_reason

# (relative L2 error, largest absolute error over the largest value) allowed
TOLERANCE = {np.dtype(np.float32): (1e-4, 1e-3), np.dtype(np.float64): (1e-10, 1e-9)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--impl", nargs="*", default=["nvrtc", "aot"], choices=("nvrtc", "aot"))
    args = parser.parse_args(argv)
    reason = gpu_missing_reason()
    if reason:
        print(f"benchmarks.check_kernels needs a CUDA GPU: {reason}", file=sys.stderr)
        return 2
    import cupy as cp
    import torch

    from tinygen.backend import kernels as K

    cp.cuda.set_allocator(None)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    failures = 0
    for impl in _available_impls(args.impl):
        for dtype in (np.float32, np.float64):
            env = Env(cp, torch, "cuda", dtype)
            for workload in workloads("tiny"):
                label = f"{impl} {np.dtype(dtype).name} {workload.name}"
                try:
                    case = workload.build(env, np.random.default_rng(0))
                    with K.use_impl(impl, device="cuda"):
                        ours = case.ours()
                    cp.cuda.Device().synchronize()
                    rel_l2, max_abs = compare(ours, case.expected(case.theirs()), env)
                except Exception as exc:
                    print(f"FAILED   {label}: {type(exc).__name__}: {exc}", flush=True)
                    failures += 1
                    continue
                rel_tolerance, abs_tolerance = TOLERANCE[np.dtype(dtype)]
                ok = rel_l2 <= rel_tolerance and max_abs <= abs_tolerance
                failures += not ok
                print(f"{'ok' if ok else 'MISMATCH':<8} {label}: relative L2 error {rel_l2:.1e}, "
                      f"max-abs error {max_abs:.1e}", flush=True)
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
