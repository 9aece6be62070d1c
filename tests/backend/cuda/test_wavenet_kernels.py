"""kernels/wavenet.cu under the CPU emulator, through the 'cuda' wavenet family module
(tinygen.backend.cuda_kernels.wavenet): the one-launch generation step against the numpy
reference step and the model's full forward, the in-kernel draw against the model's
sampler, and end to end against WaveNet.generate."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.backend import kernels as K
from tinygen.backend.cuda_kernels import emulator
from tinygen.backend.cuda_kernels import wavenet as cuda_wavenet
from tinygen.backend.cuda_kernels.launch import launch, launch_each
from tinygen.backend.reference import wavenet as reference
from tinygen.models.wavenet.model import WaveNet, sample_codes

RTOL = {np.float32: 1e-5, np.float64: 1e-10}


def _model(dtype=np.float64, seed=0, **kw):
    """2 stacks of dilations 1, 2, 4; 8 residual and 8 skip channels; 256 classes."""
    tg.manual_seed(seed)
    args = dict(n_layers=6, dilation_cycle=(1, 2, 4), residual_channels=8, skip_channels=8,
                quantization=256)
    args.update(kw)
    return WaveNet(**args, dtype=tg.float32 if dtype == np.float32 else tg.float64)



def _as_float64(weights):
    return weights._replace(**{name: getattr(weights, name).astype(np.float64)
                               for name in reference.StepWeights._fields[:-1]})


def _close(actual, expected, dtype):
    """``RTOL`` relative to the largest logit (logits of either sign cancel in their sums)."""
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype],
                               atol=RTOL[dtype] * np.abs(expected).max())


# --- one step against the numpy reference step and the model's forward ------------------------
def test_steps_match_the_reference_and_the_full_forward(emulated, rng):
    model = _model()
    weights = model.step_weights()
    packed = cuda_wavenet.pack(weights)
    batch, steps = 3, 20                      # receptive field 15: every ring wraps around
    assert model.receptive_field < steps
    codes = rng.integers(0, 256, (batch, steps))
    full = model.forward(codes).data          # (B, Q, T): logits at t given codes[:, :t]
    ring = cuda_wavenet.new_ring(weights, batch)
    ring_ref = reference.new_ring(weights, batch)
    previous = np.full(batch, -1)
    for t in range(steps):
        logits = cuda_wavenet.step(packed, ring, t, previous)
        expected = reference.step(weights, ring_ref, t, previous)
        assert logits.dtype == np.float64 and logits.shape == (batch, 256)
        _close(logits, expected, np.float64)
        _close(logits, full[:, :, t], np.float64)
        previous = codes[:, t]
    np.testing.assert_allclose(ring, ring_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("conditioned", [False, True])
def test_odd_sizes_match_the_reference(odd_weights, emulated, rng, dtype, kernel_size,
                                       conditioned):
    # float32 is compared with the float64 reference on the same (float32) weights: the
    # kernel accumulates in double, so only its float32 storage may differ from exact.
    weights = odd_weights(rng, dtype, kernel_size)
    exact = _as_float64(weights)
    batch = 2
    ring = cuda_wavenet.new_ring(weights, batch)
    ring_ref = reference.new_ring(exact, batch)
    cond = (rng.standard_normal((batch, 3, 10)) * 0.5).astype(dtype) if conditioned else None
    previous = np.array([-1, 4])
    for t in range(9):                          # ring sizes 3, 7, 5 (k = 3): all wrap
        logits = cuda_wavenet.step(weights, ring, t, previous, cond)
        assert logits.dtype == dtype
        expected = reference.step(exact, ring_ref, t, previous,
                                  None if cond is None else cond.astype(np.float64))
        _close(logits, expected, dtype)
        previous = rng.integers(0, 11, batch)
    _close(ring, ring_ref, dtype)


@pytest.mark.parametrize("layer_blocks, head_blocks", [(1, 1), (3, 2), (8, 8)])
def test_several_blocks_per_sequence_share_each_layer_and_the_skip_convolutions(
        emulated, rng, monkeypatch, layer_blocks, head_blocks):
    """A launch per layer with P blocks per sequence (8 gate channels: 1, 3 blocks of 3, 3
    and 2 channels, or 8 of one), then the heads launch with min(L, MAX_HEAD_BLOCKS) per
    sequence (6 layers: 1, 2 or 6 blocks, each a share of the layers), whose last block
    adds the shares; the logits and rings are the reference's whatever the split."""
    monkeypatch.setattr(cuda_wavenet, "GATE_CHANNELS_PER_BLOCK", 1)
    monkeypatch.setattr(cuda_wavenet, "MAX_LAYER_BLOCKS", layer_blocks)
    monkeypatch.setattr(cuda_wavenet, "MAX_HEAD_BLOCKS", head_blocks)
    grids = []

    def spy(name, grid, block, args):
        grids.append((name.rsplit("_", 1)[0], grid))
        return launch(name, grid, block, args)

    def spy_each(name, grid, block, args, vary, values):
        assert vary == "layer" and list(values) == list(range(6))
        grids.extend([(name.rsplit("_", 1)[0], grid)] * len(values))
        return launch_each(name, grid, block, args, vary, values)

    monkeypatch.setattr(cuda_wavenet, "launch", spy)
    monkeypatch.setattr(cuda_wavenet, "launch_each", spy_each)
    weights = _model().step_weights()
    ring, ring_ref = cuda_wavenet.new_ring(weights, 3), reference.new_ring(weights, 3)
    previous = np.array([-1, 7, 200])
    for t in range(4):
        logits = cuda_wavenet.step(weights, ring, t, previous)
        _close(logits, reference.step(weights, ring_ref, t, previous), np.float64)
        previous = rng.integers(0, 256, 3)
    np.testing.assert_allclose(ring, ring_ref, rtol=1e-10, atol=1e-12)
    assert grids[:7] == [("wavenet_layer", (3, layer_blocks))] * 6 + [
        ("wavenet_heads", (3, min(6, head_blocks)))]


