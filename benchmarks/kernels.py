"""tinygen's hand-written CUDA kernels vs cuDNN (through PyTorch), fp32, on one GPU.

    python -m benchmarks.kernels [--size full|quick] [--only TEXT ...] [--impl nvrtc aot]
                                 [--samples 15] [--inner 20] [--out benchmarks/results]

Each row (``benchmarks/_kernel_workloads.py``) is one kernel call through its family
module (``tinygen.backend.cuda_kernels.<family>``) beside the cuDNN / PyTorch call
that computes the same thing; the two results are compared before anything is timed.
Rows run on the NVRTC path and, when tinygen._C is built, on the AOT path.

How it times (``GpuTimer``): CUDA events around a batch of ``--inner`` calls, median
over ``--samples`` batches after a warm-up.  Before each batch a spin kernel holds the
GPU for longer than the host needs to queue the batch, so the events see the calls
back to back: device time, not Python's launch overhead (a row is marked ``host`` if
the host still fell behind); the host's own time per call (queueing it) is recorded
beside it.  The sides of a row (ours on each path, cuDNN's, and other baselines such
as PyTorch's default batch norm dispatch) take turns batch by batch, the first side
changing every sample, so that clock and thermal drift fall on all of them alike.

L2: every call, whichever side makes it, takes the next of several input sets in
turn; there are enough sets that the bytes of the others (their distinct working set:
every array the set allocated, not the credited bytes) exceed twice the L2 cache, so
no call finds its inputs left in L2 by an earlier one (``l2_cold`` says whether the
memory budget allowed that).  Every set's result is checked against cuDNN's (relative
L2 error and largest absolute error over the largest value) before anything is timed.

cuDNN runs with ``torch.backends.cudnn.benchmark = True`` (its fastest algorithm per
shape, chosen during warm-up) and TF32 off for convolutions and matmuls; the effective
settings are read back and recorded (``tf32``).

The roofline is measured here: device-to-device copy bandwidth (a 1 GiB cupy copy,
bytes read + written) and fp32 FMA throughput (a small FMA-bound kernel of our own);
the datasheet-style estimate SMs x clock x FP32 lanes x 2 is printed beside it.
A row's roofline fraction is max(FLOPs / FMA peak, bytes / copy bandwidth) over its
time.  The issue's goals are checked per row and summarised.

Writes ``<out>/<device-name>.md`` and ``.json``.  Needs a CUDA GPU with cupy and a CUDA
build of PyTorch; without them it says why and exits with status 2.
"""
import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from typing import NamedTuple

from benchmarks._kernel_workloads import Env, workloads

