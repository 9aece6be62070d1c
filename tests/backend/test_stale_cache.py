"""numba's caches of the kernel package are dropped when any of its sources changes
(``tinygen/backend/numba_kernels/_stale_cache.py``)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tinygen.backend.numba_kernels._stale_cache import STAMP, drop_stale_caches, sources_digest

REPO = Path(__file__).resolve().parents[2]


def _package(root, value):
    """A package whose cached kernel ``caller.g`` calls ``callee.f`` (returns ``value``) of
    another module; its __init__ drops stale caches unless NO_DROP is set."""
    pkg = root / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text(textwrap.dedent("""\
        import os
        from pathlib import Path
        from tinygen.backend.numba_kernels._stale_cache import drop_stale_caches
        if not os.environ.get("NO_DROP"):
            drop_stale_caches(Path(__file__).parent)
        """))
    (pkg / "callee.py").write_text(
        f"from numba import njit\n\n@njit(cache=True)\ndef f():\n    return {value}\n")
    (pkg / "caller.py").write_text(
        "from numba import njit\nfrom .callee import f\n\n"
        "@njit(cache=True)\ndef g():\n    return f()\n")


def _run(root, **env):
    """g() in a fresh process; ``env`` set (None: removed) on top of this process's."""
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{REPO}", **env}
    out = subprocess.run(
        [sys.executable, "-c", "from pkg.caller import g; print(g())"], cwd=root,
        env={k: v for k, v in env.items() if v is not None},
        capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.parametrize("where", ["__pycache__", "NUMBA_CACHE_DIR"])
def test_an_edit_of_a_called_kernels_module_reaches_its_cached_caller(tmp_path, where):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache") if where == "NUMBA_CACHE_DIR"
           else None}
    _package(tmp_path, 1)
    assert _run(tmp_path, **env) == 1
    _package(tmp_path, 22)          # callee.py changes; caller.py, whose cache holds f, not
    assert _run(tmp_path, **env) == 22
    if where == "NUMBA_CACHE_DIR":  # (numba wrote there, not beside the sources)
        assert not list((tmp_path / "pkg" / "__pycache__").glob("*.nbi"))
        assert list((tmp_path / "numba-cache").glob("*/*.nbi"))


def test_numba_alone_would_keep_the_old_callee(tmp_path):
    # why the mechanism exists (and what the test above would see without it)
    _package(tmp_path, 1)
    assert _run(tmp_path, NO_DROP="1", NUMBA_CACHE_DIR=None) == 1
    _package(tmp_path, 22)
    assert _run(tmp_path, NO_DROP="1", NUMBA_CACHE_DIR=None) == 1


def test_cache_files_are_kept_while_the_sources_are_unchanged(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    names = ["a.f-1.py311.nbi", "a.f-1.py311.1.nbc", "a.cpython-311.pyc"]
    for name in names:
        (cache / name).write_bytes(b"0")
    assert drop_stale_caches(tmp_path) == 2          # no stamp yet: dropped
    assert sorted(p.name for p in cache.iterdir()) == sorted([names[2], STAMP])
    assert (cache / STAMP).read_text() == sources_digest(tmp_path)
    for name in names[:2]:
        (cache / name).write_bytes(b"0")
    assert drop_stale_caches(tmp_path) == 0          # same sources: kept
    assert (cache / names[0]).exists() and (cache / names[1]).exists()
    (tmp_path / "b.py").write_text("y = 2\n")        # a new module changes the digest too
    assert drop_stale_caches(tmp_path) == 2
    assert (cache / names[2]).exists()               # Python's own caches are not numba's


def test_the_digest_covers_names_and_contents(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    first = sources_digest(tmp_path)
    (tmp_path / "a.py").write_text("x = 2\n")
    second = sources_digest(tmp_path)
    (tmp_path / "a.py").rename(tmp_path / "b.py")
    assert len({first, second, sources_digest(tmp_path)}) == 3
