"""numba-jitted CPU kernels (cached, ``nogil``) for the hot paths; each is tested against
the matching reference implementation in ``tinygen.backend.reference``.

No kernel is ``parallel=True``: each runs on the thread that calls it, and tinygen's
one thread pool (``chunks.py``) shares a kernel's rows, planes or elements out among
threads (``chunks.parallel_range``), so that numba's thread pool, OpenBLAS's and ours
never take turns on the cores (see chunks.py for what that cost).

Cached kernels are dropped whenever any source of this package changed (``_stale_cache``:
numba alone would keep a caller's cache entry after an edit of a kernel it calls)."""
from pathlib import Path as _Path

from ._stale_cache import drop_stale_caches as _drop_stale_caches

_drop_stale_caches(_Path(__file__).parent)
