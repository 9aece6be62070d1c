"""GANs: the loss table, the WGAN-GP penalty's double backward, spectral norm,
and short, deterministic training runs on a small real subset of Fashion-MNIST.

"The loss decreases" is tested where it is meaningful for adversarial training:
the discriminator's loss over a few dozen D steps against a frozen generator,
and the generator's loss over a few dozen G steps against a frozen
discriminator.  (With both players moving, neither loss need decrease.)
"""
import warnings

import numpy as np
import pytest

import tinygen as tg
from tinygen.models import get_experiment, EXPERIMENTS
from tinygen.models.gan import (
    DCGANGenerator, DCGANDiscriminator, LOSSES, gradient_penalty, interpolate,
)
from tinygen.models.gan import losses as L
from tinygen.testing import gradcheck


SMALL = {"seed": 0, "latent_dim": 16, "g_channels": 8, "d_channels": 8, "batch_size": 32,
         "limit": 256, "fd_samples": 0}


@pytest.fixture(scope="module")
def real_images():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the embedded subset, where the data is missing
        from tinygen.data import load_dataset
        (images, _), _ = load_dataset("fashion-mnist", limit=256)
    return images


def batches(images, batch_size=32):
    while True:
        for lo in range(0, len(images), batch_size):
            yield (images[lo:lo + batch_size],)


def make(name, **options):
    return get_experiment(name)({**SMALL, **options})


def scores(values):
    return tg.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# --- the loss table --------------------------------------------------------------------------
def test_registered_experiments():
    get_experiment("dcgan")
    assert {"dcgan", "sngan", "wgan-gp"} <= set(EXPERIMENTS)


def test_loss_values_at_known_points():
    zero = scores([0.0, 0.0])
    log2 = np.log(2.0)
    assert L.bce_d_loss(zero, zero).item() == pytest.approx(2 * log2)
    assert L.minimax_g_loss(zero).item() == pytest.approx(-log2)
    assert L.non_saturating_g_loss(zero).item() == pytest.approx(log2)
    assert L.hinge_d_loss(scores([1.0, 2.0]), scores([-1.0, -3.0])).item() == 0.0
    assert L.hinge_d_loss(zero, zero).item() == pytest.approx(2.0)
    assert L.least_squares_d_loss(scores([1.0]), scores([0.0])).item() == 0.0
    assert L.least_squares_g_loss(scores([1.0])).item() == 0.0
    assert L.least_squares_g_loss(scores([3.0])).item() == pytest.approx(2.0)
    assert L.wasserstein_d_loss(scores([2.0, 4.0]), scores([1.0, 1.0])).item() == -2.0
    assert L.wasserstein_g_loss(scores([1.0, 3.0])).item() == -2.0


def test_bce_losses_match_the_probability_forms():
    real, fake = scores([0.3, -1.2, 2.0]), scores([-0.5, 0.7, 1.5])
    p_real, p_fake = 1 / (1 + np.exp(-real.numpy())), 1 / (1 + np.exp(-fake.numpy()))
    assert L.bce_d_loss(real, fake).item() == pytest.approx(
        -np.mean(np.log(p_real)) - np.mean(np.log(1 - p_fake)))
    assert L.minimax_g_loss(fake).item() == pytest.approx(np.mean(np.log(1 - p_fake)))
    assert L.non_saturating_g_loss(fake).item() == pytest.approx(-np.mean(np.log(p_fake)))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_gradient_signs(name):
    """D wants real scores up and fake scores down; G wants fake scores up."""
    d_loss, g_loss = LOSSES[name]
    # Points where no loss is flat or past its target (the hinge is flat beyond its
    # margins; least squares pulls real scores to 1 and fake ones to 0).
    real, fake = scores([0.2, -0.4, 0.5]), scores([0.3, 0.1, 0.4])
    d_loss(real, fake).backward()
    assert (real.grad.numpy() < 0).all() and (fake.grad.numpy() > 0).all()
    fake = scores([0.3, 0.1, 0.4])
    g_loss(fake).backward()
    assert (fake.grad.numpy() < 0).all()


def test_minimax_generator_gradient_saturates_but_non_saturating_does_not():
    """Where D confidently rejects the fakes, log(1 - D(G(z))) has a vanishing
    gradient and -log D(G(z)) a strong one (Goodfellow et al.'s motivation)."""
    a, b = scores([-8.0]), scores([-8.0])
    L.minimax_g_loss(a).backward()
    L.non_saturating_g_loss(b).backward()
    assert abs(a.grad.item()) < 1e-3 < 0.9 < abs(b.grad.item())


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="unknown GAN loss"):
        make("dcgan", loss="nope")


