"""tinygen shortens OpenBLAS's idle spin before numpy loads it (issue 12: its spinning
workers starved numba's threads, 2 threads ran 3x slower than 1); a user's setting wins."""
import os
import subprocess
import sys

CODE = "import tinygen, os; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"


def _run(env_value):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if env_value is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = env_value
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_import_sets_a_short_openblas_spin_and_a_user_setting_wins():
    assert _run(None) == "4"
    assert _run("20") == "20"
