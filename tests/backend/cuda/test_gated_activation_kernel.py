"""kernels/gated_activation.cu under the emulator vs the numpy reference, and the 'cuda'
gated_activation family module (tinygen.backend.cuda_kernels.gated_activation)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygen as tg
import tinygen.nn.functional as F
from tinygen.backend import kernels as K
from tinygen.backend.cuda_kernels import gated_activation as cuda_gated
from tinygen.backend.reference import gated_activation as reference
from tinygen.testing import gradcheck
from tinygen.testing.fake_cuda import fake_cuda

RTOL = {np.float32: 1e-5, np.float64: 1e-10}
# Odd sizes: a single element, less than a block, a ragged second block, many blocks.
SHAPES = [(1, 1), (3, 37), (2, 257), (7, 300)]


def _x3(rng, p, q, dtype):
    x = rng.standard_normal((p, 2, q)) * 4
    x.flat[::7] *= 6  # tails, where 1 - tanh^2 and 1 - sigmoid cancel in naive forms
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_reference(emulated, rng, dtype, shape):
    x3 = _x3(rng, *shape, dtype)
    out = cuda_gated.gated_forward(x3)
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_allclose(out, reference.gated_forward(x3), rtol=RTOL[dtype], atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_reference(emulated, rng, dtype, shape):
    x3 = _x3(rng, *shape, dtype)
    g = rng.standard_normal(shape).astype(dtype)
    out = cuda_gated.gated_backward(g, x3)
    assert out.dtype == dtype and out.shape == x3.shape
    # atol: below the smallest normal number (subnormals) precision is absolute.
    np.testing.assert_allclose(out, _accurate_backward(g, x3), rtol=RTOL[dtype],
                               atol=np.finfo(dtype).tiny)
    # The reference's 1 - t*t is exactly 0 where t rounds to 1: equal up to that.
    np.testing.assert_allclose(out, reference.gated_backward(g, x3), rtol=RTOL[dtype],
                               atol=1e-15)


def _accurate_backward(g, x3):
    """The gradient in float64 without cancellation: 1 - tanh^2 = 1 / cosh^2 and
    s (1 - s) = e / (1 + e)^2 with e = exp(-|b|)."""
    a, b = x3[:, 0].astype(np.float64), x3[:, 1].astype(np.float64)
    g = g.astype(np.float64)
    e = np.exp(-np.abs(b))
    s = np.where(b >= 0, 1 / (1 + e), e / (1 + e))
    return np.stack([g * s / np.cosh(a) ** 2, g * np.tanh(a) * e / (1 + e) ** 2], axis=1)


def test_grid_stride_loop_covers_more_elements_than_threads(emulated, rng, monkeypatch):
    monkeypatch.setattr(cuda_gated, "MAX_BLOCKS", 2)  # 512 threads for 3 * 401 elements
    x3 = _x3(rng, 3, 401, np.float64)
    g = rng.standard_normal((3, 401))
    np.testing.assert_allclose(cuda_gated.gated_forward(x3), reference.gated_forward(x3),
                               rtol=1e-10)
    np.testing.assert_allclose(cuda_gated.gated_backward(g, x3), _accurate_backward(g, x3),
                               rtol=1e-10)


def test_non_contiguous_inputs_and_empty_arrays(emulated, rng):
    x3 = _x3(rng, 4, 10, np.float64)[:, :, ::2]
    np.testing.assert_allclose(cuda_gated.gated_forward(x3), reference.gated_forward(x3),
                               rtol=1e-10)
    assert cuda_gated.gated_forward(np.zeros((0, 2, 5))).shape == (0, 5)
    assert cuda_gated.gated_backward(np.zeros((3, 0)), np.zeros((3, 2, 0))).shape == (3, 2, 0)


def test_bad_arguments_are_named():
    x3 = np.zeros((2, 2, 3))
    with pytest.raises(TypeError, match="gated_forward: x3 must be a float32 or float64 array, "
                                        "got int64"):
        cuda_gated.gated_forward(np.zeros((2, 2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"x3 must have shape \(P, 2, Q\).*got \(2, 3, 3\)"):
        cuda_gated.gated_forward(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError,
                       match=r"gated_backward: g must have shape \(2, 3\).*got \(3, 2\)"):
        cuda_gated.gated_backward(np.zeros((3, 2)), x3)
    with pytest.raises(TypeError, match="g and x3 must share one dtype, got float32 and float64"):
        cuda_gated.gated_backward(np.zeros((2, 3), np.float32), x3)


@given(outer=st.integers(1, 3), half=st.integers(1, 4), inner=st.integers(1, 5),
       axis=st.sampled_from([0, 1, 2]))
def test_gated_activation_op_on_the_fake_gpu_runs_the_kernels(emulated, outer, half, inner,
                                                             axis):
    # tinygen.testing.fake_cuda: 'cuda' tensors are numpy underneath, so the op dispatches
    # to this family module and its kernels run under the emulator; the gradcheck
    # compares the kernel backward with finite differences of the kernel forward.
    shape = [outer, inner, inner + 1]
    shape[axis] = 2 * half
    data = np.random.default_rng(sum(shape) + axis).standard_normal(shape)
    with fake_cuda():
        x = tg.tensor(data, dtype=tg.float64, device="cuda", requires_grad=True)
        assert K.kernels("gated_activation", x.data) is cuda_gated
        y = F.gated_activation(x, axis=axis)
        assert y.device == "cuda"
        a, b = np.split(data, 2, axis=axis)
        np.testing.assert_allclose(y.numpy(), np.tanh(a) / (1 + np.exp(-b)), rtol=1e-10)
        gradcheck(lambda t: F.gated_activation(t, axis=axis), [x])


def test_registered_for_cuda_as_nvrtc_and_aot():
    for impl in ("nvrtc", "aot"):
        entry = K._REGISTRY["gated_activation"]["cuda"][impl]  # a module once imported
        assert getattr(entry, "__name__", entry) == "tinygen.backend.cuda_kernels.gated_activation"
