"""The 'cuda' pooling family module (tinygen.backend.cuda_kernels.pooling): the
reference's xp functions, which serve cupy arrays until pooling gets kernels."""
import numpy as np
import pytest

from tinygen.backend import kernels as K
from tinygen.backend.cuda_kernels import pooling as cuda_pooling
from tinygen.backend.reference import pooling as reference

RTOL = {np.float32: 1e-5, np.float64: 1e-10}


def test_cuda_pooling_has_every_function_of_the_cpu_family():
    from tinygen.backend.numba_kernels import pooling as numba_pooling

    public = {name for name, value in vars(numba_pooling).items()
              if not name.startswith("_") and callable(value)
              and getattr(value, "__module__", None) == numba_pooling.__name__}
    missing = {n for n in public if not callable(getattr(cuda_pooling, n, None))}
    assert public and not missing


def test_registered_for_cuda_as_nvrtc_and_aot():
    for impl in ("nvrtc", "aot"):
        assert K._REGISTRY["pooling"]["cuda"][impl] == "tinygen.backend.cuda_kernels.pooling"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_xp_pooling_functions_match_reference(rng, dtype):
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    x[0, 0, 1, 1] = np.nan
    geometry = ((3, 2), (2, 2), (1, 0), (1, 2), (4, 2))  # kernel, stride, pad, dilation, out
    values, indices = cuda_pooling.max_pool2d_forward(x, *geometry)
    ref_values, ref_indices = reference.max_pool2d_forward(x, *geometry)
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_array_equal(cuda_pooling.gather_plane(x, indices),
                                  reference.gather_plane(x, indices))
    g = rng.standard_normal(values.shape).astype(dtype)
    np.testing.assert_allclose(cuda_pooling.scatter_plane(g, indices, x.shape),
                               reference.scatter_plane(g, indices, x.shape), rtol=RTOL[dtype])

    inv = 1.0 / np.arange(1.0, 13.0).reshape(4, 3)
    avg = ((3, 2), (2, 3), (1, 1), (4, 3))
    np.testing.assert_allclose(cuda_pooling.avg_pool2d_forward(x, *avg, inv),
                               reference.avg_pool2d_forward(x, *avg, inv), rtol=RTOL[dtype])
    g = rng.standard_normal((2, 3, 4, 3)).astype(dtype)
    adj = ((3, 2), (2, 3), (1, 1), (7, 6))
    np.testing.assert_allclose(cuda_pooling.avg_pool2d_adjoint(g, *adj, inv),
                               reference.avg_pool2d_adjoint(g, *adj, inv), rtol=RTOL[dtype])

    rows, cols = np.array([0, 0, 3, 6, 6]), np.array([1, 5, 5, 0])
    np.testing.assert_array_equal(cuda_pooling.upsample_nearest_forward(x, rows, cols),
                                  reference.upsample_nearest_forward(x, rows, cols))
    g = rng.standard_normal((2, 3, 5, 4)).astype(dtype)
    np.testing.assert_allclose(cuda_pooling.upsample_nearest_adjoint(g, rows, cols, (7, 6)),
                               reference.upsample_nearest_adjoint(g, rows, cols, (7, 6)),
                               rtol=RTOL[dtype])
