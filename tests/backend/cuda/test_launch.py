"""launch(): every wrong call is an exception naming the problem, before any kernel runs."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygen.backend.cuda_kernels.launch import launch, pack_arguments
from tinygen.backend.cuda_kernels.source import default_sources

FORWARD = "gated_activation_forward_f64"  # (const double* x, double* out, long long p, q)


def _args(p=2, q=3):
    return np.zeros((p, 2, q)), np.zeros((p, q)), p, q


def test_unknown_kernel_lists_the_known_ones():
    with pytest.raises(LookupError, match=r"unknown CUDA kernel 'gated_forward_f64'; the kernels "
                                          r"are: .*gated_activation_forward_f64"):
        launch("gated_forward_f64", 1, 32, _args())


def test_wrong_arity_shows_the_signature():
    with pytest.raises(TypeError, match=r"gated_activation_forward_f64 takes 4 arguments "
                                        r"\(const double\* x, double\* out, long long p_count, "
                                        r"long long q_count\), got 3"):
        launch(FORWARD, 1, 32, _args()[:3])


def test_wrong_dtype_names_the_argument():
    x, out, p, q = _args()
    with pytest.raises(TypeError, match=r"argument 1 'out' \(double\* out\) must be a float64 "
                                        r"array, got float32"):
        launch(FORWARD, 1, 32, (x, out.astype(np.float32), p, q))


def test_non_contiguous_array_is_refused():
    x, out, p, q = _args(p=2, q=6)
    with pytest.raises(ValueError, match=r"argument 0 'x' .* must be C-contiguous"):
        launch(FORWARD, 1, 32, (x[:, :, ::2], out[:, ::2], p, 3))


def test_read_only_output_is_refused():
    x, out, p, q = _args()
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"'out' .* is written by the kernel but the array is "
                                         r"read-only"):
        launch(FORWARD, 1, 32, (x, out, p, q))


def test_non_array_for_a_pointer():
    x, out, p, q = _args()
    with pytest.raises(TypeError, match=r"argument 0 'x' .* must be a numpy or cupy array, got "
                                        r"list"):
        launch(FORWARD, 1, 32, (x.tolist(), out, p, q))


@pytest.mark.parametrize("value, error, message", [
    (2.5, TypeError, r"argument 2 'p_count' \(long long p_count\) must be an integer, got 2.5"),
    (True, TypeError, r"'p_count' .* must be a number, got bool"),
    (2**63, OverflowError, r"'p_count' .* does not fit in a long long"),
    ("2", TypeError, r"'p_count' .* must be a number, got str"),
])
def test_bad_scalars(value, error, message):
    x, out, _, q = _args()
    with pytest.raises(error, match=message):
        launch(FORWARD, 1, 32, (x, out, value, q))


@pytest.mark.parametrize("grid, block, message", [
    (1, 1025, r"block.x must be in \[1, 1024\], got 1025"),
    (1, (32, 32, 2), r"block \(32, 32, 2\) has 2048 threads"),
    (1, (1, 1, 65), r"block.z must be in \[1, 64\]"),
    (0, 32, r"grid.x must be in \[1, 2147483647\], got 0"),
    ((1, 70000), 32, r"grid.y must be in \[1, 65535\]"),
    ((1, 1, 1, 1), 32, r"grid must have 1 to 3 dimensions"),
])
def test_bad_launch_shapes(grid, block, message):
    with pytest.raises(ValueError, match=message):
        launch(FORWARD, grid, block, _args())


class _DeviceArray:
    """Looks like a cupy array on GPU 0 to launch() (which never touches its memory here)."""
    __module__ = "cupy._core.core"

    def __init__(self, like):
        self.dtype, self.shape, self.strides, self.flags = (like.dtype, like.shape, like.strides,
                                                            like.flags)
        self.data = object()
        self.device = type("Device", (), {"id": 0})()


def test_arrays_on_two_devices_are_refused():
    x, out, p, q = _args()
    with pytest.raises(ValueError, match=r"all arrays must be on one device: 'x' is on the CPU "
                                         r"\(numpy\), 'out' on GPU 0 \(cupy\)"):
        launch(FORWARD, 1, 32, (x, _DeviceArray(out), p, q))


def test_packed_scalars_have_the_parameters_exact_types():
    values, device = pack_arguments(default_sources().signature(FORWARD), _args())
    assert device == "cpu"
    assert [type(v) for v in values[2:]] == [np.int64, np.int64]
    signature = default_sources().signature("gated_activation_forward_f32")
    x = np.zeros((1, 2, 1), np.float32)
    with pytest.raises(TypeError, match="must be a float32 array, got float64"):
        pack_arguments(signature, (x.astype(np.float64), x[:, 0], 1, 1))


def test_the_cpu_path_never_imports_cupy(emulated):
    # A subprocess in which importing cupy fails: launching on numpy arrays must not try.
    code = """
import sys
class NoCupy:
    def find_spec(self, name, path=None, target=None):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("cupy imported on the CPU path")
sys.meta_path.insert(0, NoCupy())
import numpy as np
from tinygen.backend.cuda_kernels.gated_activation import gated_forward
print(gated_forward(np.zeros((1, 2, 3))).tolist())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[[0.0, 0.0, 0.0]]"