# --- WGAN-GP's penalty -------------------------------------------------------------------------
def test_gradient_penalty_matches_finite_differences():
    """d penalty / d critic weights is a gradient of a gradient (create_graph=True);
    central differences in float64 on a tiny critic agree with it."""
    tg.manual_seed(0)
    critic = DCGANDiscriminator(channels=2, batchnorm=False).double()
    rng = np.random.default_rng(0)
    real = tg.tensor(rng.uniform(-1, 1, (2, 1, 28, 28)), dtype=tg.float64)
    fake = tg.tensor(rng.uniform(-1, 1, (2, 1, 28, 28)), dtype=tg.float64)
    x_hat = interpolate(real, fake, rng)
    params = [p for p in critic.parameters()]
    penalty = gradient_penalty(critic, x_hat)
    penalty.backward()
    for name, p in critic.named_parameters():
        # Biases shift the scores and the leaky-relu kinks, not the input gradient
        # (leaky_relu'' = 0 almost everywhere): only the weights reach the penalty.
        if name.endswith("weight"):
            assert p.grad is not None and np.abs(p.grad.numpy()).max() > 0, name
    gradcheck(lambda *_: gradient_penalty(critic, x_hat), params, atol=1e-7, rtol=1e-4)


def test_gradient_penalty_of_a_unit_lipschitz_linear_critic_is_zero():
    x = tg.tensor(np.random.default_rng(1).standard_normal((3, 1, 28, 28)), dtype=tg.float64)
    # A critic whose input gradient has norm exactly 1 everywhere: a unit linear map.
    w = np.random.default_rng(2).standard_normal(784)
    w /= np.linalg.norm(w)
    penalty = gradient_penalty(lambda t: (t.flatten(1) * tg.tensor(w)).sum(axis=1), x)
    assert penalty.item() == pytest.approx(0.0, abs=1e-10)


def test_interpolates_lie_between_real_and_fake():
    rng = np.random.default_rng(0)
    real = tg.tensor(np.ones((5, 1, 2, 2), np.float32))
    fake = tg.tensor(-np.ones((5, 1, 2, 2), np.float32))
    x = interpolate(real, fake, rng).numpy()
    assert x.dtype == np.float32 and (np.abs(x) <= 1).all()
    assert np.ptp(x.reshape(5, -1), axis=1).max() == 0.0  # one weight per sample
    assert np.ptp(x[:, 0, 0, 0]) > 0.1                        # different across samples


# --- architectures ---------------------------------------------------------------------------
def test_shapes_and_ranges():
    g = DCGANGenerator(latent_dim=16, channels=8)
    d = DCGANDiscriminator(channels=8)
    x = g(tg.randn(5, 16))
    assert x.shape == (5, 1, 28, 28) and np.abs(x.numpy()).max() <= 1.0
    assert d(x).shape == (5,)


def test_sngan_discriminator_is_spectrally_normalised():
    exp = make("sngan")
    keys = set(exp.discriminator.state_dict())
    for layer in ("conv1", "conv2", "fc"):
        assert {f"{layer}.weight_orig", f"{layer}.weight_u", f"{layer}.weight_v"} <= keys
    assert not any(k.startswith("bn") for k in keys)
    d = exp.discriminator
    x = tg.tensor(np.zeros((2, 1, 28, 28), np.float32))
    for _ in range(60):  # power iteration: one step per training-mode forward
        d(x)
    for layer in (d.conv1, d.conv2, d.fc):
        w = layer.weight.numpy()
        sigma = np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)[0]
        assert sigma == pytest.approx(1.0, rel=1e-2)


def test_wgan_gp_critic_has_no_batchnorm():
    exp = make("wgan-gp")
    assert not any(k.startswith("bn") for k in exp.discriminator.state_dict())
    with pytest.raises(ValueError, match="BatchNorm"):
        make("wgan-gp", d_batchnorm=True)


