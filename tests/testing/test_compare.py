"""compare_impls: one function on every kernel implementation, outputs and gradients."""
import numpy as np
import pytest

import tinygen as tg
import tinygen.nn.functional as F
from tinygen.backend.cuda_kernels import emulator
from tinygen.backend.numba_kernels import conv as numba_conv
from tinygen.testing import ImplMismatch, assert_close, compare_impls, f64, rel_error
from tinygen.testing.fake_cuda import fake_cuda


def conv_bn_pool(x, w, gamma, beta):
    y = F.conv2d(x, w, padding=1)
    y = F.batch_norm(y, None, None, gamma, beta, training=True)
    return F.max_pool2d(y, 2), F.avg_pool2d(y, 2)


def _inputs(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    leaf = lambda *shape: tg.tensor(rng.standard_normal(shape), dtype=dtype,  # noqa: E731
                                    requires_grad=True)
    return leaf(2, 3, 6, 6), leaf(4, 3, 3, 3), leaf(4), leaf(4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_and_numba_agree_on_outputs_and_gradients(dtype):
    assert compare_impls(conv_bn_pool, _inputs(dtype), impls=("reference", "numba")) == \
        ("reference", "numba")


def test_cuda_is_left_out_without_a_gpu_and_compared_on_the_fake_one():
    if not tg.cuda.is_available():
        assert compare_impls(conv_bn_pool, _inputs()) == ("reference", "numba")
    try:
        emulator.library()
    except emulator.EmulatorUnavailable as exc:
        pytest.skip(str(exc))
    with fake_cuda():
        assert compare_impls(conv_bn_pool, _inputs()) == ("reference", "numba", "cuda")


def test_a_wrong_forward_kernel_is_named(monkeypatch):
    right = numba_conv.conv2d_forward
    monkeypatch.setattr(numba_conv, "conv2d_forward",
                        lambda *args, **kw: right(*args, **kw) * (1 + 1e-6))
    # (batch norm would hide a scaled conv output: compare the conv alone)
    with pytest.raises(ImplMismatch, match="output 0 differs between numba and reference"):
        compare_impls(lambda x, w: F.conv2d(x, w), _inputs()[:2], impls=("reference", "numba"))


def test_a_wrong_gradient_kernel_is_named(monkeypatch):
    right = numba_conv.conv2d_weight_grad

    def wrong(*args, **kw):
        g = right(*args, **kw)
        g.reshape(-1)[0] += 1e-3
        return g

    monkeypatch.setattr(numba_conv, "conv2d_weight_grad", wrong)
    with pytest.raises(ImplMismatch, match="gradient of input 1 differs between numba and "
                                           r"reference at index \(0, 0, 0, 0\)"):
        compare_impls(conv_bn_pool, _inputs(), impls=("reference", "numba"))


def test_bad_implementation_lists_are_refused():
    with pytest.raises(ValueError, match=r"unknown implementation\(s\) \['cudnn'\]"):
        compare_impls(conv_bn_pool, _inputs(), impls=("reference", "cudnn"))
    with pytest.raises(ValueError, match="fewer than two"):
        compare_impls(conv_bn_pool, _inputs(), impls=("numba",))


def test_small_public_helpers():
    x = f64([1.0, 2.0])
    assert x.dtype == np.float64 and x.requires_grad and not f64([1.0], False).requires_grad
    assert rel_error(np.array([1.0, 2.2]), np.array([1.0, 2.0])) == pytest.approx(0.1)
    assert rel_error(x, x.numpy()) == 0
    with pytest.raises(AssertionError, match="shape"):
        rel_error(np.zeros(2), np.zeros(3))
    assert_close(x, [1.0, 2.0])
    with pytest.raises(AssertionError):
        assert_close(x, [1.0, 2.1])
