"""Thread pinning shared by the stand-alone CPU benchmarks (the suite,
``benchmarks.cpu_suite``, pins each of its worker processes itself)."""
import os
import sys


def pin_threads(parser, is_main):
    """Set the BLAS, OpenMP and numba thread counts from the command line's --threads.

    They are read when those libraries load, so a benchmark calls this before it
    imports numpy (``pin_threads(_parser(), __name__ == "__main__")``): numba, BLAS and
    torch then all use the same number of threads.  An explicit environment setting
    wins; imported as a module (tests), the parser's default is used.
    """
    args = parser.parse_known_args(sys.argv[1:] if is_main else [])[0]
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
