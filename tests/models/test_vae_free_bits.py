"""``free_bits``: each latent layer's batch-mean KL counts as at least that many nats in
the ELBO objective (Kingma et al. 2016).  A floor above every layer's KL leaves only the
reconstruction's gradient (the KL weight 0's); a floor below them changes nothing; the
reported loss is the true -ELBO either way; and the option refuses what it cannot do."""
import numpy as np
import pytest

from tinygen.models.vae.experiment import HierConvVAEExperiment, MLPVAEExperiment
from tinygen.training.options import ConfigError, check_options

SMALL = {
    "mlp": (MLPVAEExperiment, {"hidden": [8], "latent_dim": 2}),
    "hier": (HierConvVAEExperiment, {"latent_dim": 3, "latent1_dim": 2, "channels": [2, 3],
                                     "hidden": 6}),
}


def images(n=8, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28)).astype(np.uint8)


def step_gradients(arch, **options):
    """The metrics and every parameter's gradient of one training step (no update)."""
    cls, config = SMALL[arch]
    e = cls({**config, **options})
    e.optimizer.step = lambda: None                  # keep the gradients only
    metrics = e.train_step((images(),), np.random.default_rng(2))
    return metrics, {name: np.array(p.grad.data) for name, p in e.model.named_parameters()
                     if p.grad is not None}


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_a_floor_above_every_kl_leaves_the_reconstruction_gradient(arch):
    floored, g_floor = step_gradients(arch, free_bits=1e6)
    plain, g_zero_weight = step_gradients(arch, kl_warmup_steps=10 ** 9)   # weight 0 now
    assert floored == pytest.approx(plain, rel=1e-12)   # the same forward, true -ELBO
    assert floored["loss"] == pytest.approx(floored["recon"] + floored["kl"], rel=1e-12)
    assert set(g_floor) <= set(g_zero_weight)
    for name, g in g_floor.items():
        np.testing.assert_allclose(g, g_zero_weight[name], rtol=1e-5, atol=1e-7, err_msg=name)
    # ... and the KL does pull when there is no floor: the encoder's gradients differ
    _, g_elbo = step_gradients(arch)
    assert any(not np.allclose(g_elbo[n], g_zero_weight[n], rtol=1e-3, atol=1e-6)
               for n in g_elbo if n.startswith(("encoder", "features", "q")))


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_a_floor_under_every_kl_changes_nothing(arch):
    _, g_tiny = step_gradients(arch, free_bits=1e-9)
    _, g_elbo = step_gradients(arch)
    assert set(g_tiny) == set(g_elbo)
    for name, g in g_tiny.items():
        np.testing.assert_allclose(g, g_elbo[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_free_bits_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="free_bits floors the ELBO's KL terms"):
        MLPVAEExperiment({**SMALL["mlp"][1], "free_bits": 0.5, "train_k": 4})
    with pytest.raises(ValueError, match="free_bits must be >= 0"):
        MLPVAEExperiment({**SMALL["mlp"][1], "free_bits": -1.0})
    defaults = HierConvVAEExperiment.default_config()
    with pytest.raises(ConfigError, match="free_bits"):
        check_options(defaults, {**defaults, "free_bits": -0.5})
