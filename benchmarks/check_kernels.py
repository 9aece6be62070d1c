"""Every CUDA kernel against a float64 reference, in both precisions and on both load
paths: the GPU correctness check of ``benchmarks/gpu_session.sh``, and the program that
compute-sanitizer runs there.

    python -m benchmarks.check_kernels [--size tiny odd] [--impl nvrtc aot]
                                       [--no-poison] [--json PATH]
    compute-sanitizer --tool memcheck python -m benchmarks.check_kernels --size tiny

The calls are the rows of ``benchmarks.kernels`` (every family: dense, strided,
transposed, masked, gated-stack and causal convolutions in all three directions, batch
norm, power iteration, gated activation, the WaveNet step) at size 'tiny' (a few
elements) and 'odd' (odd sizes past the tile edges: 37 channels, 13x11 images, many K
slices).  For each row and dtype:

- the reference is the row's PyTorch side run on the CPU in float64, on the very
  inputs ours gets (for a float32 row they are rounded to float32 first, then widened,
  so that input rounding is not counted against float32).  It runs on the CPU so that
  it is independent of the GPU and so that compute-sanitizer sees (almost) only our
  kernels: on the GPU only our kernels and cupy's copies run;
- ours must match it to a largest error over the largest reference value of 1e-10 in
  float64 and 1e-5 in float32 (the emulator kernel tests' tolerances);
- ours runs twice on the same inputs and must give the same bits both times (a result
  that moves between runs is a race), and the NVRTC and AOT paths must give the same
  bits (they are compiled with the same flags; tests/backend/cuda/test_nvrtc_codegen.py).

Every device allocation of ours is a cudaMalloc of its own (no pool, so that memcheck
sees an access past an array's end) filled with 0xFF bytes, a NaN in both dtypes: an
output element a kernel forgot to write fails the check (``--no-poison`` for
initcheck, which the fill would blind).

Without a GPU, ``--device cpu`` runs the same check on the CPU emulator against
PyTorch CPU (impl 'emulator'); that is how the test suite exercises this file.
Exits 1 if any check fails, 2 without a GPU.
"""
import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks._kernel_workloads import Env, workloads
from benchmarks.kernels import _available_impls, compare, gpu_missing_reason

# largest |ours - reference| over the largest |reference|, per dtype of ours
TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


class RoundedEnv(Env):
    """An Env whose floating arrays are first rounded to float32: the float64
    reference of a float32 row then sees exactly the float32 row's inputs."""

    def array(self, host):
        host = np.asarray(host)
        if host.dtype.kind == "f":
            host = host.astype(np.float32).astype(self.dtype)
        return super().array(host)


def _host(value, env):
    values = value if isinstance(value, tuple) else (value,)
    return tuple(np.array(env.to_numpy(v)) for v in values)


def same_bits(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and x.dtype == y.dtype
                                    and x.tobytes() == y.tobytes() for x, y in zip(a, b))


def reference_env(torch, dtype, rounded):
    """The CPU Env the reference runs in (numpy arrays, PyTorch on the CPU)."""
    return (RoundedEnv if rounded else Env)(np, torch, "cpu", dtype)


def check_row(workload, env_for, torch, impls, use_impl, sync, seed=0):
    """One row in float64 and float32: a record per dtype with the error of each impl
    against the float64 CPU reference, whether each impl repeated its bits, and whether
    the impls agreed bit for bit.  ``env_for(dtype)`` makes the Env ours runs in."""
    records = []
    for dtype in (np.float64, np.float32):
        record = {"row": workload.name, "family": workload.family, "phase": workload.phase,
                  "dtype": np.dtype(dtype).name, "tolerance": TOLERANCE[np.dtype(dtype)]}
        try:
            ref_env = reference_env(torch, np.float64, dtype == np.float32)
            ref_case = workload.build(ref_env, np.random.default_rng(seed))
            reference = _host(ref_case.expected(ref_case.theirs()), ref_env)
            env = env_for(dtype)
            case = workload.build(env, np.random.default_rng(seed))
            outputs = {}
            for impl in impls:
                runs = []
                for _ in range(2):
                    with use_impl(impl):
                        result = case.ours()
                    sync()
                    runs.append(_host(result, env))
                outputs[impl] = runs[0]
                # the largest |ours - reference| over the largest |reference| (inf for a
                # missing or non-finite output): benchmarks.kernels.compare's second value
                record[f"{impl}_error"] = compare(runs[0], reference, ref_env)[1]
                record[f"{impl}_repeatable"] = same_bits(runs[0], runs[1])
            first = outputs[impls[0]]
            record["impls_same_bits"] = all(same_bits(first, o) for o in outputs.values())
            record["ok"] = (all(record[f"{i}_error"] <= record["tolerance"] for i in impls)
                            and all(record[f"{i}_repeatable"] for i in impls)
                            and record["impls_same_bits"])
        except Exception as exc:  # noqa: BLE001 - a failing call is a result to report
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["ok"] = False
        records.append(record)
    return records


