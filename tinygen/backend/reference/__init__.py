"""Plain numpy reference implementations: readable top to bottom, the oracle that
the fast kernels (numba on the CPU, CUDA on the GPU) are tested against."""
