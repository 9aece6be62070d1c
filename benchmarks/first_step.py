"""A new process's first training step: the thread pool's kernel wrappers compiled, or
loaded from numba's on-disk cache.

    python -m benchmarks.first_step [--case DCGAN] [--threads 2]

At more than one thread, the pool (``tinygen/backend/numba_kernels/chunks.py``) calls
each shared-out kernel through a small compiled C wrapper
(``numba_kernels/_wrappers.py``).  Until session 18 every process compiled its wrappers
afresh on its first steps; now the first process on a machine compiles them and the
later ones load them.  This runs the cpu suite's row ``--case`` (a substring of its
name) in three fresh processes, each timing its import and build, its first step and
its second:

1. at 1 thread, which makes no wrappers (and warms numba's cache of the kernels
   themselves, so that the next two compare the wrappers alone);
2. at ``--threads``, with an empty wrapper directory: every wrapper compiled, as every
   process did before;
3. the same again: every wrapper loaded from the cache the second process wrote.

Prints the three and the ratio of the compiled first step to the loaded one.  The
wrapper directory is a temporary one, so the package's own cache is left alone.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", default="DCGAN",
                        help="a substring of the cpu suite row's name (default DCGAN)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # (a wrapper directory)
    return parser


def _child(case_name, directory):
    """One process's timings, as JSON on stdout (run with the thread counts set)."""
    start = time.perf_counter()
    from pathlib import Path

    from benchmarks.cpu_suite import worker
    from benchmarks.cpu_suite.cases import CASES

    threads = int(os.environ["NUMBA_NUM_THREADS"])
    worker._pin_threads("tinygen", threads)
    from tinygen.backend.numba_kernels import _wrappers, chunks

    _wrappers._directory[:] = [Path(directory)]
    names = [n for n in CASES if case_name in n]
    if not names:
        raise SystemExit(f"no cpu suite row's name contains {case_name!r}")
    bench = CASES[names[0]].build("tinygen", True, None)
    built = time.perf_counter()
    bench.step()
    first = time.perf_counter()
    bench.step()
    second = time.perf_counter()
    wrappers = list(chunks._made_wrappers.values())
    print(json.dumps({"row": names[0], "threads": threads, "build_s": built - start,
                      "first_step_s": first - built, "second_step_s": second - first,
                      "wrappers": len(wrappers),
                      "loaded": sum(getattr(w, "cache_hits", 0) for w in wrappers)}))


def run(case, threads):
    """The three processes' timings (dicts), in the order of the module docstring."""
    results = []
    with tempfile.TemporaryDirectory(prefix="tinygen-wrappers-") as directory:
        for count in (1, threads, threads):
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
            for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                        "NUMBA_NUM_THREADS"):
                env[var] = str(count)
            out = subprocess.run([sys.executable, "-m", "benchmarks.first_step", "--case", case,
                                  "--child", directory], cwd=REPO, env=env,
                                 capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"the {count}-thread process failed:\n{out.stderr}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.child:
        _child(args.case, args.child)
        return
    if args.threads < 2:
        raise SystemExit("--threads must be 2 or more: at 1 thread the pool makes no wrappers")
    one, compiled, loaded = run(args.case, args.threads)
    print(f"{one['row']}: a new process's first step")
    for label, r in [("1 thread (no wrappers)", one),
                     (f"{args.threads} threads, wrappers compiled", compiled),
                     (f"{args.threads} threads, wrappers loaded", loaded)]:
        print(f"  {label:34s} import+build {r['build_s']:6.2f} s  first step "
              f"{r['first_step_s']:7.2f} s  second {r['second_step_s'] * 1e3:7.1f} ms  "
              f"wrappers {r['wrappers']} ({r['loaded']} loaded)")
    print(f"  first step, compiled / loaded: "
          f"{compiled['first_step_s'] / loaded['first_step_s']:.1f}x")


if __name__ == "__main__":
    main()
