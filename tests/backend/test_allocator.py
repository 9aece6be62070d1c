"""glibc malloc tuning (tinygen/backend/allocator.py): set when the backend is imported,
left alone with TINYGEN_MALLOC_TUNING=0, and it does what it is for: a step that frees
and reallocates the same large temporaries stops taking page faults."""
import os
import subprocess
import sys

import pytest

linux_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
    reason="glibc's mallopt only")

_PROBE = """
import resource, numpy as np, tinygen
from tinygen.backend import allocator
def step():
    a = np.ones((4 << 20,), np.float32)   # 16 MiB temporaries, freed at once
    b = a * 2.0
    return float(b[-1])
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(allocator.is_tuned(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(env_value):
    env = dict(os.environ)
    env.pop("TINYGEN_MALLOC_TUNING", None)
    if env_value is not None:
        env["TINYGEN_MALLOC_TUNING"] = env_value
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])


@linux_glibc
def test_tuned_malloc_reuses_large_blocks_without_page_faults():
    tuned, faults = _probe(None)
    assert tuned
    # 10 steps x 32 MiB: 81,920 faults of 4 KiB pages when every block is fresh
    assert faults < 1000


@linux_glibc
def test_tuning_can_be_switched_off():
    tuned, faults = _probe("0")
    assert not tuned
    assert faults > 10_000  # the default behaviour the tuning exists to avoid
