"""The fused Adam update (numba, one pass) is bit-equal to the reference arithmetic,
and the Adam optimizer takes it on the CPU (issue 12)."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.backend.kernels import use_impl
from tinygen.backend.numba_kernels import optim as fast
from tinygen.backend.numba_kernels.chunks import PARALLEL_THRESHOLD
from tinygen.backend.reference import optim as ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [3, PARALLEL_THRESHOLD // 64 + 3])   # one piece, shared out
def test_fused_adam_step_is_bit_equal_to_the_reference(dtype, rows):
    rng = np.random.default_rng(0)
    shape = (rows, 64)
    states = []
    for _ in range(2):
        r = np.random.default_rng(1)
        p, m, v = (r.standard_normal(shape) for _ in range(3))
        states.append([a.astype(dtype) for a in (p, m, np.abs(v))])   # v: a second moment
    for step in range(1, 4):
        grad = rng.standard_normal(shape).astype(dtype)
        args = (0.9, 0.999, 1e-8, 1e-3 / (1 - 0.9 ** step), (1 - 0.999 ** step) ** 0.5)
        fast.adam_step(states[0][0], grad, states[0][1], states[0][2], None, *args)
        ref.adam_step(states[1][0], grad, states[1][1], states[1][2], None, *args)
        for a, b in zip(*states):
            assert a.dtype == dtype
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_optimizer_same_on_both_implementations(amsgrad):
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal((PARALLEL_THRESHOLD + 7,)).astype(np.float32)
    grads = [rng.standard_normal(w0.shape).astype(np.float32) for _ in range(3)]
    results = []
    for impl in ("numba", "reference"):
        with use_impl(impl):
            w = tg.tensor(w0.copy(), requires_grad=True)
            opt = tg.optim.Adam([w], lr=1e-2, weight_decay=1e-3, amsgrad=amsgrad)
            for g in grads:
                w.grad = tg.tensor(g)
                opt.step()
            results.append(w.numpy())
    np.testing.assert_array_equal(*results)
