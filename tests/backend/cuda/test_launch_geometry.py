"""Issue 13's launch-size finding: kernels whose shared arrays are sized for 256 threads
must either compute the right answer at another block size or refuse it
(``__launch_bounds__(256)``, which a GPU enforces and ``launch`` checks) -- never read
uninitialised or out-of-bounds shared memory.  The checked emulator is the judge: before
the fix, 128 threads left spectral norm's partial sums of groups 4..7 unwritten and 512
threads wrote past batch norm's, spectral norm's and WaveNet's 256-slot scratch arrays."""
import numpy as np
import pytest

from tinygen.backend.cuda_kernels import batch_norm as cuda_bn
from tinygen.backend.cuda_kernels import spectral_norm as cuda_sn
from tinygen.backend.cuda_kernels import wavenet as cuda_wavenet
from tinygen.backend.reference import batch_norm as bn_reference
from tinygen.backend.reference import spectral_norm as sn_reference
from tinygen.backend.reference import wavenet as wavenet_reference

REFUSED = r"has 512 threads but the kernel is compiled for at most 256 \(__launch_bounds__\(256\)\)"


@pytest.mark.parametrize("threads", [64, 96, 128])
def test_spectral_norm_at_fewer_threads_is_still_right(emulated, rng, monkeypatch, threads):
    monkeypatch.setattr(cuda_sn, "THREADS", threads)
    w = rng.standard_normal((37, 70))
    u = sn_reference.normalize(rng.standard_normal(37), 1e-12)
    v = sn_reference.normalize(rng.standard_normal(70), 1e-12)
    new_u, new_v, sigma = cuda_sn.power_iteration_sigma(w, u, v, 2, 1e-12)
    ref_u, ref_v = sn_reference.power_iteration(w, u, v, 2, 1e-12)
    np.testing.assert_allclose(new_u, ref_u, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new_v, ref_v, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cuda_sn.sigma(w, ref_u, ref_v), sn_reference.sigma(w, ref_u, ref_v),
                               rtol=1e-10)


def test_spectral_norm_refuses_more_than_256_threads(emulated, rng, monkeypatch):
    monkeypatch.setattr(cuda_sn, "THREADS", 512)
    w, u, v = rng.standard_normal((5, 40)), np.ones(5) / 5 ** 0.5, np.ones(40) / 40 ** 0.5
    with pytest.raises(ValueError, match=REFUSED):
        cuda_sn.power_iteration(w, u, v, 1, 1e-12)
    with pytest.raises(ValueError, match=REFUSED):
        cuda_sn.sigma(w, u, v)


def test_batch_norm_refuses_more_than_256_threads(emulated, rng, monkeypatch):
    x3 = rng.standard_normal((2, 3, 300))
    g3 = rng.standard_normal((2, 3, 300))
    monkeypatch.setattr(cuda_bn, "REDUCE_THREADS", 512)
    monkeypatch.setattr(cuda_bn, "ELEMENTWISE_THREADS", 512)
    mean, var = bn_reference.channel_stats(x3)
    ones = np.ones(3)
    calls = [lambda: cuda_bn.train_stats(x3, 1e-5),
             lambda: cuda_bn.backward_stats(g3, x3, mean, ones),
             lambda: cuda_bn.normalize_affine(x3, mean, ones, ones),
             lambda: cuda_bn.backward_input(g3, x3, mean, ones, ones, ones, ones)]
    for call in calls:
        with pytest.raises(ValueError, match=REFUSED):
            call()


def test_wavenet_refuses_more_than_256_threads(emulated, rng, monkeypatch):
    L, R, S, Q, k = 1, 160, 8, 11, 2  # 2R = 320 output channels: 320 threads wanted

    def w(*shape):
        return rng.standard_normal(shape) * 0.1

    weights = wavenet_reference.StepWeights(
        embed=w(Q, R), embed_b=w(R), conv_w=w(L, k, 2 * R, R), conv_b=w(L, 2 * R),
        res_w=w(L, R, R), res_b=w(L, R), skip_w=w(L, S, R), skip_b=w(L, S), out1_w=w(S, S),
        out1_b=w(S), out2_w=w(Q, S), out2_b=w(Q), dilations=np.array([1]))
    monkeypatch.setattr(cuda_wavenet, "MAX_THREADS", 512)
    ring = cuda_wavenet.new_ring(weights, 2)
    with pytest.raises(ValueError, match=r"has 320 threads but the kernel is compiled for at "
                                         r"most 256"):
        cuda_wavenet.sample(weights, ring, 0, np.full(2, -1), np.array([0.3, 0.7]))