def test_presets():
    c = make("wgan-gp").config
    assert (c["loss"], c["n_critic"], c["lr"], c["beta1"], c["beta2"], c["gp_weight"]) == \
        ("wgan-gp", 5, 1e-4, 0.0, 0.9, 10.0)
    c = make("dcgan").config
    assert (c["loss"], c["lr"], c["beta1"], c["beta2"]) == ("non-saturating", 2e-4, 0.5, 0.999)
    assert make("sngan").config["loss"] == "hinge"
    opt = make("wgan-gp").opt_d
    assert opt.param_groups[0]["betas"] == (0.0, 0.9)


# --- training on real images ------------------------------------------------------------------
def _mean_first_last(values, k=5):
    return float(np.mean(values[:k])), float(np.mean(values[-k:]))


@pytest.mark.parametrize("name", ["dcgan", "sngan", "wgan-gp"])
def test_discriminator_loss_decreases_with_generator_frozen(name, real_images):
    exp = make(name)
    rng = np.random.default_rng(0)
    g_before = {k: v.numpy().copy() for k, v in exp.generator.state_dict().items()
                if not k.endswith("num_batches_tracked")}
    data = batches(real_images)
    steps = [exp.discriminator_step(exp._images(next(data)[0]), rng) for _ in range(30)]
    losses = [s["d_loss"] for s in steps]
    first, last = _mean_first_last(losses)
    # WGAN-GP's loss is dominated by the penalty at initialisation (a small critic's
    # input gradient is far from norm 1) and falls slowly at lr 1e-4: a 3% margin.
    assert last < first - 0.03 * abs(first), losses
    # ... and the critic separates real from fake: mean score gap D(x) - D(G(z)) grows.
    gap_first, gap_last = _mean_first_last([s["score_gap"] for s in steps])
    assert gap_last > gap_first + 0.05
    for k, v in exp.generator.state_dict().items():  # G's weights never moved
        if k in g_before and "running" not in k:
            np.testing.assert_array_equal(v.numpy(), g_before[k])


@pytest.mark.parametrize("name", ["dcgan", "sngan", "wgan-gp"])
def test_generator_loss_decreases_with_discriminator_frozen(name, real_images):
    exp = make(name)
    rng = np.random.default_rng(0)
    data = batches(real_images)
    for _ in range(10):  # a discriminator that tells real from fake a little
        exp.discriminator_step(exp._images(next(data)[0]), rng)
    d_before = {k: v.numpy().copy() for k, v in exp.discriminator.state_dict().items()
                if not k.endswith(("_u", "_v", "running_mean", "running_var",
                                   "num_batches_tracked"))}
    losses = [exp.generator_step(32, rng) for _ in range(30)]
    first, last = _mean_first_last(losses)
    assert last < first - 0.05 * abs(first) - 0.01, losses
    for k, v in d_before.items():
        np.testing.assert_array_equal(exp.discriminator.state_dict()[k].numpy(), v)


def test_generator_step_leaves_no_gradient_on_the_discriminator(real_images):
    exp = make("dcgan")
    exp.generator_step(8, np.random.default_rng(0))
    assert all(p.grad is None for p in exp.discriminator.parameters())
    assert all(p.requires_grad for p in exp.discriminator.parameters())


def test_weight_clipping_keeps_critic_weights_in_range(real_images):
    c = 0.01
    exp = make("dcgan", loss="wasserstein", optimizer="rmsprop", lr=0.05, clip_value=c,
               d_batchnorm=False)
    rng = np.random.default_rng(0)
    data = batches(real_images)
    for _ in range(3):
        exp.train_step(next(data), rng)
        values = np.concatenate([p.numpy().ravel() for p in exp.discriminator.parameters()])
        assert np.abs(values).max() <= c
    assert np.abs(values).max() == pytest.approx(c)  # the large lr pushed some onto the edge
    assert isinstance(exp.opt_d, tg.optim.RMSprop)


def test_n_critic_cadence(real_images):
    exp = make("dcgan", n_critic=3)
    rng = np.random.default_rng(0)
    data = batches(real_images)
    updated = []
    for _ in range(7):
        before = exp.generator.fc.weight.numpy().copy()
        exp.train_step(next(data), rng)
        updated.append(not np.array_equal(before, exp.generator.fc.weight.numpy()))
    assert updated == [True, False, False, True, False, False, True]
    assert (exp.d_steps, exp.g_steps) == (7, 3)


