"""``python -m benchmarks.cpu_suite``: see the package docstring."""
import argparse
import contextlib
import datetime
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results"
BEGIN, END = "<!-- cpu_suite:begin -->", "<!-- cpu_suite:end -->"
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS")


# An idle pause before each block of timed steps, so that one framework's block never
# starts while the other's threads still spin after their last parallel region.  Worker
# threads of both spin-wait before they sleep: PyTorch's (its bundled libgomp: measured
# here, a 2-thread process idle after a torch.relu burns 4-6 ms of CPU in its first 5-20
# ms) and tinygen's pool helpers (up to 5 ms, chunks.SPIN_MICROSECONDS).  Without the
# pause, a 2-thread block of fast steps starts with one of the two cores still taken by
# the other worker.
SETTLE_MS = 50.0


def _parser():
    p = argparse.ArgumentParser(prog="python -m benchmarks.cpu_suite",
                                description="tinygen vs PyTorch CPU, every row of issue 12")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--quick", action="store_true",
                   help="fewer timed steps per row (~1 s of steps per framework)")
    p.add_argument("--only", nargs="+", default=None,
                   help="run the rows whose name contains one of these substrings")
    p.add_argument("--grid", action="store_true",
                   help="the layer grid instead (layer shapes beyond issue 12's rows: "
                        "narrowing, depthwise, grouped, dilated, wide kernels, strided, "
                        "transposed, 1-D convs; overlapping pools), printed only")
    p.add_argument("--seconds", type=float, default=None,
                   help="seconds of timed steps per framework and row (default 1 quick, 4)")
    p.add_argument("--settle-ms", type=float, default=SETTLE_MS,
                   help="idle pause before each block of timed steps (default %(default)s; "
                        "see SETTLE_MS)")
    p.add_argument("--repeat", type=int, default=1,
                   help="timing passes, each with fresh workers; the table gives each row's "
                        "median over them, and the spread of the ratio (default 1)")
    p.add_argument("--no-write", action="store_true", help="print only, write no results")
    p.add_argument("--keep-other-threads", action="store_true",
                   help="keep the stored tables of thread counts this run does not measure")
    return p


class Worker:
    """A framework's process and the pipe to it."""

    def __init__(self, framework, threads, environment=None):
        from .worker import serve

        for var in _THREAD_VARS:  # read by each library when it loads, in the child
            os.environ[var] = str(threads)
        # ``environment`` (FRESH_PAGES) goes to this child only: a spawned child takes
        # this process's environment as it is at start(), and glibc's malloc reads it then
        environment = environment or {}
        saved = {var: os.environ.get(var) for var in environment}
        os.environ.update(environment)
        try:
            ctx = multiprocessing.get_context("spawn")
            self.conn, child = ctx.Pipe()
            self.framework = framework
            self.process = ctx.Process(target=serve, args=(child, framework, threads),
                                       daemon=True)
            self.process.start()
        finally:
            for var, value in saved.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value

    def ask(self, *request):
        self.conn.send(request)
        status, reply = self.conn.recv()
        if status != "ok":
            raise RuntimeError(reply)
        return reply

    def stop(self):
        try:
            self.ask("stop")
        finally:
            self.process.join(timeout=10)


def _compare(ours, theirs, rtol, atol):
    """None when every output agrees, else a description of the first that does not."""
    import numpy as np

    missing = sorted(set(ours) ^ set(theirs))
    if missing:
        return f"outputs present on one side only: {missing[:6]}"
    for key in sorted(ours):
        a, b = np.asarray(ours[key], np.float64), np.asarray(theirs[key], np.float64)
        if a.shape != b.shape:
            return f"{key}: shapes {a.shape} vs {b.shape}"
        scale = max(float(np.abs(b).max()) if b.size else 0.0, 1e-30)
        bad = np.abs(a - b) > atol * scale + rtol * np.abs(b)
        if bad.any():
            worst = float((np.abs(a - b) / scale).max())
            return f"{key}: {int(bad.sum())} of {a.size} differ (max |diff|/max|ref| {worst:.2e})"
    return None


