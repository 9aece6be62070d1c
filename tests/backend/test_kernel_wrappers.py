"""The pool's kernel wrappers (``tinygen/backend/numba_kernels/_wrappers.py``): compiled
once, then loaded from numba's cache in every later process; never stale."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest

from tinygen.backend.numba_kernels import _stale_cache, _wrappers, activations, chunks

REPO = Path(__file__).resolve().parents[2]

# A process that makes the wrapper of the ReLU backward (through the pool, at 2 threads,
# its wrapper directory set to argv[1]), checks what it computes, and prints its cache hits.
_MAKE = textwrap.dedent("""\
    import sys
    from pathlib import Path
    import numpy as np
    from tinygen.backend.numba_kernels import _wrappers, activations, chunks
    _wrappers._directory[:] = [Path(sys.argv[1])]
    g = np.random.default_rng(0).standard_normal(1 << 18).astype(np.float32)
    x = np.random.default_rng(1).standard_normal(g.size).astype(np.float32)
    mask = activations.relu_forward(x)[1]
    expected = np.where(x > 0, g, np.float32(0))
    got = activations.relu_backward(g, mask)
    assert np.array_equal(got, expected), "wrong gradient"
    (wrapper,) = [w for (k, rows, _), w in chunks._made_wrappers.items()
                  if k is activations._RELU_BACKWARD]
    print(wrapper.cache_hits)
    """)


def _make_in_a_process(directory):
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", _MAKE, str(directory)], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_a_wrapper_is_compiled_once_then_loaded_from_the_cache(tmp_path):
    assert _make_in_a_process(tmp_path) == 0          # compiled, and saved
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("w_*.py")}
    assert len(stamps) == 2                           # (the forward's and the backward's)
    assert _make_in_a_process(tmp_path) == 1          # loaded: no compiler
    # an unchanged file is not rewritten (its time stamp is in numba's cache index)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("w_*.py")} == stamps


def test_the_wrapper_directory_is_named_by_the_sources_digest():
    directory = _wrappers._find_directory()
    if directory is None:
        pytest.skip("no writable cache directory for the package")
    package = Path(_wrappers.__file__).parent
    assert directory.name == _stale_cache.WRAPPERS + _stale_cache.sources_digest(package)[:20]
    assert directory.parent in _stale_cache.cache_dirs(package)


def test_other_versions_wrappers_are_dropped_with_the_stale_caches(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    cache = tmp_path / "__pycache__"
    old = cache / (_stale_cache.WRAPPERS + "0" * 20)
    (old / "__pycache__").mkdir(parents=True)
    (old / "w_1.py").write_text("")
    (old / "__pycache__" / "w_1.wrapper-12.py311.nbi").write_bytes(b"0")
    assert _stale_cache.drop_stale_caches(tmp_path) == 1
    assert not old.exists()
    kept = cache / (_stale_cache.WRAPPERS + _stale_cache.sources_digest(tmp_path)[:20])
    kept.mkdir()
    assert _stale_cache.drop_stale_caches(tmp_path) == 0 and kept.exists()


def test_numbas_compiled_copies_of_this_checkouts_old_wrappers_are_dropped(tmp_path,
                                                                            monkeypatch):
    # With NUMBA_CACHE_DIR set, numba compiles a wrapper directory's files into
    # CACHE_DIR/<its name>_<SHA-1 of its path>: this checkout's other versions go, the
    # current one and another checkout's (another path) stay.
    from numba.core import caching, config

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    numba_cache = tmp_path / "numba-cache"
    numba_cache.mkdir()
    monkeypatch.setattr(config, "CACHE_DIR", str(numba_cache))

    def compiled_copy(wrapper_dir):    # where numba puts a wrapper file's cache
        path = numba_cache / caching._CacheLocator.get_suitable_cache_subpath(
            str(wrapper_dir / "w_1.py"))
        path.mkdir()
        (path / "w_1.wrapper-12.py311.nbi").write_bytes(b"0")
        return path

    current = _stale_cache.WRAPPERS + _stale_cache.sources_digest(package)[:20]
    old = _stale_cache.WRAPPERS + "0" * 20
    mine_old = compiled_copy(package / "__pycache__" / old)
    mine_now = compiled_copy(package / "__pycache__" / current)
    elsewhere = compiled_copy(tmp_path / "other" / "__pycache__" / old)
    _stale_cache.drop_stale_caches(package)
    assert not mine_old.exists()
    assert mine_now.exists() and elsewhere.exists()


@numba.njit(nogil=True)
def _double(x, out):
    for i in range(x.shape[0]):
        out[i] = 2 * x[i]


def test_a_kernel_from_outside_the_package_is_compiled_in_memory(monkeypatch, tmp_path):
    monkeypatch.setattr(_wrappers, "_directory", [tmp_path])
    wrapper = _wrappers.make_wrapper(_double, True, (np.zeros(3), np.zeros(3)))
    assert wrapper.cache_hits == 0 and not list(tmp_path.iterdir())
    assert _wrappers._global_name(_double) is None
    assert _wrappers._global_name(activations._RELU_BACKWARD) == (
        activations.__name__, "_RELU_BACKWARD")


def test_without_a_writable_directory_the_wrapper_is_compiled_in_memory(monkeypatch):
    monkeypatch.setattr(_wrappers, "_directory", [None])
    x = np.arange(1 << 18, dtype=np.float32) - 1000
    for cache in ("_made_wrappers", "_last_wrapper", "_wrapper_by_code"):
        monkeypatch.setattr(chunks, cache, {})
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    y, mask = activations.relu_forward(x)
    assert np.array_equal(activations.relu_backward(np.ones_like(x), mask), (x > 0) * 1.0)
    assert chunks._made_wrappers, "the job was not shared out"


def test_two_threads_asking_for_one_wrapper_get_the_same_one(monkeypatch, tmp_path):
    import threading

    monkeypatch.setattr(_wrappers, "_directory", [tmp_path])
    x = np.zeros(8, np.float32)
    args = (x, x, np.float32(1), x)         # (g, y, one, out: the tanh backward's rows)
    got, errors = [], []

    def make():
        try:
            got.append(_wrappers.make_wrapper(activations._TANH_BACKWARD, True, args))
        except Exception as e:          # (an unfinished module: 'has no attribute compiled')
            errors.append(e)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 4 and len({id(w) for w in got}) == 1