def describe(record, impls):
    if "error" in record:
        return f"FAILED   {record['row']} {record['dtype']}: {record['error']}"
    parts = [f"{impl} {record[f'{impl}_error']:.1e}"
             + ("" if record[f"{impl}_repeatable"] else " (bits moved between runs)")
             for impl in impls]
    if len(impls) > 1:
        parts.append("paths bit-equal" if record["impls_same_bits"] else "PATHS DIFFER")
    status = "ok" if record["ok"] else "MISMATCH"
    return (f"{status:<8} {record['row']} {record['dtype']} (tol {record['tolerance']:.0e}): "
            + ", ".join(parts))


def _poisoning_allocator(cp):
    """A cudaMalloc per allocation, filled with 0xFF bytes (NaN in float32 and float64)."""
    def allocate(size):
        memory = cp.cuda.Memory(size)
        if size:
            cp.cuda.runtime.memset(memory.ptr, 0xFF, size)
        return cp.cuda.MemoryPointer(memory, 0)
    return allocate


def _install_poison(cp):
    """Make the poisoning allocator cupy's, after checking that it works (a new array
    reads as NaN); if it does not, say so and keep plain allocations."""
    try:
        cp.cuda.set_allocator(_poisoning_allocator(cp))
        probe = cp.empty(3, dtype=cp.float32)
        if not bool(cp.isnan(probe).all()):
            raise RuntimeError("a new array did not read as NaN")
        return True
    except Exception as exc:  # noqa: BLE001 - the check still runs, unpoisoned
        cp.cuda.set_allocator(None)
        print(f"# poisoning allocator unavailable ({type(exc).__name__}: {exc}); "
              "plain allocations", flush=True)
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", nargs="+", default=["tiny", "odd"], choices=("tiny", "odd"))
    parser.add_argument("--impl", nargs="*", default=["nvrtc", "aot"], choices=("nvrtc", "aot"))
    parser.add_argument("--only", nargs="*", default=[], metavar="TEXT",
                        help="rows whose name contains any of these")
    parser.add_argument("--no-poison", dest="poison", action="store_false",
                        help="plain allocations (for compute-sanitizer's initcheck)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the CUDA emulator against PyTorch CPU (a dry run)")
    parser.add_argument("--json", type=Path, help="write every record here")
    args = parser.parse_args(argv)
    from tinygen.backend import kernels as K

    if args.device == "cuda":
        reason = gpu_missing_reason()
        if reason:
            print(f"benchmarks.check_kernels needs a CUDA GPU: {reason}", file=sys.stderr)
            return 2
        import cupy as cp
        import torch

        cp.cuda.set_allocator(None)
        if args.poison:
            args.poison = _install_poison(cp)
        xp, impls = cp, _available_impls(args.impl)
        sync = cp.cuda.Device().synchronize

        def use_impl(impl):
            return K.use_impl(impl, device="cuda")
    else:
        import torch

        xp, impls, sync = np, ["emulator"], lambda: None

        def use_impl(impl):
            return contextlib.nullcontext()

    def env_for(dtype):
        return Env(xp, torch, args.device, dtype)

    records = []
    for size in args.size:
        for workload in workloads(size):
            if args.only and not any(text in workload.name for text in args.only):
                continue
            for record in check_row(workload, env_for, torch, impls, use_impl, sync):
                record["size"] = size
                records.append(record)
                print(describe(record, impls), flush=True)
    failures = sum(not r["ok"] for r in records)
    print(f"{len(records)} checks ({len(records) // 2} rows x 2 dtypes, impls {', '.join(impls)}), "
          f"{failures} failure(s)")
    if args.json:
        args.json.write_text(json.dumps({"impls": impls, "poison": args.poison,
                                         "records": records}, indent=1) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