def test_a_linear_schedule_decays_both_optimizers_by_the_g_update_count(real_images):
    """Gulrajani et al.'s decay: G's and D's rates go linearly from their own base rate
    to lr_min over lr_decay_steps G updates, both by the G count, each step at the rate
    of the count before it."""
    exp = make("wgan-gp", n_critic=2, lr=1e-3, d_lr=2e-3, lr_schedule="linear",
               lr_decay_steps=4, lr_min=1e-4)
    rng = np.random.default_rng(0)
    data = batches(real_images)
    d_rates, g_rates = [], []
    for _ in range(12):
        g_before = exp.g_steps
        exp.train_step(next(data), rng)
        d_rates.append((g_before, exp.opt_d.param_groups[0]["lr"]))
        if exp.g_steps > g_before:              # (a G update came after this D step)
            g_rates.append((g_before, exp.opt_g.param_groups[0]["lr"]))
    assert [g for g, _ in g_rates] == [0, 1, 2, 3, 4, 5]
    for g, rate in d_rates:
        assert rate == pytest.approx(2e-3 + (1e-4 - 2e-3) * min(1.0, g / 4))
    for g, rate in g_rates:
        assert rate == pytest.approx(1e-3 + (1e-4 - 1e-3) * min(1.0, g / 4))
    assert d_rates[-1][1] == g_rates[-1][1] == pytest.approx(1e-4)        # (held at lr_min)


def test_the_schedule_options_are_checked_when_the_experiment_is_made():
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, cosine, linear"):
        make("wgan-gp", lr_schedule="step")
    with pytest.raises(ValueError, match="lr_schedule=linear needs lr_decay_steps >= 1"):
        make("wgan-gp", lr_schedule="linear")
    assert make("dcgan").opt_g.param_groups[0]["lr"] == 2e-4      # (constant: untouched)


def _snapshot(exp):
    return ({n: m.state_dict() for n, m in exp.modules().items()},
            {n: o.state_dict() for n, o in exp.optimizers().items()},
            exp.extra_state())


def _restore(exp, snapshot):
    modules, optimizers, extra = snapshot
    for n, m in exp.modules().items():
        m.load_state_dict(modules[n])
    for n, o in exp.optimizers().items():
        o.load_state_dict(optimizers[n])
    exp.load_extra_state(extra)


@pytest.mark.parametrize("name,options", [("sngan", {}), ("wgan-gp", {}),
                                          ("dcgan", {"g_ema": 0.99})])
def test_resume_is_bit_for_bit(name, options, real_images):
    """State = modules + optimizers + extra_state (+ the runner's generator): a run
    restored mid-way continues exactly as the uninterrupted one."""
    import copy

    batches_list = [(real_images[i * 32:(i + 1) * 32],) for i in range(7)]
    exp = make(name, **options)
    rng = np.random.default_rng(5)
    for b in batches_list[:4]:
        exp.train_step(b, rng)
    snap = copy.deepcopy(_snapshot(exp))
    rng_state = copy.deepcopy(rng.bit_generator.state)
    straight = [exp.train_step(b, rng) for b in batches_list[4:]]

    resumed = make(name, seed=123, **options)  # other initial weights: all from the state
    _restore(resumed, snap)
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = rng_state
    again = [resumed.train_step(b, rng2) for b in batches_list[4:]]
    assert again == straight
    for n, m in exp.modules().items():
        other = resumed.modules()[n].state_dict()
        for k, v in m.state_dict().items():
            np.testing.assert_array_equal(v.numpy(), other[k].numpy(), err_msg=f"{n}.{k}")


