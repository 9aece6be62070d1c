"""kernels/batch_norm.cu under the CPU emulator vs the numpy reference, through the 'cuda'
batch_norm family module (tinygen.backend.cuda_kernels.batch_norm), and the batch_norm op
on the fake GPU running them."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygen as tg
import tinygen.nn.functional as F
from tinygen.backend import kernels as K
from tinygen.backend.cuda_kernels import batch_norm as cuda_bn
from tinygen.backend.cuda_kernels import emulator
from tinygen.backend.cuda_kernels.launch import launch
from tinygen.backend.reference import batch_norm as reference
from tinygen.testing import gradcheck
from tinygen.testing.fake_cuda import fake_cuda

RTOL = {np.float32: 1e-5, np.float64: 1e-10}
# (N, C, L): L = 1 (a BatchNorm1d input), L not a multiple of anything, L > one block of
# 256 threads, several channels per grid stride.
SHAPES = [(3, 5, 7), (6, 3, 1), (2, 2, 300), (1, 4, 259)]


def _x3(rng, shape, dtype):
    # a mean far from zero compared with the spread: what one-pass sum(x^2) gets wrong
    return (rng.standard_normal(shape) * 0.5 + 20.0).astype(dtype)


@pytest.fixture(params=["one split", "three splits"])
def splits(request, monkeypatch):
    """Reduce each channel in one block of 256 threads, or in three blocks (of 32 threads,
    which keeps the emulator quick) whose partial results the last one merges."""
    if request.param == "three splits":
        monkeypatch.setattr(cuda_bn, "MIN_CHUNK", 2)
        monkeypatch.setattr(cuda_bn, "TARGET_BLOCKS", 10**6)
        monkeypatch.setattr(cuda_bn, "MAX_SPLITS", 3)
        monkeypatch.setattr(cuda_bn, "REDUCE_THREADS", 32)
        assert cuda_bn._reduction_grid(5, 21) == (3, 7)
    return request.param


def _close(actual, expected, dtype):
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_functions_match_reference(emulated, rng, splits, dtype, shape):
    x3 = _x3(rng, shape, dtype)
    mean, var = cuda_bn.channel_stats(x3)
    ref_mean, ref_var = reference.channel_stats(x3)
    assert mean.dtype == var.dtype == np.float64
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-13)
    np.testing.assert_allclose(var, ref_var, rtol=1e-10)

    scale = rng.standard_normal(shape[1])
    shift = rng.standard_normal(shape[1])
    y = cuda_bn.normalize_affine(x3, ref_mean, scale, shift)
    assert y.dtype == dtype and y.shape == shape
    _close(y, reference.normalize_affine(x3, ref_mean, scale, shift), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_functions_match_reference(emulated, rng, splits, dtype, shape):
    x3 = _x3(rng, shape, dtype)
    g3 = rng.standard_normal(shape).astype(dtype)
    mean, var = reference.channel_stats(x3)
    inv_std = 1.0 / np.sqrt(var + 1e-5)
    sum_g, sum_gc = cuda_bn.backward_reduce(g3, x3, mean)
    ref_g, ref_gc = reference.backward_reduce(g3, x3, mean)
    np.testing.assert_allclose(sum_g, ref_g, rtol=1e-10)
    np.testing.assert_allclose(sum_gc, ref_gc, rtol=1e-10)

    fused_g, fused_gx = cuda_bn.backward_stats(g3, x3, mean, inv_std)
    np.testing.assert_allclose(fused_g, ref_g, rtol=1e-10)
    np.testing.assert_allclose(fused_gx, ref_gc * inv_std, rtol=1e-10)

    weight = rng.standard_normal(shape[1])
    dx = cuda_bn.backward_input(g3, x3, mean, inv_std, weight, ref_g, ref_gc * inv_std)
    assert dx.dtype == dtype and dx.shape == shape
    expected = reference.backward_input(g3, x3, mean, inv_std, weight, ref_g, ref_gc * inv_std)
    # dx sums terms of both signs: its error is relative to the largest term, |w s g|
    atol = RTOL[dtype] * np.abs(weight[:, None] * inv_std[:, None] * g3).max()
    np.testing.assert_allclose(dx, expected, rtol=RTOL[dtype], atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_train_stats_updates_running_statistics_like_the_op(emulated, rng, splits, dtype):
    x3 = _x3(rng, (4, 3, 9), dtype)
    running_mean = rng.standard_normal(3).astype(dtype)
    running_var = (rng.random(3) + 0.5).astype(dtype)
    old_mean, old_var = running_mean.copy(), running_var.copy()
    mean, var, inv_std = cuda_bn.train_stats(x3, 1e-3, running_mean, running_var, 0.3)
    ref_mean, ref_var = reference.channel_stats(x3)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-13)
    np.testing.assert_allclose(var, ref_var, rtol=1e-10)
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(ref_var + 1e-3), rtol=1e-10)
    unbiased = ref_var * 36 / 35
    _close(running_mean, (0.7 * old_mean + 0.3 * ref_mean).astype(dtype), dtype)
    _close(running_var, (0.7 * old_var + 0.3 * unbiased).astype(dtype), dtype)
    # without buffers: the same statistics, nothing else touched
    again = cuda_bn.train_stats(x3, 1e-3)
    for a, b in zip(again, (mean, var, inv_std)):
        np.testing.assert_array_equal(a, b)


# (N, C, L) with L a multiple of 4 (float32) and of 2 (float64): the 16-byte vector path.
VECTOR_SHAPES = [(3, 5, 8), (2, 3, 36)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES[:2] + VECTOR_SHAPES)
@pytest.mark.parametrize("affine", [False, True])
def test_train_forward_matches_the_reference_composition(emulated, rng, splits, dtype, shape,
                                                         affine):
    x3 = _x3(rng, shape, dtype)
    c = shape[1]
    weight = rng.standard_normal(c).astype(dtype) if affine else None
    bias = rng.standard_normal(c).astype(dtype) if affine else None
    running = [rng.standard_normal(c).astype(dtype), (rng.random(c) + 0.5).astype(dtype)]
    expected_running = [r.copy() for r in running]
    y, mean, inv_std = cuda_bn.train_forward(x3, weight, bias, 1e-5, *running, 0.2)
    ref_y, ref_mean, ref_inv_std = reference.train_forward(x3, weight, bias, 1e-5,
                                                           *expected_running, 0.2)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-13)
    np.testing.assert_allclose(inv_std, ref_inv_std, rtol=1e-10)
    _close(y, ref_y, dtype)
    for a, b in zip(running, expected_running):
        _close(a, b, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vector_accesses_only_where_rows_are_aligned(emulated, rng, dtype):
    width = 16 // np.dtype(dtype).itemsize
    x3 = _x3(rng, (2, 3, 4 * width), dtype)
    assert cuda_bn._vector(x3) == width
    assert cuda_bn._vector(x3[:, :, :width + 1].copy()) == 1  # rows not a multiple of 16 bytes
    shifted = np.empty(x3.size + 1, dtype)[1:].reshape(x3.shape)  # 16-byte misaligned
    shifted[...] = x3
    assert cuda_bn._vector(shifted) == 1
    # both paths give the reference's results
    for x in (x3, shifted):
        mean, var = cuda_bn.channel_stats(x)
        ref_mean, ref_var = reference.channel_stats(x)
        np.testing.assert_allclose(mean, ref_mean, rtol=1e-13)
        np.testing.assert_allclose(var, ref_var, rtol=1e-10)
        g = rng.standard_normal(x.shape).astype(dtype)
        scale = rng.standard_normal(3)
        _close(cuda_bn.normalize_affine(x, ref_mean, scale, ref_var),
               reference.normalize_affine(x, ref_mean, scale, ref_var), dtype)
        np.testing.assert_allclose(cuda_bn.backward_reduce(g, x, ref_mean),
                                   reference.backward_reduce(g, x, ref_mean), rtol=1e-10)


def test_one_pass_statistics_keep_float64_precision_far_from_zero(emulated, rng):
    # Welford/Chan merging: no cancellation although |mean| / std = 1e6
    x3 = 1e6 + rng.standard_normal((4, 2, 50))
    mean, var = cuda_bn.channel_stats(x3)
    ref_mean, ref_var = reference.channel_stats(x3)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-14)
    np.testing.assert_allclose(var, ref_var, rtol=1e-8)


def test_tickets_are_reused_and_left_zero(emulated, rng, splits):
    x3 = _x3(rng, (3, 5, 7), np.float64)
    cuda_bn.train_stats(x3, 1e-5)
    tickets = cuda_bn._ticket_array(np, 5)
    cuda_bn.backward_stats(x3, x3, np.zeros(5), np.ones(5))
    assert cuda_bn._ticket_array(np, 5) is tickets  # no new array, so no clearing launch
    assert not tickets.any()


@given(n=st.integers(1, 4), c=st.integers(1, 4), length=st.integers(1, 70),
       min_chunk=st.integers(1, 40), blocks=st.integers(1, 3))
def test_index_walks_cover_every_value_once(emulated, n, c, length, min_chunk, blocks):
    # Both kernels step through (row, channel, position) incrementally instead of dividing.
    # Distinct integer squares, whose sums are exact in float64: a skipped or repeated
    # value changes its channel's sum.
    x3 = np.arange(n * c * length, dtype=np.float64).reshape(n, c, length) ** 2
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cuda_bn, "MIN_CHUNK", min_chunk)
        mp.setattr(cuda_bn, "TARGET_BLOCKS", 10**6)
        mp.setattr(cuda_bn, "MAX_ELEMENTWISE_BLOCKS", blocks)
        mp.setattr(cuda_bn, "ELEMENTWISE_THREADS", 32)
        mp.setattr(cuda_bn, "REDUCE_THREADS", 32)
        sum_g, _ = cuda_bn.backward_reduce(x3, x3, np.zeros(c))
        np.testing.assert_array_equal(sum_g, x3.sum(axis=(0, 2)))
        shift = np.arange(c) * 1000.0
        y = cuda_bn.normalize_affine(x3, np.zeros(c), np.ones(c), shift)
        np.testing.assert_array_equal(y, x3 + shift[:, None])


def test_results_do_not_depend_on_thread_order(emulated, rng, monkeypatch):
    # a missing __syncthreads() shows up as a result that changes when the threads of a
    # block run in the opposite order; three splits also exercise the last-block merge
    monkeypatch.setattr(cuda_bn, "MIN_CHUNK", 10)
    monkeypatch.setattr(cuda_bn, "MAX_SPLITS", 3)
    x3 = _x3(rng, (3, 4, 37), np.float64)
    g3 = rng.standard_normal(x3.shape)

    def run():
        mean, var, inv_std = cuda_bn.train_stats(x3, 1e-5)
        sum_g, sum_gx = cuda_bn.backward_stats(g3, x3, mean, inv_std)
        return [mean, var, sum_g, sum_gx, cuda_bn.normalize_affine(x3, mean, inv_std, var),
                cuda_bn.backward_input(g3, x3, mean, inv_std, var, sum_g, sum_gx)]

    forward = run()
    lib = emulator.library()
    lib.set_reverse_order(True)
    try:
        backward = run()
    finally:
        lib.set_reverse_order(False)
    for a, b in zip(forward, backward):
        np.testing.assert_array_equal(a, b)


def test_non_contiguous_input_integer_vectors_and_no_channels(emulated, rng):
    x3 = _x3(rng, (3, 4, 10), np.float64)[:, :, ::3]
    np.testing.assert_allclose(cuda_bn.channel_stats(x3)[1], reference.channel_stats(x3)[1],
                               rtol=1e-10)
    mean = np.arange(4)  # per-channel vectors are taken as float64
    np.testing.assert_allclose(cuda_bn.normalize_affine(x3, mean, np.ones(4), np.zeros(4)),
                               x3 - mean[:, None], rtol=1e-12)
    empty = np.zeros((2, 0, 3))
    assert [a.shape for a in cuda_bn.channel_stats(empty)] == [(0,), (0,)]
    assert cuda_bn.normalize_affine(empty, *[np.zeros(0)] * 3).shape == (2, 0, 3)


def test_bad_arguments_are_named(emulated):
    x3 = np.zeros((2, 3, 4))
    v = np.zeros(3)
    with pytest.raises(ValueError, match=r"input must be an \(N, C, L\) array, got \(2, 3\)"):
        cuda_bn.channel_stats(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="input must be float32 or float64, got int64"):
        cuda_bn.channel_stats(x3.astype(np.int64))
    with pytest.raises(ValueError, match=r"at least one value per channel.*\(0, 3, 4\)"):
        cuda_bn.channel_stats(np.zeros((0, 3, 4)))
    with pytest.raises(ValueError, match=r"scale must have shape \(3,\).*got \(4,\)"):
        cuda_bn.normalize_affine(x3, v, np.zeros(4), v)
    with pytest.raises(ValueError, match=r"grad \(float32 \(2, 3, 4\)\) must match the input"):
        cuda_bn.backward_reduce(x3.astype(np.float32), x3, v)
    with pytest.raises(ValueError, match=r"grad .* must match the input"):
        cuda_bn.backward_input(np.zeros((2, 3, 5)), x3, v, v, v, v, v)
    with pytest.raises(ValueError, match="running_mean and running_var must both be given"):
        cuda_bn.train_stats(x3, 1e-5, running_mean=np.zeros(3))
    with pytest.raises(ValueError, match=r"running_var must be a float64 array of shape \(3,\)"):
        cuda_bn.train_stats(x3, 1e-5, np.zeros(3), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        cuda_bn.train_stats(np.zeros((1, 3, 1)), 1e-5, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="eps must be positive, got 0"):
        cuda_bn.train_stats(x3, 0)


# --- the 'cuda' batch_norm family ---------------------------------------------------------------
def test_cuda_batch_norm_has_every_function_of_the_cpu_family():
    from tinygen.backend.numba_kernels import batch_norm as numba_bn

    public = {n for n in dir(numba_bn) if not n.startswith("_") and callable(
        getattr(numba_bn, n)) and getattr(numba_bn, n).__module__ == numba_bn.__name__}
    missing = {n for n in public if not callable(getattr(cuda_bn, n, None))}
    assert public and not missing


def test_registered_for_cuda_as_nvrtc_and_aot():
    for impl in ("nvrtc", "aot"):
        assert K._REGISTRY["batch_norm"]["cuda"][impl] == "tinygen.backend.cuda_kernels.batch_norm"


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_op_on_the_fake_gpu_runs_the_kernels(emulated, rng, training):
    data = rng.standard_normal((3, 2, 5)) + 4
    weight, bias = rng.standard_normal(2), rng.standard_normal(2)
    upstream = rng.standard_normal(data.shape)

    def run(device):
        x = tg.tensor(data, device=device, requires_grad=True)
        w = tg.tensor(weight, device=device, requires_grad=True)
        b = tg.tensor(bias, device=device, requires_grad=True)
        rm = tg.tensor(np.zeros(2), device=device)
        rv = tg.tensor(np.ones(2), device=device)
        y = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.2)
        (y * tg.tensor(upstream, device=device)).sum().backward()
        return [t.numpy() for t in (y, x.grad, w.grad, b.grad, rm, rv)], (x, w, b, rm, rv)

    expected, _ = run("cpu")
    with fake_cuda():
        assert K.kernels("batch_norm", tg.zeros(1, device="cuda").data) is cuda_bn
        got, (x, w, b, rm, rv) = run("cuda")
        for a, e in zip(got, expected):
            np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)
        # the kernel backward against finite differences of the kernel forward
        gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=training,
                                               momentum=0.0), [x, w, b])


def test_batch_norm_op_on_the_fake_gpu_calls_the_fused_kernels(emulated, rng, monkeypatch):
    """Training forward: two launches (statistics with the per-channel coefficients, then
    the normalisation); fused backward: two more, also when its graph is recorded; no
    other kernel (nor ticket clearing)."""
    calls = []

    def spy(name, grid, block, args):
        calls.append(name.removeprefix("batch_norm_").removesuffix("_f64"))
        return launch(name, grid, block, args)

    monkeypatch.setattr(cuda_bn, "launch", spy)
    data = rng.standard_normal((3, 2, 5)) + 4
    weight, bias = rng.standard_normal(2), rng.standard_normal(2)
    upstream = rng.standard_normal(data.shape)
    with fake_cuda():
        x, w, b = (tg.tensor(a, device="cuda", requires_grad=True) for a in (data, weight, bias))
        # running statistics as strided views: the kernel updates a contiguous copy
        storage = tg.tensor(np.arange(8.0), device="cuda")
        running_mean, running_var = storage[0:4:2], storage[5:8:2]
        y = F.batch_norm(x, running_mean, running_var, w, b, training=True, momentum=0.3)
        assert calls == ["train_stats", "normalize_affine"]
        g = tg.tensor(upstream, device="cuda")
        fused = tg.grad(y, [x, w, b], g, retain_graph=True)
        assert calls[2:] == ["backward_sums", "backward_input"]
        graph = tg.grad(y, [x, w, b], g, create_graph=True)  # the same node, recorded
        assert calls[4:] == ["backward_sums", "backward_input"]
        for a, c in zip(fused, graph):
            np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-10, atol=1e-12)
        stored = storage.numpy()
    expected = np.arange(8.0)
    expected[0:4:2] = 0.7 * expected[0:4:2] + 0.3 * data.mean(axis=(0, 2))
    expected[5:8:2] = 0.7 * expected[5:8:2] + 0.3 * data.var(axis=(0, 2), ddof=1)
    np.testing.assert_allclose(stored, expected, rtol=1e-12)