@pytest.mark.parametrize("threads", [4, 8, 32])
def test_any_block_size_shares_the_mat_vecs(odd_weights, emulated, rng, monkeypatch, threads):
    """R 5 in 2 blocks of 3 and 2 gate channels: 4 threads have fewer threads than outputs
    (a thread loops over them), 8 one thread per output and idle threads, 32 several
    threads per output whose partial sums are added (32 threads: 5 per conv output)."""
    monkeypatch.setattr(cuda_wavenet, "MAX_THREADS", threads)
    weights = odd_weights(rng, np.float64)
    ring, ring_ref = cuda_wavenet.new_ring(weights, 2), reference.new_ring(weights, 2)
    cond = rng.standard_normal((2, 3, 10))
    previous = np.array([3, -1])
    for t in range(4):
        logits = cuda_wavenet.step(weights, ring, t, previous, cond)
        _close(logits, reference.step(weights, ring_ref, t, previous, cond), np.float64)
        previous = rng.integers(0, 11, 2)
    np.testing.assert_allclose(ring, ring_ref, rtol=1e-10, atol=1e-12)


def test_layer_blocks_leave_no_block_without_gate_channels(monkeypatch):
    monkeypatch.setattr(cuda_wavenet, "GATE_CHANNELS_PER_BLOCK", 1)
    monkeypatch.setattr(cuda_wavenet, "MAX_LAYER_BLOCKS", 4)
    for R, blocks in ((1, 1), (3, 3), (4, 4), (6, 3), (7, 4), (256, 4)):
        packed = cuda_wavenet.PackedStepWeights(None, None, None, 1, R, 1, 1, 2, 1)
        assert cuda_wavenet._layer_blocks(packed) == blocks, R
        chunk = -(-R // blocks)
        assert (blocks - 1) * chunk < R  # the last block's first channel exists


# --- the draw in the kernel -----------------------------------------------------------------
@pytest.mark.parametrize("temperature", [1.0, 0.37])
def test_sample_draws_like_the_model(odd_weights, emulated, rng, temperature):
    weights = odd_weights(rng, np.float64)
    ring = cuda_wavenet.new_ring(weights, 4)
    # uniforms at the ends of [0, 1) and in between
    uniforms = np.array([0.0, 0.999999, 0.5, rng.random()])
    previous = np.full(4, -1)
    for t in range(3):
        logits, codes = cuda_wavenet.sample(weights, ring, t, previous, uniforms, temperature)
        assert codes.dtype == np.int64
        np.testing.assert_array_equal(codes, sample_codes(logits, temperature, uniforms))
        previous, uniforms = codes, rng.random(4)


def test_generate_reproduces_wavenet_generate(emulated):
    # The model's generation loop (on the numpy reference step: no numba compile here) and
    # the CUDA kernel, drawing from the same uniforms: generator.random(B) per step is
    # generator.random((n, B)) row by row.
    model = _model(seed=3)
    n, batch = 18, 2
    with K.use_impl("reference"):
        expected = model.generate(n, np.random.default_rng(7), n_sequences=batch)
    weights = model.step_weights()
    ring = cuda_wavenet.new_ring(weights, batch)
    uniforms = np.random.default_rng(7).random((n, batch))
    codes = cuda_wavenet.generate(weights, ring, 0, np.full(batch, -1), uniforms)
    assert codes.shape == (n, batch)
    np.testing.assert_array_equal(codes.T, expected)


def test_generate_with_per_step_conditioning_matches_stepping(odd_weights, emulated, rng):
    weights = odd_weights(rng, np.float64)
    cond = rng.standard_normal((5, 2, 3, 10))
    uniforms = rng.random((5, 2))
    ring = cuda_wavenet.new_ring(weights, 2)
    codes = cuda_wavenet.generate(weights, ring, 0, np.full(2, -1), uniforms, 0.8, cond)
    ring_ref = reference.new_ring(weights, 2)
    previous = np.full(2, -1)
    for t in range(5):
        logits = reference.step(weights, ring_ref, t, previous, cond[t])
        previous = sample_codes(logits, 0.8, uniforms[t])
        np.testing.assert_array_equal(codes[t], previous)
    np.testing.assert_allclose(ring, ring_ref, rtol=1e-10, atol=1e-12)


def test_results_do_not_depend_on_thread_order(odd_weights, emulated, rng):
    weights = odd_weights(rng, np.float64)
    uniforms = rng.random((6, 3))
    cond = rng.standard_normal((3, 3, 10))

    def run():
        ring = cuda_wavenet.new_ring(weights, 3)
        codes = cuda_wavenet.generate(weights, ring, 0, np.array([-1, 0, 10]), uniforms, 1.0,
                                      cond)
        return codes, ring

    forward = run()
    lib = emulator.library()
    lib.set_reverse_order(True)
    try:
        backward = run()
    finally:
        lib.set_reverse_order(False)
    for a, b in zip(forward, backward):
        np.testing.assert_array_equal(a, b)


# --- the packed layout and the arguments ------------------------------------------------------
def test_pack_lays_out_transposed_mat_vecs(odd_weights, rng):
    w = odd_weights(rng, np.float64)
    packed = cuda_wavenet.pack(w)
    L, k, R2, R = w.conv_w.shape
    S, Q = w.skip_w.shape[1], w.embed.shape[0]
    stride = k * R * R2 + R2 + R * R + R + R * S + S
    assert packed.params.size == Q * R + R + L * stride + S * S + S + S * Q + Q
    layer1 = packed.params[Q * R + R + stride:]
    j, r, o = 2, 3, 7                                  # conv_t[(j*R + r) * 2R + o]
    assert layer1[(j * R + r) * R2 + o] == w.conv_w[1, j, o, r]
    res = layer1[k * R * R2 + R2:]                     # res_t[r * R + o]
    assert res[2 * R + 4] == w.res_w[1, 4, 2]
    out2 = packed.params[Q * R + R + L * stride + S * S + S:]
    assert out2[6 * Q + 10] == w.out2_w[10, 6]         # out2_t[s * Q + q]
    np.testing.assert_array_equal(packed.ring_offsets, [0, 3, 10])
    assert packed.slots == 15 and cuda_wavenet.pack(packed) is packed
    ring = cuda_wavenet.new_ring(packed, 2)
    assert ring.shape == (2, 15, 5) and not ring.any()
    assert cuda_wavenet.multiply_adds(packed) == cuda_wavenet.multiply_adds(w) == \
        L * (k * R2 * R + R * R + S * R) + S * S + Q * S


def test_bad_arguments_are_named(odd_weights, emulated, rng):
    w = odd_weights(rng, np.float64)
    ring = cuda_wavenet.new_ring(w, 2)
    start = np.full(2, -1)
    step = cuda_wavenet.step
    with pytest.raises(ValueError, match=r"ring must be a C-contiguous float64 array of shape "
                                         r"\(B, 15, 5\).*got float32 \(2, 15, 5\)"):
        step(w, ring.astype(np.float32), 0, start)
    with pytest.raises(ValueError, match="t must be a non-negative int, got -1"):
        step(w, ring, -1, start)
    with pytest.raises(ValueError, match=r"previous must be an integer array of shape \(2,\)"):
        step(w, ring, 0, np.zeros(2))
    with pytest.raises(ValueError, match=r"previous codes must lie in \[0, 11\).*\[-1, 11\]"):
        step(w, ring, 0, np.array([-1, 11]))
    with pytest.raises(ValueError, match=r"cond must be None or a float64 array of shape "
                                         r"\(2, 3, 10\), got float64 \(2, 3, 5\)"):
        step(w, ring, 0, start, np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="temperature must be a positive number, got 0"):
        cuda_wavenet.sample(w, ring, 0, start, np.zeros(2), 0)
    with pytest.raises(ValueError, match=r"uniforms must have shape \(2,\), got float64 \(3,\)"):
        cuda_wavenet.sample(w, ring, 0, start, np.zeros(3))
    with pytest.raises(ValueError, match=r"uniforms must have shape \(n_steps, 2\)"):
        cuda_wavenet.generate(w, ring, 0, start, np.zeros(4))
    with pytest.raises(ValueError, match=r"weights.res_b has shape \(3, 4\)"):
        step(w._replace(res_b=np.zeros((3, 4))), ring, 0, start)
    wide = _model(residual_channels=257, n_layers=1).step_weights()
    with pytest.raises(ValueError, match="supports at most 256 residual channels, got 257"):
        cuda_wavenet.pack(wide)
    with pytest.raises(ValueError, match=r"previous codes must lie in \[0, 11\)"):
        cuda_wavenet.check_step(w, ring, 0, np.array([12, 0]), None)


# --- the 'wavenet' family --------------------------------------------------------------------
def test_cuda_wavenet_has_every_function_of_the_cpu_family():
    from tinygen.backend.numba_kernels import wavenet as numba_wavenet

    public = {n for n in dir(numba_wavenet) if not n.startswith("_")
              and callable(getattr(numba_wavenet, n)) and n not in ("njit", "prange")}
    missing = {n for n in public if not callable(getattr(cuda_wavenet, n, None))}
    assert {"step", "new_ring", "ring_layout", "check_step"} <= public and not missing


def test_registered_for_cuda_as_nvrtc_and_aot():
    for impl in ("nvrtc", "aot"):
        assert K._REGISTRY["wavenet"]["cuda"][impl] == "tinygen.backend.cuda_kernels.wavenet"