def test_generator_weight_average(real_images):
    """-o g_ema: the average follows nn.utils.ema's rule after every G step, is
    checkpointed, and is what samples and FD see; the last iterate stays reachable."""
    from tinygen.nn.utils.ema import ema_decay

    exp, plain = make("dcgan", g_ema=0.9), make("dcgan")
    assert "generator_ema" in exp.modules() and "generator_ema" not in plain.modules()
    z = np.random.default_rng(1).standard_normal((6, 16)).astype(np.float32)
    np.testing.assert_array_equal(exp.generate(z), plain.generate(z))   # starts as G
    rng_a, rng_b = np.random.default_rng(2), np.random.default_rng(2)
    expected = {k: v.numpy().astype(np.float64)
                for k, v in exp.generator_ema.state_dict().items()}
    data = batches(real_images)
    for step in range(3):
        b = next(data)
        exp.train_step(b, rng_a)
        plain.train_step(b, rng_b)
        d = ema_decay(0.9, step)
        for k, v in exp.generator.state_dict().items():
            v = v.numpy()
            expected[k] = d * expected[k] + (1 - d) * v if v.dtype.kind == "f" else v
    for k, v in exp.generator_ema.state_dict().items():
        np.testing.assert_allclose(v.numpy(), expected[k], rtol=1e-5, atol=1e-7, err_msg=k)
    np.testing.assert_array_equal(exp.generate(z, ema=False), plain.generate(z))
    last = plain.generate(z)
    assert np.abs(exp.generate(z) - last).max() > 0.05 * np.abs(last).max()
    from tinygen.models.experiment import to_uint8_images
    np.testing.assert_array_equal(     # sample grids come from the average too
        exp.sample(4, rng_a),
        to_uint8_images(exp.generate(exp.fixed_z[:4], ema=True)[:, 0], low=-1.0, high=1.0))
    assert exp.generator_ema.training is False and exp.generator.training is True
    with pytest.raises(ValueError, match="g_ema"):
        plain.generate(z, ema=True)
    with pytest.raises(ValueError, match="decay"):
        make("dcgan", g_ema=1.0)


def test_samples_use_fixed_latents(real_images):
    exp = make("dcgan")
    rng = np.random.default_rng(0)
    state = copy_state(rng)
    a = exp.sample(16, rng)
    assert a.shape == (16, 28, 28) and a.dtype == np.uint8
    assert rng.bit_generator.state == state  # sampling draws nothing from the run's noise
    np.testing.assert_array_equal(exp.sample(16, np.random.default_rng(9)), a)
    assert exp.sample(80, rng).shape == (80, 28, 28)
    exp.train_step(next(batches(real_images)), rng)
    b = exp.sample(16, rng)
    assert not np.array_equal(a, b)  # same z, new weights
    assert exp.extra_state()["fixed_z"].shape == (64, 16)


def copy_state(rng):
    import copy
    return copy.deepcopy(rng.bit_generator.state)


def test_evaluate_reports_fd_and_floor(tmp_path, monkeypatch):
    from tinygen.metrics import frechet
    monkeypatch.setenv("TINYGEN_CACHE", str(tmp_path))
    monkeypatch.setattr(frechet, "_MEMORY", {})

    class Stub:
        training = False

        def eval(self):
            return self

        def features(self, x):
            w = np.random.default_rng(0).standard_normal((784, 8)) / 10
            return tg.tensor(np.tanh(x.numpy().reshape(x.shape[0], -1) @ w))

    exp = make("dcgan", fd_samples=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = exp.evaluate(None, np.random.default_rng(0), classifier=Stub())
    assert result["fd_samples"] == 200
    assert result["fd_fmnist"] > result["fd_floor"] > 0.0
    assert exp.evaluation_info() == {}  # the stub says nothing about itself
    Stub.identity = {"key": "k1", "test_accuracy": 0.9}
    exp.evaluate(None, np.random.default_rng(0), classifier=Stub())
    assert exp.evaluation_info() == {"fd_classifier": {"key": "k1", "test_accuracy": 0.9}}
    assert make("dcgan").evaluate(None, np.random.default_rng(0)) == {}  # fd_samples=0


def test_through_the_runner_resume_matches_an_uninterrupted_run(tmp_path):
    """The shared runner (checkpoint .npz round trip of extra_state included): two
    epochs straight equal one epoch plus a resumed one, for the n_critic=5 recipe."""
    training = pytest.importorskip("tinygen.training")
    opts = {k: v for k, v in SMALL.items() if k != "seed"}
    opts.update(epochs=2, limit=96)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = training.train("wgan-gp", opts, out=tmp_path / "a", progress=False, log=None)
        training.train("wgan-gp", {**opts, "epochs": 1}, out=tmp_path / "b", progress=False,
                       log=None)
        b = training.train("wgan-gp", {"epochs": 2}, out=tmp_path / "b", resume=True,
                           progress=False, log=None)
    assert (a.experiment.d_steps, a.experiment.g_steps) == (6, 2)
    assert b.experiment.extra_state()["g_steps"] == 2
    for n, m in a.experiment.modules().items():
        other = b.experiment.modules()[n].state_dict()
        for k, v in m.state_dict().items():
            np.testing.assert_array_equal(v.numpy(), other[k].numpy(), err_msg=f"{n}.{k}")
    assert (tmp_path / "a" / "samples.png").is_file()
