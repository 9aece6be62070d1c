"""Dropping numba's on-disk caches of this package when any of its sources changed.

numba keys a cached kernel by its OWN source file's time stamp and size only.  A kernel
that calls a kernel of another module (``conv_phase`` calling ``conv_bounds``'s
``add_terms_images`` or ``_cblas.gemm``) has the callee compiled into it, so after an
edit of the callee's module the caller's cache entry still looks fresh and numba loads
the OLD callee's machine code with it: a planted bug goes unseen, a fix seems not to
work.  So the cache is keyed by all the package's sources together: a digest of them is
kept beside the cache files, and when it differs, every cache file of the package is
removed before any kernel is compiled or loaded.

Handled: the package's own ``__pycache__`` (where numba writes in a source checkout,
the only place where sources are edited) and, when ``NUMBA_CACHE_DIR`` is set, numba's
directory for this package under it; in both, the directories of the pool's kernel
wrappers made from other sources (``_wrappers.py``, which names them by the digest),
and under ``NUMBA_CACHE_DIR`` numba's compiled copies of those wrappers.
(Not numba's per-user fallback for read-only installs, whose sources do not change.)
Several processes at once (pytest's workers) are harmless: removing a cache file is at
worst a recompile, and numba reads a missing data file as a cache miss."""
import hashlib
import os
import shutil
from pathlib import Path

STAMP = "tinygen-numba-sources.sha256"
_SUFFIXES = (".nbi", ".nbc")
WRAPPERS = "wrappers-"      # + a digest: the pool's kernel wrappers made from one version of
                            # the sources (``_wrappers.py``)


def sources_digest(directory):
    """SHA-256 over the names and contents of the directory's *.py files, in name order."""
    digest = hashlib.sha256()
    for path in sorted(Path(directory).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_dirs(directory):
    """Where numba keeps the caches of the kernels in ``directory``: its __pycache__,
    and NUMBA_CACHE_DIR's directory for it when that is set (numba's naming)."""
    from numba.core import caching, config

    dirs = [Path(directory) / "__pycache__"]
    if config.CACHE_DIR:
        subpath = caching.UserProvidedCacheLocator.get_suitable_cache_subpath(
            str(Path(directory).resolve() / "__init__.py"))
        dirs.append(Path(config.CACHE_DIR) / subpath)
    return dirs


def drop_stale_caches(directory):
    """Remove the numba cache files of the kernels in ``directory`` unless they were
    made from the sources there now; returns how many were removed."""
    digest = sources_digest(directory)
    caches = cache_dirs(directory)
    stale = [cache for cache in caches if not _is_current(cache, digest)]
    if not stale:       # (the usual start: nothing to remove, no directory to scan)
        return 0
    removed = sum(_drop(cache, digest) for cache in stale)
    return removed + _drop_compiled_wrappers(caches, digest)


def _is_current(cache, digest):
    """Whether ``cache`` was stamped with this digest (its files made from these sources)."""
    try:
        return (cache / STAMP).read_text() == digest
    except OSError:
        return False


def _drop_compiled_wrappers(caches, digest):
    """With NUMBA_CACHE_DIR set, numba compiles the pool's wrapper files (written in
    ``caches``' ``wrappers-<digest>`` directories) into a directory of its own for each,
    named (numba's ``get_suitable_cache_subpath``) ``wrappers-<digest>_<SHA-1 of the
    wrapper directory's path>``: the path names this checkout, the digest the version.
    Remove those of this checkout's other versions (another checkout's have another
    path hash and are left alone)."""
    from numba.core import config

    if not config.CACHE_DIR:
        return 0
    try:
        entries = list(Path(config.CACHE_DIR).iterdir())
    except OSError:             # not made yet, or not ours to read
        return 0
    current = WRAPPERS + digest[:20]
    removed = 0
    for path in entries:
        name, _, hashed = path.name.rpartition("_")
        if not name.startswith(WRAPPERS) or name == current or not path.is_dir():
            continue
        wrappers = [os.path.abspath(cache / name) for cache in caches]
        if any(hashlib.sha1(w.encode()).hexdigest() == hashed for w in wrappers):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _drop(cache, digest):
    """Remove ``cache``'s numba files and other versions' wrapper directories, then stamp
    it with ``digest``; returns how many were removed."""
    stamp = cache / STAMP
    removed = 0
    if cache.is_dir():
        for path in cache.iterdir():
            if path.name.startswith(WRAPPERS) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)     # (another version's wrappers)
                removed += 1
            elif path.suffix in _SUFFIXES:
                try:
                    path.unlink()
                    removed += 1
                except OSError:     # gone already (another process), or not ours to remove
                    pass
    try:
        cache.mkdir(parents=True, exist_ok=True)
        temporary = cache / f"{STAMP}.{os.getpid()}.tmp"
        temporary.write_text(digest)
        os.replace(temporary, stamp)
    except OSError:                 # a read-only install: its sources do not change
        pass
    return removed