def _run_case(case, workers, quick, seconds, settle_ms=SETTLE_MS):
    tg, th = workers
    state = tg.ask("setup", case.name, quick, None)
    th.ask("setup", case.name, quick, state)
    mismatch = _compare(tg.ask("check"), th.ask("check"), case.rtol, case.atol)
    # a second untimed step each (caches, allocator, thread pools), which also sizes the run
    first = [min(w.ask("time", 1)) for w in workers]
    step = max(first)
    reps = int(min(400, max(5 if quick else 15, seconds / max(step, 1e-6))))
    rounds = min(reps, 5 if quick else 10)
    block = max(1, reps // rounds)
    times = {w.framework: [] for w in workers}
    for r in range(rounds):  # interleaved blocks, the order alternating
        for w in (workers if r % 2 == 0 else workers[::-1]):
            time.sleep(settle_ms / 1e3)
            times[w.framework] += w.ask("time", block)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    best = {k: 1e3 * min(v) for k, v in times.items()}
    return {
        "name": case.name, "group": case.group, "goal": case.goal,
        "ours_ms": ms["tinygen"], "torch_ms": ms["torch"],
        "ratio": ms["tinygen"] / ms["torch"],
        "ours_best_ms": best["tinygen"], "torch_best_ms": best["torch"],
        "steps": len(times["tinygen"]),
        "check": mismatch or "same outputs",
    }


# Peak memory is measured in a second pair of workers whose malloc maps every block of
# this many bytes or more afresh and unmaps it when freed (glibc's M_MMAP_THRESHOLD,
# set from the environment; fixed, so glibc's dynamic threshold is off).  With the
# default malloc a freed buffer's pages stay in the process and the next buffer reuses
# them, so the RSS high-water mark misses it: torch's tanh fwd+bwd showed 4.0 MB where
# it holds 8.  tracemalloc would see it, but only numpy's buffers, not torch's.  With
# fresh mappings the RSS peak counts every large buffer live at the peak, alike for both
# frameworks.  Not the timing workers: a fresh mapping per buffer costs page faults.
# (tinygen sets malloc's thresholds itself when imported, to keep freed pages for the
# next step, ``backend/allocator.py``: switched off here, or its buffers would hide.)
FRESH_PAGES = {"MALLOC_MMAP_THRESHOLD_": str(1 << 16), "TINYGEN_MALLOC_TUNING": "0"}


# Unmeasured steps before the measured ones, and the smallest of MEMORY_STEPS
# measured peaks: one-time growth (a helper thread's malloc arena, the first time a
# helper runs a kernel and touches more of its stack, buffers cached by shape) lands in
# whichever step it happens in (avg_pool2d at 2 threads: 4.9 MB in the second step,
# 4.0 in the third, 4.8 once in the fourth), not in every step.
MEMORY_WARMUP_STEPS = 3
MEMORY_STEPS = 3


def _measure_memory(case, workers, quick):
    """Each framework's peak memory of one step: the smallest of MEMORY_STEPS steps'
    peaks, after MEMORY_WARMUP_STEPS."""
    tg, th = workers
    th.ask("setup", case.name, quick, tg.ask("setup", case.name, quick, None))
    for w in workers:
        w.ask("time", MEMORY_WARMUP_STEPS)
    mem = {w.framework: [w.ask("memory") for _ in range(MEMORY_STEPS)] for w in workers}

    def least(framework, key):
        values = [m[key] for m in mem[framework] if m[key] is not None]
        return min(values) if values else None

    return {"ours_rss": least("tinygen", "rss_peak"), "torch_rss": least("torch", "rss_peak"),
            "ours_traced": least("tinygen", "traced_peak")}


def _mb(v):
    return "-" if v is None else f"{v / 2**20:.1f}"


def memory_ratio(row):
    """Our peak memory of one step over torch's (both RSS, measured with FRESH_PAGES),
    or None where it was not measured."""
    ours, theirs = row.get("ours_rss"), row.get("torch_rss")
    if ours is None or not theirs:
        return None
    return ours / theirs


def _table(rows, threads):
    lines = ["| workload | ours ms | torch ms | ratio | goal | ours peak MB (RSS / traced) "
             "| torch peak MB (RSS) | memory ratio | steps | check |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | - | - | - | - | - | - | - | - | ERROR: "
                         f"{r['error'].strip().splitlines()[-1][:120]} |")
            continue
        # (a miss to the precision shown: 1.004 is "1.00", as good as the goal's 1.00)
        flag = "" if round(r["ratio"], 2) <= r["goal"] else " **miss**"
        if len(r.get("ratios", ())) > 1:     # (--repeat: the passes' spread)
            flag += f" ({min(r['ratios']):.2f}-{max(r['ratios']):.2f})"
        memory = memory_ratio(r)
        memory = "-" if memory is None else (
            f"{memory:.2f}" + (" **miss**" if round(memory, 2) > 1 else ""))
        lines.append(
            f"| {r['name']} | {r['ours_ms']:.3f} | {r['torch_ms']:.3f} | "
            f"{r['ratio']:.2f}{flag} | {r['goal']:.2f} | {_mb(r.get('ours_rss'))} / "
            f"{_mb(r.get('ours_traced'))} | {_mb(r.get('torch_rss'))} | {memory} | {r['steps']} | "
            f"{r['check']} |")
    return f"### {threads} thread{'s' if threads > 1 else ''}\n\n" + "\n".join(lines)


def _header(info, args, load):
    tg, th = info["tinygen"], info["torch"]
    repeats = "" if args.repeat == 1 else (
        f"; {args.repeat} timing passes, each with fresh workers: each column the median over "
        f"them, and in brackets the lowest and highest ratio of the passes")
    pools = ", ".join(f"{p['internal_api']} {p['version'] or ''} ({p['architecture'] or '-'})"
                      for p in tg["pools"])
    return (
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
        f"{platform.machine()} ({os.cpu_count()} cores), load average before the run "
        f"{load}; tinygen {tg['tinygen']} (numpy {tg['numpy']}, numba {tg['numba']}; its one "
        f"CPU pool (numba_kernels/chunks.py) at the thread count of the table, numba kernels "
        f"serial, BLAS held at one thread inside it; BLAS/OpenMP libraries loaded: {pools}), "
        f"PyTorch {th['torch']}.\n"
        f"Command: `python -m benchmarks.cpu_suite --threads {' '.join(map(str, args.threads))}"
        f"{' --quick' if args.quick else ''}"
        f"{f' --repeat {args.repeat}' if args.repeat > 1 else ''}"
        f"{'' if args.settle_ms == SETTLE_MS else f' --settle-ms {args.settle_ms:g}'}`.  "
        f"Each framework in its own worker process, fresh for every row, "
        f"threads pinned per worker; interleaved blocks of steps, each after {args.settle_ms:g} ms "
        f"idle (no spinning threads of the other worker), median ms per step; ratio = "
        f"ours / torch (below 1: tinygen faster)"
        f"{repeats}.  Peak memory of one step, in a second pair of workers whose malloc "
        f"maps every block of 64 KiB or more afresh (MALLOC_MMAP_THRESHOLD_=65536, and "
        f"tinygen's own malloc tuning off, so that no buffer hides in pages kept from an "
        f"earlier one): the RSS high-water mark above the RSS before the step, the least "
        f"of {MEMORY_STEPS} steps after {MEMORY_WARMUP_STEPS} unmeasured ones, both "
        f"frameworks; memory ratio = ours / torch, a miss above 1 (issue 12: peak memory "
        f"at or below PyTorch's); beside ours, tracemalloc's peak (the most of numpy's "
        f"buffers allocated during the step live at once; it cannot see torch's).  "
        f"Outputs (loss, every gradient) compared before timing.")


def _merged(all_rows, json_path, args):
    """This run's tables plus, with --keep-other-threads, the stored tables of the
    thread counts it did not run (each table keeps its own conditions line)."""
    tables = {t: (rows, None) for t, rows in all_rows.items()}
    if args.keep_other_threads and json_path.exists():
        stored = json.loads(json_path.read_text())
        for t, rows in stored.get("rows", {}).items():
            if int(t) not in tables:
                tables[int(t)] = (rows, stored.get("conditions", {}).get(t))
    return dict(sorted(tables.items()))


def _write(all_rows, info, args, load):
    RESULTS.mkdir(exist_ok=True)
    md_path, json_path = RESULTS / "cpu-2core.md", RESULTS / "cpu-2core.json"
    when = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, load {load}"
    tables = _merged(all_rows, json_path, args)
    conditions = {str(t): cond or when for t, (_, cond) in tables.items()}
    body = "\n\n".join([_header(info, args, load)]
                       + [_table(rows, t) + f"\n\n(measured {conditions[str(t)]})"
                          for t, (rows, _) in tables.items()])
    section = f"{BEGIN}\n## Every row of issue 12 — `python -m benchmarks.cpu_suite`\n\n{body}\n{END}"
    text = md_path.read_text() if md_path.exists() else "# CPU results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    md_path.write_text(text)
    json_path.write_text(json.dumps({"info": info, "quick": args.quick, "load_before": load,
                                     "conditions": conditions,
                                     "rows": {str(t): r for t, (r, _) in tables.items()}},
                                    indent=1, default=str) + "\n")
    print(f"wrote {md_path} and {json_path}")


@contextlib.contextmanager
def _worker_pair(threads, environment=None):
    """A tinygen worker and a torch worker, stopped on the way out."""
    workers = (Worker("tinygen", threads, environment), Worker("torch", threads, environment))
    try:
        yield workers
    finally:
        for w in workers:
            w.stop()


def _timing_pass(names, threads, args, seconds, info):
    """Every row timed, each in a fresh pair of workers; (rows, info, any failure).

    Fresh per row because a worker that has run other rows is not a fresh process:
    conv2d 3x3 at 2 threads measured 0.90-0.92 alone and 1.09-1.11 after the gated
    PixelCNN row in the same two workers (its heap trimmed in between), so a row's
    ratio depended on the rows before it."""
    from .cases import CASES

    rows, failed = [], False
    for name in names:
        t0 = time.perf_counter()
        with _worker_pair(threads) as workers:
            if info is None:
                info = {w.framework: w.ask("info") for w in workers}
            try:
                row = _run_case(CASES[name], workers, args.quick, seconds, args.settle_ms)
            except RuntimeError as exc:
                row = {"name": name, "error": str(exc)}
                print(exc, file=sys.stderr)
        failed |= "error" in row or row.get("check") != "same outputs"
        rows.append(row)
        if "error" not in row:
            print(f"[{threads}t] {name:<52} ours {row['ours_ms']:9.3f} ms  torch "
                  f"{row['torch_ms']:9.3f} ms  ratio {row['ratio']:5.2f}  "
                  f"({row['check']}, {time.perf_counter() - t0:.0f} s)", flush=True)
    return rows, info, failed


def combine_repeats(passes):
    """Rows of several timing passes (each a list of the same rows, fresh workers each)
    as one list: per row the median over the passes of ours, torch's and the ratio,
    with every pass's ratio kept (``ratios``).  A row that failed in any pass is that
    pass's error row."""
    combined = []
    for same in zip(*passes):
        failed = [r for r in same if "error" in r or r.get("check") != "same outputs"]
        if failed:
            combined.append(failed[0])
            continue
        row = dict(same[0])
        for key in ("ours_ms", "torch_ms", "ratio", "ours_best_ms", "torch_best_ms"):
            row[key] = statistics.median(r[key] for r in same)
        row["steps"] = sum(r["steps"] for r in same)
        row["ratios"] = [r["ratio"] for r in same]
        combined.append(row)
    return combined


def _memory_pass(rows, threads, args):
    """Peak memory of every row that timed, each in fresh FRESH_PAGES workers; whether
    any failed."""
    from .cases import CASES

    failed = False
    for row in rows:
        if "error" in row:
            continue
        with _worker_pair(threads, FRESH_PAGES) as workers:     # (fresh per row, as timing)
            try:
                row.update(_measure_memory(CASES[row["name"]], workers, args.quick))
            except RuntimeError as exc:     # (the timing stands; no memory for the row)
                print(exc, file=sys.stderr)
                failed = True
                continue
        print(f"[{threads}t] {row['name']:<52} peak memory ours "
              f"{_mb(row['ours_rss'])} MB  torch {_mb(row['torch_rss'])} MB  ratio "
              f"{memory_ratio(row) or float('nan'):5.2f}", flush=True)
    return failed


def selected(cases, grid=False, only=None):
    """The names of the rows to run: issue 12's (or with ``grid`` the layer grid's: not
    issue 12's rows, never written into its table), those containing one of ``only``'s
    substrings if given."""
    return [n for n, case in cases.items() if (case.group == "grid") == grid
            and (not only or any(s in n for s in only))]


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    from .cases import CASES

    names = selected(CASES, args.grid, args.only)
    if args.grid:
        args.no_write = True
    seconds = args.seconds or (1.0 if args.quick else 4.0)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    passes, info, failed = {t: [] for t in args.threads}, None, False
    start = time.perf_counter()
    # (repeat outermost: the passes of one thread count spread over the run's drift)
    for repeat in range(args.repeat):
        if args.repeat > 1:
            print(f"-- timing pass {repeat + 1} of {args.repeat}", flush=True)
        for threads in args.threads:
            rows, info, pass_failed = _timing_pass(names, threads, args, seconds, info)
            passes[threads].append(rows)
            failed |= pass_failed
    all_rows = {}
    for threads in args.threads:
        rows = all_rows[threads] = (combine_repeats(passes[threads]) if args.repeat > 1
                                    else passes[threads][0])
        failed |= _memory_pass(rows, threads, args)
    print()
    print(_header(info, args, load))
    for t, rows in all_rows.items():
        print()
        print(_table(rows, t))
    print(f"\n(total {time.perf_counter() - start:.0f} s)")
    if not args.no_write:
        _write(all_rows, info, args, load)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