RESULTS = Path(__file__).resolve().parent / "results"
REL_TOLERANCE = 1e-4          # fp32 without TF32: relative L2 error of ours vs cuDNN's
MAX_ABS_TOLERANCE = 1e-3      # largest |ours - cuDNN's| over the largest |cuDNN's|
MIN_ROTATION_BYTES_OVER_L2 = 2.0
MAX_ROTATION_BYTES = 8 << 30  # the input sets of one row together
MIN_ROTATIONS = 2
# FP32 lanes per SM by compute capability (the datasheet estimate only).
FP32_LANES = {(7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128,
              (9, 0): 128, (10, 0): 128, (12, 0): 128}


def gpu_missing_reason():
    """None when a CUDA GPU is usable by both cupy and PyTorch, else why not."""
    import tinygen

    try:
        tinygen.cuda.require_available()
    except RuntimeError as exc:
        return str(exc)
    try:
        import torch
    except ImportError as exc:
        return f"PyTorch is needed for the cuDNN side ({exc})"
    if not torch.cuda.is_available():
        return (f"PyTorch {torch.__version__} sees no CUDA device (built for CUDA "
                f"{torch.version.cuda})")
    return None


# --- timing ----------------------------------------------------------------------------------
_SPIN = r"""
extern "C" __global__ void tinygen_bench_spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) { }
}
"""

_FMA = r"""
extern "C" __global__ void tinygen_bench_fma(float* out, int iterations, float m, float c) {
    float a0 = threadIdx.x * 1e-6f, a1 = a0 + 0.1f, a2 = a0 + 0.2f, a3 = a0 + 0.3f,
          a4 = a0 + 0.4f, a5 = a0 + 0.5f, a6 = a0 + 0.6f, a7 = a0 + 0.7f;
    for (int i = 0; i < iterations; ++i) {
        #pragma unroll
        for (int r = 0; r < 16; ++r) {   // 8 independent chains hide the FMA latency
            a0 = fmaf(a0, m, c); a1 = fmaf(a1, m, c); a2 = fmaf(a2, m, c); a3 = fmaf(a3, m, c);
            a4 = fmaf(a4, m, c); a5 = fmaf(a5, m, c); a6 = fmaf(a6, m, c); a7 = fmaf(a7, m, c);
        }
    }
    float s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    if (s == 1234.5f) out[0] = s;  // never true in practice; keeps the chains alive
}
"""
FMA_PER_THREAD_ITERATION = 8 * 16


class Timing(NamedTuple):
    ms: float            # device time per call: median over the samples
    spread: tuple        # (min, max) over the samples
    host_ms: float       # host time to queue one call: median over the samples
    host_bound: bool     # the host fell behind the spin in some sample


class Side(NamedTuple):
    """One implementation of a row: its calls (one per input set) and the context to
    run them in (e.g. ``use_impl('aot')``)."""
    calls: list
    context: object = contextlib.nullcontext


class GpuTimer:
    """Device time per call of the sides of a row, interleaved (see the module
    docstring for the spin-kernel method)."""

    def __init__(self, cp, samples, inner, warmup):
        self.cp, self.samples, self.inner, self.warmup = cp, samples, inner, warmup
        self._spin = cp.RawKernel(_SPIN, "tinygen_bench_spin")
        self._spin((1,), (1,), (np.int64(1000),))
        self.cycles_per_ms = self._calibrate()

    def _events(self):
        return self.cp.cuda.Event(), self.cp.cuda.Event()

    def _calibrate(self):
        start, end = self._events()
        cycles = 20_000_000
        times = []
        for _ in range(3):
            start.record()
            self._spin((1,), (1,), (np.int64(cycles),))
            end.record()
            end.synchronize()
            times.append(self.cp.cuda.get_elapsed_time(start, end))
        return cycles / min(times)

    def spin(self, ms):
        self._spin((1,), (1,), (np.int64(int(ms * self.cycles_per_ms)),))

    def time(self, sides):
        """{name: Timing} for ``sides`` ({name: Side}, all with as many calls: call i
        of every side uses input set i).  One cursor walks the input sets across all
        sides, so a set comes back only after every other set was used."""
        cp, inner, names = self.cp, self.inner, list(sides)
        sets = len(next(iter(sides.values())).calls)
        cursor = 0
        for name in names:
            with sides[name].context():
                for _ in range(self.warmup):
                    for call in sides[name].calls:
                        call()
        cp.cuda.Device().synchronize()
        queue_ms = 0.0
        for name in names:  # how long the host takes to queue a batch, unhidden
            with sides[name].context():
                queued = time.perf_counter()
                for i in range(inner):
                    sides[name].calls[(cursor + i) % sets]()
                queue_ms = max(queue_ms, 1e3 * (time.perf_counter() - queued))
                cursor += inner
            cp.cuda.Device().synchronize()
        spin_ms = min(200.0, max(1.0, 3.0 * queue_ms))
        start, end = self._events()
        device = {name: [] for name in names}
        host = {name: [] for name in names}
        behind = dict.fromkeys(names, False)
        for sample in range(self.samples):
            for name in names[sample % len(names):] + names[:sample % len(names)]:
                calls = sides[name].calls
                with sides[name].context():
                    self.spin(spin_ms)
                    start.record()
                    queued = time.perf_counter()
                    for i in range(inner):
                        calls[(cursor + i) % sets]()
                    host_ms = 1e3 * (time.perf_counter() - queued)
                    end.record()
                    end.synchronize()
                cursor += inner
                behind[name] |= host_ms > spin_ms
                host[name].append(host_ms / inner)
                device[name].append(cp.cuda.get_elapsed_time(start, end) / inner)
        return {name: Timing(statistics.median(device[name]),
                             (min(device[name]), max(device[name])),
                             statistics.median(host[name]), behind[name])
                for name in names}


# --- the roofline ------------------------------------------------------------------------------
def measure_roofline(cp, timer, props):
    """Copy bandwidth (bytes/s) and fp32 FMA peak (FLOP/s), measured; plus the estimate."""
    copy_bandwidth = _copy_bandwidth(cp, timer)
    fma = cp.RawKernel(_FMA, "tinygen_bench_fma")
    out = cp.zeros(1, dtype=np.float32)
    sms = props["multiProcessorCount"]
    blocks, threads, iterations = sms * 8, 256, 4096
    fma_ms = timer.time({"fma": Side([lambda: fma((blocks,), (threads,), (
        out, np.int32(iterations), np.float32(0.999999), np.float32(1e-7)))])})["fma"].ms
    flops = 2.0 * blocks * threads * iterations * FMA_PER_THREAD_ITERATION
    fma_peak = flops / (fma_ms * 1e-3)

    lanes = FP32_LANES.get((props["major"], props["minor"]))
    clock_khz = props.get("clockRate") or _attribute(cp, "cudaDevAttrClockRate")
    estimate = 2.0 * sms * clock_khz * 1e3 * lanes if lanes and clock_khz else None
    return {"copy_bandwidth_GBs": copy_bandwidth / 1e9, "fma_peak_GFLOPs": fma_peak / 1e9,
            "fma_estimate_GFLOPs": estimate / 1e9 if estimate else None,
            "estimate_formula": (f"{sms} SMs x {clock_khz / 1e6:.3f} GHz x {lanes} FP32 "
                                 "lanes x 2" if estimate else "unknown for this device")}


def _copy_bandwidth(cp, timer):
    """Bytes read + written per second by a device-to-device copy of 1 GiB."""
    src = cp.random.random(1 << 28, dtype=np.float32)
    dst = cp.empty_like(src)
    copy_ms = timer.time({"copy": Side([lambda: cp.copyto(dst, src)])})["copy"].ms
    return 2 * src.nbytes / (copy_ms * 1e-3)


def _attribute(cp, name):
    try:
        return cp.cuda.runtime.deviceGetAttribute(getattr(cp.cuda.runtime, name), 0)
    except Exception:  # the attribute is gone in some CUDA versions
        return None


# --- one row -------------------------------------------------------------------------------------
def compare(ours, theirs, env):
    """(relative L2 error, largest absolute error over the largest |theirs|), each the
    worst over the outputs; inf for a missing output, a shape mismatch or a non-finite
    value of ours."""
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    if len(ours) != len(theirs):
        return math.inf, math.inf
    rel_l2 = max_abs = 0.0
    for a, b in zip(ours, theirs):
        a = env.to_numpy(a).astype(np.float64)
        b = env.to_numpy(b).astype(np.float64)
        if a.shape != b.shape or not np.isfinite(a).all():
            return math.inf, math.inf
        if not a.size:
            continue
        rel_l2 = max(rel_l2, float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)))
        max_abs = max(max_abs, float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)))
    return rel_l2, max_abs


