"""kernels/spectral_norm.cu under the CPU emulator vs the numpy reference, through the
'cuda' spectral_norm family module (tinygen.backend.cuda_kernels.spectral_norm), and the
power_iteration op on the fake GPU running it."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.backend import kernels as K
from tinygen.backend.cuda_kernels import emulator
from tinygen.backend.cuda_kernels import spectral_norm as cuda_sn
from tinygen.backend.reference import spectral_norm as reference
from tinygen.ops.spectral_norm import power_iteration as power_iteration_op
from tinygen.testing.fake_cuda import fake_cuda

RTOL = {np.float32: 1e-5, np.float64: 1e-10}
# (rows, cols): one value; fewer columns than a block's 32; one row; a ragged last column
# block and a ragged last 32-row tile; one column block exactly; many more rows than columns.
SHAPES = [(1, 1), (5, 7), (1, 45), (37, 70), (33, 32), (70, 3)]


def _problem(rng, shape, dtype):
    w = rng.standard_normal(shape).astype(dtype)
    u = reference.normalize(rng.standard_normal(shape[0]), 1e-12).astype(dtype)
    v = reference.normalize(rng.standard_normal(shape[1]), 1e-12).astype(dtype)
    return w, u, v


def _close(actual, expected, dtype):
    """Equal to ``RTOL`` relative to the largest element (entries of unit vectors can be
    arbitrarily close to zero, where a relative error means nothing)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype],
                               atol=RTOL[dtype] * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n_iterations", [1, 3])
