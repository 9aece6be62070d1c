"""glibc's malloc, tuned for a training loop's large temporaries (Linux only).

numpy takes every array's memory from malloc.  glibc serves a request above its mmap
threshold with a fresh mmap and returns it to the kernel at free; below it, from the
heap, whose free top it trims back to the kernel once it exceeds the trim threshold.
The thresholds start at 128 KiB and grow only as far as the largest block freed so
far, so a step that allocates and frees the same tens of megabytes of activations and
gradients every time gets fresh, zeroed pages from the kernel each time: one page
fault per 4 KiB touched.  A gated PixelCNN step (batch 32) took ~29,000 faults and
~0.3 s of system time per step that way; with the settings below, none.

``tune()`` (run once, when the CPU backend is imported) fixes both thresholds: blocks
up to ``MMAP_THRESHOLD`` (glibc's maximum, 32 MiB on 64-bit) come from the heap, and
freed heap memory is kept up to ``TRIM_THRESHOLD`` for the next step instead of being
handed back.  The cost: the process keeps up to that much freed memory mapped (its
resident size stays near its peak).  Set ``TINYGEN_MALLOC_TUNING=0`` to leave malloc
alone (before importing tinygen).
"""
import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1       # mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20   # glibc refuses more than HEAP_MAX_SIZE / 2 (32 MiB on 64-bit)
TRIM_THRESHOLD = 1 << 30

_state = {"tuned": None}


def tune():
    """Set glibc's mmap and trim thresholds (once); returns whether they are set."""
    if _state["tuned"] is not None:
        return _state["tuned"]
    _state["tuned"] = False
    if os.environ.get("TINYGEN_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only (musl has no mallopt parameters like these)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; setting either threshold also switches off glibc's
    # dynamic adjustment of both.
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    _state["tuned"] = ok
    return ok


def is_tuned():
    return bool(_state["tuned"])