def rotation_count(working_set, l2_bytes):
    """Input sets so that the others' bytes exceed MIN_ROTATION_BYTES_OVER_L2 x the L2
    cache, within MAX_ROTATION_BYTES."""
    working_set = max(int(working_set), 1)
    wanted = math.ceil(MIN_ROTATION_BYTES_OVER_L2 * l2_bytes / working_set) + 1
    return max(MIN_ROTATIONS, min(wanted, MAX_ROTATION_BYTES // working_set))


def measure(workload, env, impls, timer, roof, l2_bytes, rng, use_impl):
    """Check and time one workload on every implementation; returns one dict per impl
    (or one saying why the row could not run).  The only per-row measuring code."""
    base = {"row": workload.name, "family": workload.family, "phase": workload.phase}
    try:
        with env.tracking() as tracked:
            first = workload.build(env, rng)
        working_set = tracked[0]
        rotations = rotation_count(working_set, l2_bytes)
        cases = [first] + [workload.build(env, rng) for _ in range(rotations - 1)]
        expected = [case.expected(case.theirs()) for case in cases]
        others = {name: compare(cases[0].expected(call()), expected[0], env)
                  for name, call in cases[0].others.items()}
    except Exception as exc:  # a missing family, an unsupported shape, ...
        return [dict(base, impl="-", status=f"not run: {type(exc).__name__}: {exc}")]
    flops, nbytes = cases[0].flops, cases[0].bytes
    floor_s = max(flops / (roof["fma_peak_GFLOPs"] * 1e9),
                  nbytes / (roof["copy_bandwidth_GBs"] * 1e9))
    common = dict(base, rotations=rotations, working_set_bytes=working_set,
                  l2_cold=(rotations - 1) * working_set >= MIN_ROTATION_BYTES_OVER_L2 * l2_bytes,
                  flops=flops, bytes=nbytes)
    sides = {"cudnn": Side([case.theirs for case in cases])}
    sides.update({name: Side([case.others[name] for case in cases]) for name in others})
    results, checked = [], {}
    for impl in impls:
        def context(impl=impl):
            return use_impl(impl, device="cuda")
        try:  # every input set, before anything is timed
            with context():
                errors = [compare(case.ours(), want, env) for case, want in zip(cases, expected)]
        except Exception as exc:
            results.append(dict(common, impl=impl, status=f"failed: {type(exc).__name__}: {exc}"))
            continue
        checked[impl] = (max(e[0] for e in errors), max(e[1] for e in errors))
        sides[impl] = Side([case.ours for case in cases], context)
    if not checked:
        return results
    try:
        timings = timer.time(sides)
    except Exception as exc:
        return results + [dict(common, impl=impl, status=f"failed: {type(exc).__name__}: {exc}")
                          for impl in checked]
    theirs = timings["cudnn"]
    for impl, (rel_l2, max_abs) in checked.items():
        ours = timings[impl]
        speedup = theirs.ms / ours.ms
        bandwidth = nbytes / (ours.ms * 1e-3)
        copy_fraction = bandwidth / (roof["copy_bandwidth_GBs"] * 1e9)
        ok = rel_l2 <= REL_TOLERANCE and max_abs <= MAX_ABS_TOLERANCE
        results.append(dict(
            common, impl=impl,
            status="ok" if ok else (f"MISMATCH (relative L2 error {rel_l2:.2e}, max-abs "
                                    f"error {max_abs:.2e})"),
            rel_error=rel_l2, max_abs_error=max_abs,
            ours_ms=ours.ms, ours_spread_ms=ours.spread, ours_host_ms=ours.host_ms,
            cudnn_ms=theirs.ms, cudnn_spread_ms=theirs.spread, cudnn_host_ms=theirs.host_ms,
            host_bound=ours.host_bound or theirs.host_bound, speedup=speedup,
            others={name: {"ms": timings[name].ms, "host_ms": timings[name].host_ms,
                           "speedup": timings[name].ms / ours.ms,
                           "rel_error_vs_cudnn": others[name][0],
                           "max_abs_error_vs_cudnn": others[name][1]} for name in others},
            gflops=flops / (ours.ms * 1e-3) / 1e9, gbs=bandwidth / 1e9,
            roofline_fraction=floor_s / (ours.ms * 1e-3), copy_fraction=copy_fraction,
            goals={goal.text: (goal.met(speedup, copy_fraction) if ok else False)
                   for goal in workload.goals}))
    return results


# --- report ----------------------------------------------------------------------------------
def _achieved(row):
    if row["flops"] and row["flops"] / row["bytes"] > 4:  # compute-heavy: FLOP/s says more
        return f"{row['gflops']:.0f} GFLOP/s"
    return f"{row['gbs']:.0f} GB/s"


def table(rows):
    header = ("| row | impl | ours ms | cuDNN ms | cuDNN/ours | other baselines | achieved "
              "| roofline | host ms/call ours, cuDNN | goals |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    for r in rows:
        if "ours_ms" not in r:
            lines.append(f"| {r['row']} | {r['impl']} | | | | | | | | {r['status']} |")
            continue
        goals = "; ".join(f"{text}: {'met' if met else 'NOT met'}"
                          for text, met in r["goals"].items()) or "-"
        if r["status"] != "ok":
            goals = r["status"]
        flag = " (host)" if r["host_bound"] else ""
        flag += "" if r["l2_cold"] else " (L2 warm)"
        others = "; ".join(f"{name} {o['ms']:.4f} ms (x{o['speedup']:.2f})"
                           for name, o in r["others"].items()) or "-"
        lines.append(f"| {r['row']} | {r['impl']} | {r['ours_ms']:.4f}{flag} | "
                     f"{r['cudnn_ms']:.4f} | {r['speedup']:.2f} | {others} | {_achieved(r)} | "
                     f"{100 * r['roofline_fraction']:.0f}% | "
                     f"{r['ours_host_ms']:.3f}, {r['cudnn_host_ms']:.3f} | {goals} |")
    return "\n".join(lines)


def goal_summary(rows):
    summary = {}
    for r in rows:
        for text, met in r.get("goals", {}).items():
            entry = summary.setdefault(f"{text} [{r['impl']}]", [0, 0])
            entry[0] += bool(met)
            entry[1] += 1
    return "\n".join(f"- {text}: met on {met} of {total} rows"
                     for text, (met, total) in summary.items())


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def tf32_settings(torch):
    """The TF32 switches as they are in effect now (read back, not as requested)."""
    return {"torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "torch.get_float32_matmul_precision": torch.get_float32_matmul_precision(),
            "torch.backends.cudnn.benchmark": torch.backends.cudnn.benchmark,
            "CUPY_TF32": os.environ.get("CUPY_TF32", "unset (cupy: off)")}


def environment(cp, torch, props):
    import tinygen

    def version(v):
        return f"{v // 1000}.{v % 1000 // 10}"

    return {
        "device": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "compute_capability": f"{props['major']}.{props['minor']}",
        "sms": props["multiProcessorCount"], "l2_bytes": props["l2CacheSize"],
        "driver": version(cp.cuda.runtime.driverGetVersion()),
        "cuda_runtime": version(cp.cuda.runtime.runtimeGetVersion()),
        "cupy": cp.__version__, "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "tinygen": tinygen.__version__,
        "python": platform.python_version(), "tf32": tf32_settings(torch),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_results(out_dir, env_info, roof, rows, args):
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / slug(env_info["device"])
    doc = {"environment": env_info, "roofline": roof,
           "settings": vars(args) | {"out": str(args.out)}, "rows": rows}
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    info = ", ".join(f"{k} {v}" for k, v in env_info.items()
                     if k not in ("device", "date", "tf32"))
    tf32 = ", ".join(f"`{k}` = {v}" for k, v in env_info.get("tf32", {}).items())
    md = [f"# CUDA kernels vs cuDNN on {env_info['device']}", "",
          f"Measured {env_info['date']} with `python -m benchmarks.kernels "
          f"{' '.join(sys.argv[1:])}`.", "", info + ".", "",
          f"Roofline (measured): copy {roof['copy_bandwidth_GBs']:.0f} GB/s (bytes read + "
          f"written), fp32 FMA {roof['fma_peak_GFLOPs']:.0f} GFLOP/s (own FMA kernel); "
          f"estimate {roof['estimate_formula']}"
          + (f" = {roof['fma_estimate_GFLOPs']:.0f} GFLOP/s." if roof["fma_estimate_GFLOPs"]
             else "."), "",
          f"TF32 in effect: {tf32 or 'not recorded'}.", "",
          "Times are device time per call (median of batches, CUDA events; ours and the "
          "baselines interleaved batch by batch; input sets rotated so that the other "
          "sets' distinct working set exceeds twice the L2 cache: `(L2 warm)` where the "
          "memory budget did not allow it). cuDNN/ours > 1 means tinygen is faster; other "
          "baselines (e.g. PyTorch's default batch norm dispatch) show their time and "
          "their time over ours. Each input set's result was checked first (relative L2 "
          f"<= {REL_TOLERANCE:g}, max-abs over max <= {MAX_ABS_TOLERANCE:g}). Host ms/call: "
          "the host's time to queue one call. `(host)`: the host could not queue calls as "
          "fast as the GPU ran them.", "",
          table(rows), "", "## Goals", "", goal_summary(rows), ""]
    stem.with_suffix(".md").write_text("\n".join(md))
    return stem


# --- main --------------------------------------------------------------------------------------
def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("full", "quick"), default="full")
    parser.add_argument("--only", nargs="*", default=[], help="rows whose name holds any of these")
    parser.add_argument("--impl", nargs="*", default=["nvrtc", "aot"], choices=("nvrtc", "aot"))
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--inner", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _available_impls(wanted):
    impls = []
    for impl in wanted:
        if impl == "aot":
            try:
                from tinygen.backend.cuda_kernels import aot

                aot.extension()
            except (ImportError, RuntimeError) as exc:
                print(f"# aot path skipped: {exc}", file=sys.stderr)
                continue
        impls.append(impl)
    return impls


def main(argv=None):
    args = _parser().parse_args(argv)
    reason = gpu_missing_reason()
    if reason:
        print(f"benchmarks.kernels needs a CUDA GPU with cupy and a CUDA build of PyTorch: "
              f"{reason}", file=sys.stderr)
        return 2
    import cupy as cp
    import torch

    from tinygen.backend import kernels as K

    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    if cp.cuda.get_current_stream().ptr != 0 or torch.cuda.current_stream().cuda_stream != 0:
        print("benchmarks.kernels: cupy and torch must both use the legacy default stream "
              "(the events time both)", file=sys.stderr)
        return 2

    props = cp.cuda.runtime.getDeviceProperties(0)
    env_info = environment(cp, torch, props)
    print("# " + ", ".join(f"{k} {v}" for k, v in env_info.items()))
    timer = GpuTimer(cp, args.samples, args.inner, args.warmup)
    roof = measure_roofline(cp, timer, props)
    print(f"# roofline: copy {roof['copy_bandwidth_GBs']:.0f} GB/s, fp32 FMA "
          f"{roof['fma_peak_GFLOPs']:.0f} GFLOP/s measured (estimate: "
          f"{roof['estimate_formula']})")

    impls = _available_impls(args.impl)
    env = Env(cp, torch, "cuda")
    rng = np.random.default_rng(args.seed)
    rows = []
    stem = write_results(args.out, env_info, roof, rows, args)
    for workload in workloads(args.size):
        if args.only and not any(text in workload.name for text in args.only):
            continue
        for row in measure(workload, env, impls, timer, roof, props["l2CacheSize"], rng,
                           K.use_impl):
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
        # after every row, so that a run stopped at a time limit keeps what it measured
        stem = write_results(args.out, env_info, roof, rows, args)
        cp.get_default_memory_pool().free_all_blocks()
        torch.cuda.empty_cache()
    print("\n" + table(rows) + "\n\n" + goal_summary(rows))
    print(f"\nwrote {stem}.md and {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
