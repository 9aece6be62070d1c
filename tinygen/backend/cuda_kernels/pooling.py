"""The 'cuda' pooling family: same functions and results as
``tinygen.backend.numba_kernels.pooling``.

No hand-written kernels yet: pooling and nearest upsampling are the reference's
functions, written against the inputs' array module (cupy on the GPU), which serve
them until they get kernels of their own.
"""
from ..reference.pooling import (  # noqa: F401
    avg_pool2d_adjoint, avg_pool2d_forward, gather_plane, max_pool2d_forward, scatter_plane,
    upsample_nearest_adjoint, upsample_nearest_forward)
