"""The Fast-WaveNet generation step: numba kernel == numpy reference, and both draw
exactly the naive (full recomputation) samples."""
import numpy as np
import pytest

from tinygen.backend import kernels as K
from tinygen.backend.numba_kernels import chunks, wavenet as numba_step
from tinygen.backend.reference import wavenet as reference_step
from tinygen.models.wavenet import WaveNet


def model(dtype="float64", seed=0, **kw):
    args = dict(n_layers=5, dilation_cycle=(1, 2, 4), residual_channels=6, skip_channels=7,
                quantization=11, kernel_size=2, dtype=dtype)
    args.update(kw)
    m = WaveNet(**args)
    m.reset_parameters(np.random.default_rng(seed))
    return m


def run_both(weights, batch, steps, with_cond, rng):
    """Drive the reference and the numba step with the same inputs; yield both
    (logits, ring) after every step."""
    L, _, r2, _ = weights.conv_w.shape
    Q = weights.embed.shape[0]
    rings = [reference_step.new_ring(weights, batch), numba_step.new_ring(weights, batch)]
    previous = np.full(batch, -1, dtype=np.int64)
    for t in range(steps):
        cond = rng.standard_normal((batch, L, r2)).astype(weights.embed.dtype) \
            if with_cond else None
        outs = [impl.step(weights, ring, t, previous, cond)
                for impl, ring in zip((reference_step, numba_step), rings)]
        yield outs, rings
        previous = rng.integers(0, Q, batch)


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("kernel_size, with_cond", [(2, False), (3, True)])
def test_numba_step_equals_reference(dtype, tol, kernel_size, with_cond):
    m = model(dtype, kernel_size=kernel_size)
    weights = m.step_weights()
    # the largest ring (dilation 4, k=3) has 9 slots: 25 steps wrap every ring twice
    for (ref, fast), (ref_ring, fast_ring) in run_both(weights, 3, 25, with_cond,
                                                       np.random.default_rng(1)):
        assert fast.dtype == ref.dtype == np.dtype(dtype) and fast.shape == (3, 11)
        np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(fast_ring, ref_ring, rtol=tol, atol=tol)
    assert np.abs(ref).max() > 0.1  # the logits are not trivially zero


def test_parallel_path_equals_reference(monkeypatch):
    monkeypatch.setattr(chunks, "PARALLEL_THRESHOLD", 0)   # sequences shared out among threads
    weights = model(kernel_size=2).step_weights()
    for (ref, fast), (ref_ring, fast_ring) in run_both(weights, 4, 12, True,
                                                       np.random.default_rng(2)):
        np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fast_ring, ref_ring, rtol=1e-12, atol=1e-12)


def test_step_weights_layout():
    m = model(kernel_size=3)
    w = m.step_weights()
    np.testing.assert_array_equal(w.embed, m.embed.weight.data[:, :, 0].T)
    # tap j of layer l is the conv weight's last axis j
    np.testing.assert_array_equal(w.conv_w[3, 1], m.dilated[3].weight.data[:, :, 1])
    np.testing.assert_array_equal(w.dilations, [1, 2, 4, 1, 2])
    offsets, sizes, slots = reference_step.ring_layout(w)
    np.testing.assert_array_equal(sizes, [3, 5, 9, 3, 5])
    np.testing.assert_array_equal(offsets, [0, 3, 8, 17, 20])
    assert slots == 25
    assert all(a.flags.c_contiguous for a in w)


@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_fast_generation_draws_the_naive_samples(impl):
    m = model(global_classes=3, local_channels=4, local_hop=3)
    features = np.random.default_rng(3).standard_normal((2, 4, 14))
    kw = dict(global_class=[2, 0], local_features=features, n_sequences=2)
    naive = m.generate(40, np.random.default_rng(5), naive=True, **kw)
    with K.use_impl(impl):
        fast = m.generate(40, np.random.default_rng(5), **kw)
    np.testing.assert_array_equal(fast, naive)
    assert naive.shape == (2, 40) and len(np.unique(naive)) > 4


def test_the_registry_serves_both_implementations():
    x = np.zeros(2)
    assert K.kernels("wavenet", x) is numba_step
    with K.use_impl("reference"):
        assert K.kernels("wavenet", x) is reference_step


@pytest.mark.parametrize("impl", [numba_step, reference_step])
def test_bad_step_arguments_raise(impl):
    w = model().step_weights()
    ring = impl.new_ring(w, 2)
    ok = np.array([0, 3])
    with pytest.raises(ValueError, match="previous codes must lie in"):
        impl.step(w, ring, 0, np.array([0, 11]), None)
    with pytest.raises(ValueError, match="previous must be an int64 array of shape"):
        impl.step(w, ring, 0, np.array([0]), None)
    with pytest.raises(ValueError, match=r"ring must be .* \(B, 15, 6\)"):
        impl.step(w, ring[:, :-1], 0, ok, None)
    with pytest.raises(ValueError, match="ring must be a C-contiguous float64"):
        impl.step(w, ring.astype(np.float32), 0, ok, None)
    with pytest.raises(ValueError, match=r"cond must be .* \(2, 5, 12\)"):
        impl.step(w, ring, 0, ok, np.zeros((2, 5, 6)))
    with pytest.raises(ValueError, match="t must be a non-negative int"):
        impl.step(w, ring, -1, ok, None)
    with pytest.raises(ValueError, match=r"weights.res_w has shape \(5, 6, 5\)"):
        impl.step(w._replace(res_w=w.res_w[:, :, :5].copy()), ring, 0, ok, None)
    with pytest.raises(ValueError, match="weights.out2_b must be C-contiguous float64"):
        impl.step(w._replace(out2_b=w.out2_b.astype(np.float32)), ring, 0, ok, None)
    with pytest.raises(TypeError, match="weights must be StepWeights"):
        impl.step(tuple(w), ring, 0, ok, None)


def test_numba_step_notices_weights_reshaped_after_the_check():
    w = model().step_weights()
    ring = numba_step.new_ring(w, 1)
    numba_step.step(w, ring, 0, np.array([-1]))       # checked and remembered
    w.out2_w.shape = w.out2_w.shape[::-1]             # (11, 7) -> (7, 11) in place
    with pytest.raises(ValueError, match="shapes changed since they were checked"):
        numba_step.step(w, ring, 1, np.array([2]))
