"""Data-parallel scaling on this machine: 1 rank x 1 thread vs 2 ranks x 1 thread.

    python -m benchmarks.distributed                   # conv VAE and gated PixelCNN
    python -m benchmarks.distributed --steps 12 --repeats 3 --models vae

For each model it launches ``mpiexec -n 1`` and ``mpiexec -n 2`` (one thread per rank:
OMP/OpenBLAS/numba pinned to 1) several times, alternating, on synthetic 28x28 images:

strong   the same global batch B: 1 rank x B against 2 ranks x B/2 (what
         ``tinygen train --distributed`` does);  efficiency = T(1) / (2 T(2))
weak     the same per-rank batch B: 1 rank x B against 2 ranks x B (global 2B);
         efficiency = T(1) / T(2)
overlap  strong scaling with the all-reduce started from the backward hooks

and reports per step: the time (median over the timed steps, median over repeats),
the time rank 0 waited in the gradient all-reduce, the bytes each rank sent into it,
and the all-reduce of the same bytes alone (both ranks idle: the transport's cost).
Then a paper estimate of efficiency on 8 and 64 H200 GPUs over NCCL (``estimate``).
The machine may be shared: the load average is printed with the numbers.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MODELS = {
    # name: (experiment, config, global batch)
    "vae": ("vae", {}, 128),
    "gated-pixelcnn": ("gated-pixelcnn", {"hidden": 48, "n_layers": 8}, 16),
}
MARK = "BENCH_JSON "


# --- one rank of one measurement (runs under mpiexec) ---------------------------------------
def worker(args):
    import numpy as np

    from tinygen.data import BatchLoader
    from tinygen.distributed import MPICommunicator
    from tinygen.distributed.training import DistributedRun
    from tinygen.models import get_experiment

    comm = MPICommunicator()
    name, config, _ = MODELS[args.worker]
    exp = get_experiment(name)({"seed": 0, **config})
    rng = np.random.default_rng(0)
    n = max(args.batch * (args.warmup + args.steps + 1), 256)
    data = (rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), rng.integers(0, 10, n))
    dist = None
    shard = {}
    if comm.size > 1:
        dist = DistributedRun(comm, overlap=args.overlap)
        dist.prepare(exp)
        shard = dist.loader_shard()
    loader = BatchLoader(data, args.batch, seed=0, drop_last=True, **shard)
    generator = np.random.default_rng(1)
    times, waits = [], []
    batches = iter(loader)
    for i in range(args.warmup + args.steps):
        batch = next(batches)
        comm.barrier()
        before = sum(r.stats["wait_seconds"] for r in dist.reducers.values()) if dist else 0.0
        start = time.perf_counter()
        if dist is None:
            exp.train_step(batch, generator)
        else:
            dist.average(exp.train_step(batch, dist.generator(generator, batch)))
        elapsed = time.perf_counter() - start
        after = sum(r.stats["wait_seconds"] for r in dist.reducers.values()) if dist else 0.0
        if i >= args.warmup:
            times.append(elapsed)
            waits.append(after - before)
    params = [p for o in exp.optimizers().values() for g in o.param_groups for p in g["params"]]
    nbytes = sum(p.data.nbytes for p in params)
    stats = dist.stats() if dist else {}
    sent = sum(s["bytes"] for s in stats.values()) / max(1, args.warmup + args.steps)
    # the same bytes alone, both ranks idle
    buffer = np.zeros(nbytes // 4, dtype=np.float32)
    alone = []
    for _ in range(10):
        comm.barrier()
        start = time.perf_counter()
        comm.allreduce_(buffer)
        alone.append(time.perf_counter() - start)
    if comm.rank == 0:
        print(MARK + json.dumps({
            "ranks": comm.size, "batch": args.batch, "overlap": args.overlap,
            "step_s": statistics.median(times), "wait_s": statistics.median(waits),
            "bytes_per_step": sent, "param_bytes": nbytes, "params": sum(p.data.size for p in params),
            "allreduce_alone_s": statistics.median(alone)}), flush=True)


# --- the driver ------------------------------------------------------------------------------
def run(model, ranks, batch, steps, warmup, overlap=False):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    cmd = ["mpiexec", "-n", str(ranks), "--oversubscribe", "--bind-to", "none", sys.executable,
           "-m", "benchmarks.distributed", "--worker", model, "--batch", str(batch),
           "--steps", str(steps), "--warmup", str(warmup)] + (["--overlap"] if overlap else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def measure(model, steps, warmup, repeats):
    _, _, batch = MODELS[model]
    configs = {"1 rank x B": (1, batch, False), "1 rank x B/2": (1, batch // 2, False),
               "2 ranks x B/2": (2, batch // 2, False),
               "2 ranks x B/2, overlap": (2, batch // 2, True), "2 ranks x B": (2, batch, False)}
    results = {k: [] for k in configs}
    for _ in range(repeats):  # alternate, so that the machine's load hits all alike
        for key, (ranks, b, overlap) in configs.items():
            results[key].append(run(model, ranks, b, steps, warmup, overlap))
    summary = {}
    for key, runs in results.items():
        summary[key] = {**runs[0], **{f: statistics.median(r[f] for r in runs)
                                      for f in ("step_s", "wait_s", "allreduce_alone_s")}}
        summary[key]["step_s_all"] = [r["step_s"] for r in runs]
    one = summary["1 rank x B"]["step_s"]
    summary["strong_efficiency"] = one / (2 * summary["2 ranks x B/2"]["step_s"])
    summary["strong_efficiency_overlap"] = one / (2 * summary["2 ranks x B/2, overlap"]["step_s"])
    summary["weak_efficiency"] = one / summary["2 ranks x B"]["step_s"]
    # what strong scaling could reach with free communication: the model's own scaling
    # with the batch (fixed per-step costs -- Python, the optimizer -- do not halve)
    summary["compute_bound_efficiency"] = one / (2 * summary["1 rank x B/2"]["step_s"])
    summary["global_batch"] = batch
    return summary


def step_profile(model):
    """Per training step at the global batch, in one process: multiply-accumulates of the
    conv/linear layers (forward; backward is about twice that), recorded graph nodes
    (forward ops), parameter tensors.  The inputs of the GPU step-time estimate."""
    import numpy as np

    from tinygen.autograd import function as F
    from tinygen.models import get_experiment

    name, config, batch = MODELS[model]
    exp = get_experiment(name)({"seed": 0, **config})
    macs, nodes = [0], [0]

    def count(module, inputs, output):
        w = getattr(module, "weight", None)
        if w is None or not hasattr(output, "shape"):
            return
        out = int(np.prod(output.shape))
        if w.ndim == 2:                                   # linear
            macs[0] += out * w.shape[1]
        elif type(module).__name__.startswith("ConvTranspose"):
            macs[0] += int(np.prod(inputs[0].shape)) * int(np.prod(w.shape[1:]))
        elif w.ndim >= 3:                                 # convs (masks not discounted)
            macs[0] += out * int(np.prod(w.shape[1:]))

    handles = [m.register_forward_hook(count) for mod in exp.modules().values()
               for m in mod.modules()]
    observer = lambda node: nodes.__setitem__(0, nodes[0] + 1)  # noqa: E731
    F._record_observers.append(observer)
    rng = np.random.default_rng(0)
    data = (rng.integers(0, 256, (batch, 28, 28)).astype(np.uint8), rng.integers(0, 10, batch))
    try:
        exp.train_step(data, np.random.default_rng(1))
    finally:
        F._record_observers.remove(observer)
        for h in handles:
            h.remove()
    tensors = sum(len(g["params"]) for o in exp.optimizers().values() for g in o.param_groups)
    return {"forward_macs": macs[0], "forward_nodes": nodes[0], "param_tensors": tensors}


# Assumptions of the GPU step estimate (not measured here): an H200 reaches 25% of its
# 67 TFLOP/s FP32 peak on these small convs (no tensor cores in tinygen's kernels); each
# op costs 20 us of Python dispatch + launch and the step is bound by the larger of the
# two; backward runs ~2 ops per forward op; Adam is ~8 elementwise launches per tensor.
GPU_FLOPS = 0.25 * 67e12
OP_SECONDS = 20e-6


def gpu_step_estimate(profile):
    flops = 3 * 2 * profile["forward_macs"]
    ops = 3 * profile["forward_nodes"] + 8 * profile["param_tensors"]
    return {"flops": flops, "ops": ops, "compute_s": flops / GPU_FLOPS,
            "overhead_s": ops * OP_SECONDS,
            "step_s": max(flops / GPU_FLOPS, ops * OP_SECONDS)}


# --- paper estimate for GPUs -------------------------------------------------------------------
# Assumptions, stated (not measured here):
#   NVLink 4 / NVSwitch inside an 8 x H200 node: NCCL ring all-reduce bus bandwidth ~360 GB/s
#   (of 450 GB/s per direction per GPU), ~15 us latency per all-reduce;
#   across nodes InfiniBand NDR, one 400 Gb/s NIC per GPU: ~45 GB/s bus bandwidth (of 50),
#   ~40 us latency per all-reduce (NCCL's tree over 8 nodes; a flat ring's 126 hops would
#   cost several times that for small messages).
LINKS = {8: (360e9, 15e-6, "8 x H200, NVLink/NVSwitch"),
         64: (45e9, 40e-6, "8 nodes x 8 H200, IB NDR 400 Gb/s per GPU")}


def ring_allreduce_s(nbytes, gpus, bandwidth, latency, buckets):
    """Ring all-reduce: each GPU sends and receives 2 (p-1)/p of the data."""
    return 2 * (gpus - 1) / gpus * nbytes / bandwidth + buckets * latency


def estimate(model_summary, gpu_step_s, bucket_bytes=25 * 2 ** 20):
    nbytes = model_summary["1 rank x B"]["param_bytes"]
    buckets = max(1, -(-nbytes // bucket_bytes))
    rows = []
    for gpus, (bw, lat, what) in LINKS.items():
        # + 2 small host collectives per step (presence flags, the reported losses)
        t = ring_allreduce_s(nbytes, gpus, bw, lat, buckets + 2)
        rows.append({"gpus": gpus, "links": what, "allreduce_s": t,
                     "efficiency_no_overlap": gpu_step_s / (gpu_step_s + t),
                     "efficiency_full_overlap": gpu_step_s / max(gpu_step_s, t)})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="vae,gated-pixelcnn")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the numbers here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--overlap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    report = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count()}
    for model in args.models.split(","):
        s = measure(model, args.steps, args.warmup, args.repeats)
        s["profile"] = step_profile(model)
        s["gpu_step"] = gpu_step_estimate(s["profile"])
        gpu_step_s = s["gpu_step"]["step_s"]
        s["gpu_estimate"] = estimate(s, gpu_step_s)
        report[model] = s
        print(f"\n{model}: global batch {s['global_batch']}, "
              f"{s['1 rank x B']['params']:,} parameters ({s['1 rank x B']['param_bytes'] / 2**20:.2f} MiB)")
        print(f"  {'config':24s} {'step ms':>8s} {'wait ms':>8s} {'MiB/step':>9s} "
              f"{'alone ms':>9s}  steps ms (repeats)")
        for key in ("1 rank x B", "1 rank x B/2", "2 ranks x B/2", "2 ranks x B/2, overlap",
                    "2 ranks x B"):
            r = s[key]
            print(f"  {key:24s} {1e3 * r['step_s']:8.1f} {1e3 * r['wait_s']:8.2f} "
                  f"{r['bytes_per_step'] / 2**20:9.2f} {1e3 * r['allreduce_alone_s']:9.2f}  "
                  + " ".join(f"{1e3 * t:.0f}" for t in r["step_s_all"]))
        print(f"  scaling efficiency: strong {100 * s['strong_efficiency']:.0f}% "
              f"(overlap {100 * s['strong_efficiency_overlap']:.0f}%), weak "
              f"{100 * s['weak_efficiency']:.0f}%; the model's own batch scaling "
              f"T(B) / 2 T(B/2) {100 * s['compute_bound_efficiency']:.0f}%")
        g, p = s["gpu_step"], s["profile"]
        print(f"  per step: {g['flops'] / 1e9:.1f} GFLOP, ~{g['ops']} GPU ops "
              f"({p['forward_nodes']} forward nodes, {p['param_tensors']} parameter tensors) "
              f"-> H200 step estimate {1e3 * g['step_s']:.1f} ms (compute "
              f"{1e3 * g['compute_s']:.2f} ms, op overhead {1e3 * g['overhead_s']:.2f} ms)")
        for row in s["gpu_estimate"]:
            print(f"  paper estimate, {row['gpus']} GPUs ({row['links']}), batch "
                  f"{s['global_batch']} per GPU: all-reduce {1e3 * row['allreduce_s']:.3f} ms, "
                  f"efficiency {100 * row['efficiency_no_overlap']:.1f}% without overlap, "
                  f"{100 * row['efficiency_full_overlap']:.1f}% with full overlap")
    report["load_average_end"] = os.getloadavg()
    print(f"\nload average: start {report['load_average_start']}, end "
          f"{report['load_average_end']} on {report['cpus']} CPUs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
