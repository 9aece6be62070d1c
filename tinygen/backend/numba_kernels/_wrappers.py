"""The C wrappers through which the pool's threads run a numba kernel's ranges, made
once per kernel and argument types, and cached on disk like the kernels themselves.

A compiled job (``chunks.share_rows``, ``share_range``, ``share_pieces``) calls its
kernel through ``int64 f(int64 *block, int64 lo, int64 hi)``: a ``numba.cfunc`` that
rebuilds the kernel's arguments from the block of words ``_spin.launch_with`` writes
(an array: its address, then its shape; a scalar: its bits) and returns 1 when the
kernel raised (numba would otherwise print the error and go on), else 0.

numba compiles the kernel into each wrapper afresh, ~1.9 s a wrapper, and can cache a
``cfunc`` only when it comes from a source file.  Made from a string (as the wrappers
were until session 18) the 19 wrappers of a DCGAN step were compiled again in every
process that ran at 2 threads: its first step took 35.8 s against 0.39 s at 1 thread
(quiet), and the compiler's garbage left ~17 MB of free holes in the heap.  So each
wrapper's source is written to a file of its own, named by the source's digest, and
its ``cfunc`` is compiled with numba's cache: from the second process on it loads in
milliseconds (the DCGAN step's first call: 0.49 s).

Staleness: numba checks only the wrapper file's own time stamp, and the kernel is
compiled into the wrapper, so after an edit of the kernel's module the cached wrapper
would run the OLD kernel.  The files therefore live in a directory named by the digest
of all this package's sources (``_stale_cache.sources_digest``): any edit gives new
files in a new directory, compiled afresh, and ``_stale_cache`` removes the old
directories.  The directory is the package's own ``__pycache__`` (a source checkout,
where numba caches the kernels too); where that is not writable (a read-only
install), NUMBA_CACHE_DIR's directory for this package when it is set; else the
wrappers are compiled in memory, once per process, as before.

A kernel the wrapper cannot import by name (not a global of its module), or one from
outside this package (a test's), is compiled in memory too.
"""
import hashlib
import importlib.util
import os
import sys
import threading
from pathlib import Path

import numba
import numpy as np

from . import _spin, _stale_cache

SIGNATURE = numba.types.int64(numba.types.CPointer(numba.types.int64), numba.types.int64,
                              numba.types.int64)
_SCALARS = {float: np.float64, int: np.int64, bool: np.bool_}
_directory = []         # [the directory, or None where nothing can be written], found once
_loading = threading.Lock()


def make_wrapper(kernel, rows, args):
    """The C function that calls ``kernel`` on the range [lo, hi) (``rows``: the
    arrays' rows [lo, hi); else the arrays whole and lo, hi as the last arguments)."""
    call, likes = _call(rows, args)
    name = _global_name(kernel)
    directory = _wrapper_directory() if name is not None else None
    if directory is None:
        return _in_memory(kernel, call, likes)
    module, attribute = name
    lines = ["import numpy as np",
             "from numba import carray, cfunc",
             f"from {__package__}._spin import from_bits, pointer",
             f"from {__package__}._wrappers import SIGNATURE",
             f"from {module} import {attribute} as kernel"]
    for i, like in enumerate(likes):
        if isinstance(like, np.ndarray):
            lines.append(f"like{i} = np.empty({(0,) * like.ndim!r}, "
                         f"dtype=np.dtype({like.dtype.str!r}))")
        else:
            lines.append(f"like{i} = np.{type(like).__name__}(0)")
    source = "\n".join(lines + ["", "", _wrapper_source(call), "",
                                 'compiled = cfunc(SIGNATURE, error_model="numpy", '
                                 'cache=True)(wrapper)', ""])
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    path = directory / f"w_{digest}.py"
    module_name = f"tinygen_wrapper_{digest}"
    # (two Python threads may ask for one wrapper at once: the file is written under one
    # name per process, and the module is in sys.modules before it has run, so the
    # second waits for the first to finish both)
    with _loading:
        try:
            _write_once(path, source)
        except OSError:
            return _in_memory(kernel, call, likes)
        loaded = sys.modules.get(module_name)
        if loaded is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = loaded       # (numba's cache finds the file by it)
            try:
                spec.loader.exec_module(loaded)
            except BaseException:
                del sys.modules[module_name]
                raise
    return loaded.compiled


def _call(rows, args):
    """The kernel call's argument list, as source, and the ``like`` value of each
    argument (an empty array of its dtype and rank, or a scalar of its type) that
    types the words read back."""
    values, likes, at = [], [], 0
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            likes.append(np.empty((0,) * a.ndim, dtype=a.dtype))
            dims = [f"block[{at + 1 + d}]" for d in range(a.ndim)]
            if rows:        # (the rows [lo, hi): the address moves on by lo rows)
                row = " * ".join([str(a.dtype.itemsize)] + dims[1:])
                address = f"block[{at}] + lo * {row}"
                dims[0] = "hi - lo"
            else:
                address = f"block[{at}]"
            values.append(f"carray(pointer({address}, like{i}), ({', '.join(dims)},))")
            at += 1 + a.ndim
        else:
            likes.append(_SCALARS.get(type(a), type(a))(0))
            values.append(f"from_bits(block[{at}], like{i})")
            at += 1
    if at > _spin.BLOCK_WORDS:
        raise ValueError(f"share_rows/share_range: {len(args)} arguments need {at} words, "
                         f"more than the block's {_spin.BLOCK_WORDS}")
    if not rows:
        values += ["lo", "hi"]
    return ", ".join(values), likes


def _wrapper_source(call):
    """The wrapper function's own source, the same in a file and in memory."""
    return (f"def wrapper(block, lo, hi):\n    try:\n        kernel({call})\n"
            f"    except Exception:\n        return 1\n    return 0\n")


def _in_memory(kernel, call, likes):
    names = {"kernel": kernel, "carray": numba.carray, "pointer": _spin.pointer,
             "from_bits": _spin.from_bits}
    names.update({f"like{i}": like for i, like in enumerate(likes)})
    exec(_wrapper_source(call), names)
    return numba.cfunc(SIGNATURE, error_model="numpy")(names["wrapper"])


def _global_name(kernel):
    """(module, name) under which ``kernel`` is a global of the module of this package
    that defines it, or None (a kernel from elsewhere: a change of its module would not
    change this package's digest)."""
    function = getattr(kernel, "py_func", None)
    module_name = getattr(function, "__module__", None) or ""
    module = sys.modules.get(module_name)
    if module is None or not module_name.startswith(__package__ + "."):
        return None
    for name, value in vars(module).items():
        if value is kernel and name.isidentifier():
            return module.__name__, name
    return None


def _wrapper_directory():
    if not _directory:
        _directory.append(_find_directory())
    return _directory[0]


def _find_directory():
    """This version's wrapper directory in the first writable cache directory of the
    package (``_stale_cache.cache_dirs``), made if need be; None if none is."""
    package = Path(__file__).parent
    name = _stale_cache.WRAPPERS + _stale_cache.sources_digest(package)[:20]
    for cache in _stale_cache.cache_dirs(package):
        directory = cache / name
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe = directory / f".probe.{os.getpid()}"
            probe.write_text("")
            probe.unlink()
            return directory
        except OSError:
            continue
    return None


def _write_once(path, source):
    """Write ``source`` to ``path`` unless it holds it already: an unchanged file keeps
    its time stamp, which numba's cache index checks.  Several processes at once (pytest's
    workers) each write a file of their own and rename it into place."""
    try:
        if path.read_text() == source:
            return
    except OSError:
        pass
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(source)
    os.replace(temporary, path)