def test_power_iteration_matches_reference(emulated, rng, dtype, shape, n_iterations):
    w, u, v = _problem(rng, shape, dtype)
    u0, v0 = u.copy(), v.copy()
    new_u, new_v, sigma = cuda_sn.power_iteration_sigma(w, u, v, n_iterations, 1e-12)
    ref_u, ref_v = reference.power_iteration(w, u, v, n_iterations, 1e-12)
    _close(new_u, ref_u, dtype)
    _close(new_v, ref_v, dtype)
    ref_sigma = np.asarray(reference.sigma(w, ref_u, ref_v))
    assert sigma.shape == () and sigma.dtype == dtype
    np.testing.assert_allclose(sigma, ref_sigma, rtol=RTOL[dtype])
    np.testing.assert_allclose(cuda_sn.sigma(w, ref_u, ref_v), ref_sigma, rtol=RTOL[dtype])
    only_uv = cuda_sn.power_iteration(w, u, v, n_iterations, 1e-12)
    for a, b in zip(only_uv, (new_u, new_v)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(u, u0)  # the inputs are left alone
    np.testing.assert_array_equal(v, v0)


@pytest.mark.parametrize("cols", [5 * 32, 8 * 32 - 3, 10 * 32])
def test_the_merge_tree_of_many_blocks(emulated, rng, cols):
    """5, 8 and 10 column blocks: tree levels with and without an unpaired last node.
    (Under the checker: every merge reads partials written by other blocks, some only
    ordered through a chain of tickets.)"""
    w, u, v = _problem(rng, (3, cols), np.float64)
    new_u, new_v, sigma = cuda_sn.power_iteration_sigma(w, u, v, 2, 1e-12)
    ref_u, ref_v = reference.power_iteration(w, u, v, 2, 1e-12)
    _close(new_u, ref_u, np.float64)
    _close(new_v, ref_v, np.float64)
    np.testing.assert_allclose(sigma, reference.sigma(w, ref_u, ref_v), rtol=1e-10)
    np.testing.assert_allclose(cuda_sn.sigma(w, ref_u, ref_v), reference.sigma(w, ref_u, ref_v),
                               rtol=1e-10)


def test_converges_to_the_largest_singular_value(emulated, rng):
    w, u, v = _problem(rng, (9, 40), np.float64)
    u, v, sigma = cuda_sn.power_iteration_sigma(w, u, v, 60, 1e-12)
    left, singular, right = np.linalg.svd(w)
    np.testing.assert_allclose(sigma, singular[0], rtol=1e-10)
    np.testing.assert_allclose(abs(u @ left[:, 0]), 1.0, rtol=1e-8)
    np.testing.assert_allclose(abs(v @ right[0]), 1.0, rtol=1e-8)


def test_eps_guards_a_zero_matrix_like_the_reference(emulated, rng):
    _, u, v = _problem(rng, (4, 35), np.float64)
    w = np.zeros((4, 35))
    new_u, new_v, sigma = cuda_sn.power_iteration_sigma(w, u, v, 2, 1e-12)
    ref_u, ref_v = reference.power_iteration(w, u, v, 2, 1e-12)
    np.testing.assert_array_equal(new_u, ref_u)
    np.testing.assert_array_equal(new_v, ref_v)
    assert sigma == 0
    # eps larger than the norms: both vectors are divided by eps instead of normalised
    w = rng.standard_normal((4, 35)) * 1e-3
    new_u, new_v = cuda_sn.power_iteration(w, u, v, 1, 1.0)
    ref_u, ref_v = reference.power_iteration(w, u, v, 1, 1.0)
    _close(new_u, ref_u, np.float64)
    _close(new_v, ref_v, np.float64)


def test_zero_iterations_returns_the_inputs(emulated, rng):
    w, u, v = _problem(rng, (3, 4), np.float32)
    new_u, new_v = cuda_sn.power_iteration(w, u, v, 0, 1e-12)
    assert new_u is u and new_v is v


def test_non_contiguous_weight_matrix(emulated, rng):
    w, u, v = _problem(rng, (40, 6), np.float64)
    w = w.T  # (6, 40), Fortran order: a transposed ConvTranspose weight is such a view
    u, v = v, u
    for a, b in zip(cuda_sn.power_iteration(w, u, v, 2, 1e-12),
                    reference.power_iteration(w, u, v, 2, 1e-12)):
        _close(a, b, np.float64)


def test_results_do_not_depend_on_thread_order(emulated, rng):
    w, u, v = _problem(rng, (45, 70), np.float64)
    forward = [*cuda_sn.power_iteration_sigma(w, u, v, 2, 1e-12), cuda_sn.sigma(w, u, v)]
    lib = emulator.library()
    lib.set_reverse_order(True)
    try:
        backward = [*cuda_sn.power_iteration_sigma(w, u, v, 2, 1e-12), cuda_sn.sigma(w, u, v)]
    finally:
        lib.set_reverse_order(False)
    for a, b in zip(forward, backward):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments_are_named(emulated):
    w, u, v = np.zeros((3, 4)), np.zeros(3), np.zeros(4)
    with pytest.raises(ValueError, match=r"weight_matrix must be a 2-D array, got \(12,\)"):
        cuda_sn.power_iteration(w.ravel(), u, v, 1, 1e-12)
    with pytest.raises(TypeError, match="weight_matrix must be float32 or float64, got int64"):
        cuda_sn.sigma(w.astype(np.int64), u, v)
    with pytest.raises(ValueError, match=r"must not be empty, got shape \(3, 0\)"):
        cuda_sn.power_iteration(np.zeros((3, 0)), u, np.zeros(0), 1, 1e-12)
    with pytest.raises(ValueError, match=r"u must have shape \(3,\).*got \(4,\)"):
        cuda_sn.power_iteration(w, v, v, 1, 1e-12)
    with pytest.raises(TypeError, match=r"v \(float32\) must have the weight's dtype float64"):
        cuda_sn.sigma(w, u, v.astype(np.float32))
    with pytest.raises(ValueError, match="n_iterations must be a non-negative int, got -1"):
        cuda_sn.power_iteration(w, u, v, -1, 1e-12)
    with pytest.raises(ValueError, match="n_iterations must be a positive int, got True"):
        cuda_sn.power_iteration_sigma(w, u, v, True, 1e-12)
    with pytest.raises(ValueError, match="eps must be positive, got 0"):
        cuda_sn.power_iteration(w, u, v, 1, 0.0)


# --- the 'spectral_norm' family ------------------------------------------------------------------
def test_cuda_spectral_norm_has_every_function_of_the_reference():
    public = {n for n in dir(reference) if not n.startswith("_")
              and callable(getattr(reference, n)) and n != "array_module"}
    missing = {n for n in public if not callable(getattr(cuda_sn, n, None))}
    assert public and not missing


def test_registered_for_cuda_and_served_by_the_reference_on_the_cpu():
    for impl in ("nvrtc", "aot"):
        assert K._REGISTRY["spectral_norm"]["cuda"][impl] == \
            "tinygen.backend.cuda_kernels.spectral_norm"
    for impl in ("numba", "reference"):
        assert K.kernels("spectral_norm", np.zeros(1)) is reference
        with K.use_impl(impl):
            assert K.kernels("spectral_norm", np.zeros(1)) is reference


def test_power_iteration_op_on_the_fake_gpu_runs_the_kernel(emulated, rng):
    w, u, v = _problem(rng, (6, 50), np.float64)
    expected = power_iteration_op(w, u, v, 2)
    with fake_cuda():
        dw, du, dv = (tg.tensor(a, device="cuda") for a in (w, u, v))
        assert K.kernels("spectral_norm", dw.data) is cuda_sn
        got = power_iteration_op(dw, du, dv, 2)
        for a, b in zip(got, expected):
            assert tg.tensor(a).device == "cuda"
            _close(np.asarray(a), b, np.float64)
