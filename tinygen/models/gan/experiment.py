"""GAN training recipes for the shared runner: ``dcgan``, ``sngan``, ``wgan-gp``.

One ``GANExperiment`` class does all three; the registered names differ only in
their defaults (``default_config``):

  dcgan     BatchNorm in G and D, non-saturating loss, Adam(2e-4, betas (0.5, 0.999)),
            one D step per G step, DCGAN initialisation N(0, 0.02)
  sngan     spectral norm on every D conv/linear, no D BatchNorm, hinge loss,
            Adam(2e-4, betas (0.5, 0.999)), one D step per G step
  wgan-gp   no D BatchNorm, Wasserstein loss + 10 * gradient penalty,
            Adam(1e-4, betas (0.0, 0.9)), five critic steps per G step

Every option can be changed (``loss`` takes any name in ``losses.LOSSES``;
``optimizer`` 'adam' or 'rmsprop'; ``clip_value`` for the clipped Wasserstein
loss, which Arjovsky et al. train with RMSprop(5e-5) and n_critic 5;
``lr_schedule`` 'cosine' or 'linear' with ``lr_decay_steps`` and ``lr_min``: both
optimizers' rates decay with the count of G updates, as in Gulrajani et al.'s linear
decay to 0, ``tinygen.optim.schedules``).

The n_critic cadence under the runner's one-batch-per-step contract: every
``train_step`` makes ONE discriminator update on its batch, and a generator
update follows on the steps where ``d_steps % n_critic == 0`` (the first step,
then every n_critic-th).  So over an epoch the discriminator sees every real
image exactly once and the generator makes ceil(batches / n_critic) updates --
the same ratio as the papers' inner loop of n_critic critic batches, without
drawing extra real batches outside the loader.  ``g_loss`` in a step's
result is the loss of the most recent generator update.

Randomness: all noise (latents, the penalty's interpolation weights) comes from
the numpy Generator the runner passes in, so a resumed run is bit-for-bit the
run that never stopped.  Initial weights (and spectral norm's u, v) are drawn
from ``config['seed']``.  Sample grids use a FIXED batch of latents (kept in
``extra_state``) so that the grids of successive epochs show the same z.

Images are scaled to [-1, 1] (the generator ends in tanh); samples are mapped
back to uint8.  Generation for samples and FD runs the generator in evaluation
mode (BatchNorm's running statistics), so it does not depend on the batch.

``-o g_ema=0.999`` keeps an exponential moving average of the generator's weights
(``nn.utils.ema``; its running statistics averaged too), updated after every
generator step and checkpointed as the module ``generator_ema``; samples and FD then
come from the average, which typically scores a much better FD than the last iterate
(Yazici et al. 2019).  ``generate(z, ema=False)`` still reaches the raw generator.
"""
import contextlib
import time

import numpy as np

from ... import optim
from ...optim.schedules import check_schedule, scheduled_lr, set_lr
from ... import random as _random
from ...autograd.grad_mode import no_grad
from ...autograd.tensor import Tensor
from ...nn.utils.ema import ema_copy, ema_decay, ema_update_
from ..experiment import Experiment, register, to_uint8_images
from . import losses as L
from .networks import DCGANGenerator, DCGANDiscriminator, dcgan_init_, default_init_

COMMON_DEFAULTS = {
    "batch_size": 64,
    "latent_dim": 64,
    "g_channels": 32,          # C: G is latent -> (2C, 7, 7) -> (C, 14, 14) -> (1, 28, 28)
    "d_channels": 32,          # C: D is (1, 28, 28) -> (C, 14, 14) -> (2C, 7, 7) -> 1
    "loss": "non-saturating",
    "n_critic": 1,
    "optimizer": "adam",       # or "rmsprop"
    "lr": 2e-4,
    "g_lr": None,              # None: lr
    "d_lr": None,              # None: lr
    "beta1": 0.5,
    "beta2": 0.999,
    "gp_weight": 10.0,         # lambda of WGAN-GP (loss 'wgan-gp')
    "clip_value": 0.01,        # c of WGAN's weight clipping (loss 'wasserstein')
    "spectral_norm": False,
    "d_batchnorm": True,
    "init": "dcgan",           # "dcgan" (N(0, 0.02)) or "default" (PyTorch's)
    "fd_samples": 2000,        # generated images for FD-FMNIST in evaluate; 0: no FD
    "fd_floor": True,          # also report the real-train vs real-test FD (same n)
    "n_fixed_samples": 64,     # size of the fixed latent batch behind sample grids
    "g_ema": 0.0,              # decay of the generator's weight average; 0: none
    "lr_schedule": "constant",  # or "cosine", "linear": each optimizer's lr -> lr_min over
    "lr_decay_steps": 0,       #   this many G updates (D's too follows the G count, as in
    "lr_min": 0.0,             #   Gulrajani et al.'s linear decay to 0)
}

