"""benchmarks.gan_twin: the PyTorch twin trains exactly what tinygen trains -- same
initial weights, optimiser, losses, n_critic cadence, data and noise order -- so the FD
study compares engines, not recipes.  Skips without torch."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks.gan_twin import TorchTwin, batches  # noqa: E402
from tinygen.models import get_experiment  # noqa: E402


@pytest.mark.parametrize("name,g_ema", [("dcgan", 0.0), ("sngan", 0.0), ("wgan-gp", 0.0),
                                        ("dcgan", 0.9)])
def test_twin_takes_the_same_steps(name, g_ema):
    torch.set_num_threads(1)
    exp = get_experiment(name)({"seed": 3, "fd_samples": 0, "g_channels": 4, "d_channels": 4,
                                "latent_dim": 8, "batch_size": 8, "g_ema": g_ema})
    twin = TorchTwin(torch, exp)
    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28)).astype(np.uint8)
    ours, theirs = batches(images, 8, 0), batches(images, 8, 0)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(6):                    # crosses an epoch (2 batches of 8 per epoch)
        exp.train_step((next(ours),), rng_a)
        twin.train_step(next(theirs), rng_b)
    assert (exp.g_steps, exp.d_steps) == (twin.g_steps, twin.d_steps)
    assert twin.g_steps == (6 if name != "wgan-gp" else 2)
    pairs = [(exp.generator, twin.G), (exp.discriminator, twin.D)]
    if g_ema:
        pairs.append((exp.generator_ema, twin.G_ema))
    for mine, other in pairs:
        state = other.state_dict()
        for key, value in mine.state_dict().items():
            np.testing.assert_allclose(value.numpy(), state[key].numpy(), rtol=2e-3,
                                       atol=2e-5, err_msg=key)
    z = np.random.default_rng(2).standard_normal((5, 8)).astype(np.float32)
    np.testing.assert_allclose(exp.generate(z), twin.generate(z), atol=1e-4)
    if g_ema:       # the average moved off the last iterate, and both engines score it
        assert np.abs(exp.generate(z) - exp.generate(z, ema=False)).max() > 1e-4
        np.testing.assert_allclose(exp.generate(z, ema=False), twin.generate(z, ema=False),
                                   atol=1e-4)


def test_batches_follow_one_seeded_order_per_epoch():
    images = np.arange(10)
    first = [b.tolist() for _, b in zip(range(4), batches(images, 4, 7))]
    assert first == [b.tolist() for _, b in zip(range(4), batches(images, 4, 7))]
    assert all(len(b) == 4 for b in first)          # the partial batch (2 of 10) is dropped
    assert len(set(first[0] + first[1])) == 8       # an epoch draws without replacement
    assert first[2] + first[3] != first[0] + first[1]   # a new permutation next epoch