PRESETS = {
    "dcgan": {},
    "sngan": {"loss": "hinge", "spectral_norm": True, "d_batchnorm": False,
              "init": "default"},
    "wgan-gp": {"loss": "wgan-gp", "n_critic": 5, "lr": 1e-4, "beta1": 0.0, "beta2": 0.9,
                "d_batchnorm": False, "init": "default"},
}


@contextlib.contextmanager
def _seeded_default_generator(seed):
    """Run a block with tinygen's default generator seeded, then restore it (the
    layers and spectral_norm draw their initial values from it)."""
    state = _random.get_rng_state()
    _random.manual_seed(seed)
    try:
        yield
    finally:
        _random.set_rng_state(state)


class GANExperiment(Experiment):
    preset = {}

    @classmethod
    def default_config(cls):
        return {**COMMON_DEFAULTS, **cls.preset}

    def __init__(self, config):
        super().__init__(config)
        config = self.config
        config["loss"] = L.canonical_loss(config["loss"])
        if int(config["n_critic"]) < 1:
            raise ValueError(f"n_critic must be >= 1, got {config['n_critic']}")
        if config["optimizer"] not in ("adam", "rmsprop"):
            raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {config['optimizer']!r}")
        if config["init"] not in ("dcgan", "default"):
            raise ValueError(f"init must be 'dcgan' or 'default', got {config['init']!r}")
        check_schedule(config["lr_schedule"], config["lr_decay_steps"],
                       "G updates: an epoch of 60000 images at batch 64 is ~937 D steps, "
                       "~937 / n_critic G updates")
        if config["loss"] in L.PENALISED and config["d_batchnorm"]:
            raise ValueError("the gradient penalty is per sample; a BatchNorm critic couples "
                             "the samples (set d_batchnorm=False, as Gulrajani et al. do)")
        self.d_loss_fn, self.g_loss_fn = L.LOSSES[config["loss"]]
        self.device = config["device"]
        seed = int(config["seed"])

        with _seeded_default_generator(seed):
            self.generator = DCGANGenerator(config["latent_dim"], config["g_channels"])
            self.discriminator = DCGANDiscriminator(
                config["d_channels"], spectral_norm=config["spectral_norm"],
                batchnorm=config["d_batchnorm"])
        init_rng = np.random.default_rng([seed, 1])
        init_ = dcgan_init_ if config["init"] == "dcgan" else default_init_
        init_(self.generator, init_rng)
        init_(self.discriminator, init_rng)
        if self.device != "cpu":
            self.generator.to(device=self.device)
            self.discriminator.to(device=self.device)

        ema_decay(config["g_ema"])               # a clear error for a bad decay, now
        self.generator_ema = (ema_copy(self.generator) if float(config["g_ema"]) > 0
                              else None)
        self.opt_g = self._optimizer(self.generator, config["g_lr"])
        self.opt_d = self._optimizer(self.discriminator, config["d_lr"])
        self.d_steps = 0
        self.g_steps = 0
        self.last_g_loss = 0.0
        self.fixed_z = np.random.default_rng([seed, 2]).standard_normal(
            (int(config["n_fixed_samples"]), int(config["latent_dim"]))).astype(np.float32)

    def _base_lr(self, lr):
        return float(self.config["lr"] if lr is None else lr)

    def _schedule(self, optimizer, lr_option):
        """Set ``optimizer``'s rate (its base: config[lr_option], or lr) for the current G
        update count, under a decaying schedule."""
        c = self.config
        if c["lr_schedule"] != "constant":
            set_lr(optimizer, scheduled_lr(c["lr_schedule"], self._base_lr(c[lr_option]),
                                           c["lr_min"], c["lr_decay_steps"], self.g_steps))

    def _optimizer(self, module, lr):
        c = self.config
        lr = self._base_lr(lr)
        if c["optimizer"] == "adam":
            return optim.Adam(module.parameters(), lr=lr, betas=(c["beta1"], c["beta2"]))
        return optim.RMSprop(module.parameters(), lr=lr)

    # --- data ------------------------------------------------------------------------------
    def load_data(self):
        from ...data import load_dataset

        return load_dataset(self.config.get("dataset") or "fashion-mnist",
                            root=self.config.get("data"), limit=self.config.get("limit"),
                            test_limit=self.config.get("test_limit"))

    def _images(self, images_uint8):
        """uint8 (N, 28, 28) -> float32 Tensor (N, 1, 28, 28) in [-1, 1]."""
        x = np.asarray(images_uint8, dtype=np.float32).reshape(-1, 1, 28, 28)
        return self._tensor(x * np.float32(2.0 / 255.0) - np.float32(1.0))

    def _tensor(self, array):
        # in the networks' dtype: float32 by default, float64 after .double() (tests)
        dtype = next(iter(self.generator.parameters())).dtype
        t = Tensor._make(np.ascontiguousarray(array, dtype=dtype))
        return t if self.device == "cpu" else t.to(device=self.device)

    def noise(self, n, generator):
        return self._tensor(generator.standard_normal(
            (n, int(self.config["latent_dim"]))).astype(np.float32))

    # --- checkpointed state --------------------------------------------------------------------
    def modules(self):
        mods = {"generator": self.generator, "discriminator": self.discriminator}
        if self.generator_ema is not None:
            mods["generator_ema"] = self.generator_ema
        return mods

    def optimizers(self):
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self):
        return {"d_steps": int(self.d_steps), "g_steps": int(self.g_steps),
                "last_g_loss": float(self.last_g_loss), "fixed_z": self.fixed_z.copy()}

    def load_extra_state(self, state):
        self.d_steps = int(np.asarray(state["d_steps"]))
        self.g_steps = int(np.asarray(state["g_steps"]))
        self.last_g_loss = float(np.asarray(state["last_g_loss"]))
        self.fixed_z = np.asarray(state["fixed_z"], dtype=np.float32).copy()

    # --- training ------------------------------------------------------------------------------
    def discriminator_step(self, real, generator):
        """One D update on a batch of real images (a Tensor in [-1, 1]); returns
        the statistics of the step (floats)."""
        G, D = self.generator, self.discriminator
        G.train()
        D.train()
        z = self.noise(real.shape[0], generator)
        with no_grad():
            fake = G(z)
        real_scores = D(real)
        fake_scores = D(fake)
        loss = self.d_loss_fn(real_scores, fake_scores)
        stats = {"d_loss": float(loss.item()),
                 "score_gap": float(real_scores.data.mean() - fake_scores.data.mean())}
        if self.config["loss"] in L.PENALISED:
            penalty = L.gradient_penalty(D, L.interpolate(real, fake, generator))
            loss = loss + float(self.config["gp_weight"]) * penalty
            stats["gp"] = float(penalty.item())
            stats["d_loss"] = float(loss.item())
        self.opt_d.zero_grad()
        loss.backward()
        self._schedule(self.opt_d, "d_lr")
        self.opt_d.step()
        if self.config["loss"] in L.CLIPPED:
            L.clip_parameters_(D.parameters(), float(self.config["clip_value"]))
        self.d_steps += 1
        return stats

    def generator_step(self, n, generator):
        """One G update on ``n`` fresh latents; returns the G loss (float).  D's
        weights get no gradient here (requires_grad off for the step)."""
        G, D = self.generator, self.discriminator
        G.train()
        D.train()
        D.requires_grad_(False)
        try:
            loss = self.g_loss_fn(D(G(self.noise(n, generator))))
            self.opt_g.zero_grad()
            loss.backward()
            self._schedule(self.opt_g, "g_lr")
            self.opt_g.step()
        finally:
            D.requires_grad_(True)
        if self.generator_ema is not None:
            ema_update_(self.generator_ema, G, self.config["g_ema"], step=self.g_steps)
        self.g_steps += 1
        self.last_g_loss = float(loss.item())
        return self.last_g_loss

    def train_step(self, batch, generator):
        real = self._images(batch[0])
        update_g = self.d_steps % int(self.config["n_critic"]) == 0
        stats = self.discriminator_step(real, generator)
        if update_g:
            self.generator_step(real.shape[0], generator)
        stats["g_loss"] = self.last_g_loss
        return stats

    # --- results --------------------------------------------------------------------------------
    def generate(self, z, batch_size=500, ema=None):
        """Generator outputs in [-1, 1] (numpy float32) for latents z (numpy), in
        evaluation mode; from the weight average when there is one (``ema=None``),
        or as ``ema`` says (True with no average is an error)."""
        if ema is None:
            ema = self.generator_ema is not None
        if ema and self.generator_ema is None:
            raise ValueError("generate(ema=True) needs a weight average: train with "
                             "-o g_ema=DECAY (e.g. 0.999)")
        G = self.generator_ema if ema else self.generator
        was_training = G.training
        G.eval()
        out = []
        try:
            with no_grad():
                for lo in range(0, z.shape[0], batch_size):
                    y = G(self._tensor(np.asarray(z[lo:lo + batch_size], np.float32)))
                    out.append(np.asarray(y.cpu().data if self.device != "cpu" else y.data))
        finally:
            G.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, 1, 28, 28), np.float32)

    def sample(self, n, generator):
        """``n`` uint8 images (n, 28, 28) from the FIXED latents (extended
        deterministically from the seed when n exceeds the stored batch)."""
        z = self.fixed_z
        if n > z.shape[0]:
            extra = np.random.default_rng([int(self.config["seed"]), 3]).standard_normal(
                (n - z.shape[0], z.shape[1])).astype(np.float32)
            z = np.concatenate([z, extra])
        return to_uint8_images(self.generate(z[:n])[:, 0], low=-1.0, high=1.0)

    def generated_images(self, n, generator):
        """``n`` uint8 images from fresh latents drawn from ``generator``."""
        z = generator.standard_normal((n, int(self.config["latent_dim"]))).astype(np.float32)
        return to_uint8_images(self.generate(z)[:, 0], low=-1.0, high=1.0)

    def evaluate(self, test_arrays, generator, classifier=None):
        """FD-FMNIST of ``fd_samples`` generated images against the whole real test set
        (``test_arrays`` is not used: the reference statistics are cached per classifier)
        and, with ``fd_floor``, the real-train vs real-test FD from as many train images."""
        from ...metrics import frechet

        n = int(self.config.get("fd_samples") or 0)
        if n <= 0:
            return {}
        start = time.perf_counter()
        images = self.generated_images(n, generator)
        root = self.config.get("data")
        if classifier is None:
            classifier = frechet._default_classifier(root)
        # which classifier scored the run (an FD is comparable only under the same one)
        self.fd_classifier = getattr(classifier, "identity", None)
        result = {"fd_fmnist": frechet.fd_fmnist(images, "test", classifier=classifier,
                                                 root=root),
                  "fd_samples": n}
        if self.config.get("fd_floor", True):
            result["fd_floor"] = frechet.fd_floor(classifier=classifier, n_train=n, root=root)
        result["fd_seconds"] = time.perf_counter() - start
        return result

    def evaluation_info(self):
        info = getattr(self, "fd_classifier", None)
        return {"fd_classifier": info} if info else {}


@register("dcgan")
class DCGANExperiment(GANExperiment):
    """``tinygen train dcgan``: BatchNorm G and D, non-saturating loss, Adam(2e-4, (0.5, 0.999))."""
    preset = PRESETS["dcgan"]


@register("sngan")
class SNGANExperiment(GANExperiment):
    """``tinygen train sngan``: spectral-norm D without BatchNorm, hinge loss."""
    preset = PRESETS["sngan"]


@register("wgan-gp")
class WGANGPExperiment(GANExperiment):
    """``tinygen train wgan-gp``: BatchNorm-free critic, gradient penalty 10, n_critic 5,
    Adam(1e-4, (0.0, 0.9))."""
    preset = PRESETS["wgan-gp"]
