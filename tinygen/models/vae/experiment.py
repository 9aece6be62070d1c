"""VAE training recipes for the shared runner: ``tinygen train vae`` (ConvVAE),
``tinygen train vae-mlp`` (MLPVAE) and ``tinygen train vae-hier`` (HierConvVAE, two
stochastic layers).

Data.  ``likelihood: "bernoulli"`` (the default) models dynamically binarised
Fashion-MNIST: every training batch is re-binarised (each pixel 1 with probability
value/255) with the runner's generator, so a resumed run draws the very same bits.
``likelihood: "discretized-logistic"`` models the 8-bit images themselves (scaled to
[-1, 1]) with a per-pixel discretised logistic (PixelCNN++'s likelihood).

Training minimises the negative ELBO (nats per image; one reparameterised sample per
image, closed-form KL, or its one-sample estimate under ``prior: "vamp"``) with Adam.
Options for longer runs: ``kl_warmup_steps`` (the KL weight rises linearly from 0 to 1,
as in Sønderby et al. 2016 and the VampPrior paper's 100-epoch warm-up) and
``lr_schedule: "cosine"`` or ``"linear"`` (from ``lr`` to ``lr_min`` over
``lr_decay_steps``, ``tinygen.optim.schedules``).  Both
are functions of the optimizer-step count, which checkpoints hold, so ``--resume``
continues them.  The reported ``loss`` is the plain -ELBO even during warm-up.

``free_bits`` > 0 (nats) trains on the ELBO with each stochastic layer's batch-mean KL
counted as at least that much (free bits, Kingma et al. 2016), so no layer is pushed all
the way onto its prior (``vae-hier``'s z1 collapses without it); the reported ``loss``
stays the true -ELBO.

``train_k`` > 1 trains on the importance-weighted bound instead (IWAE, Burda et al.
2016): k draws of z per image, the objective -log (1/k) sum_i w_i with
log w_i = log p(x|z_i) + beta (log p(z_i) - log q(z_i|x)), beta the warm-up weight
(1 after it: the IWAE_k bound itself).  The encoder runs once per image, the decoder
k times, so a step costs about k decoder passes.  The reported ``loss`` is then
-IWAE_k (at beta = 1), ``recon`` and ``kl`` the k draws' means of -log p(x|z) and
log q(z|x) - log p(z).

``decoder: "pixelcnn"`` makes p(x|z) autoregressive over the pixels (PixelVAE, Gulrajani
et al. 2017; with ``vae-hier`` and ``prior: "vamp"`` the PixelHVAE + VampPrior of
Tomczak & Welling 2018): a masked-conv network reads the pixels before each one
(``pixel_channels`` wide, ``pixel_layers`` 3x3 layers after a 7x7 one) and meets z's
features (``pixel_features`` channels from the decoder) at every pixel
(``pixel_decoder.py``).  Its likelihood is still one pass over the observed image, so
every bound and the evaluation are unchanged; sample grids are drawn pixel by pixel.

Evaluation (``evaluate``) reports, on the test images it is given -- the first
``test_limit`` of the split (the runner's option; 1000 by default here, for per-epoch
speed; ``tinygen eval --test-limit all`` for all 10000) -- the ELBO and the
importance-weighted bound with ``iwae_k`` samples (the test log-likelihood estimate,
nats per image; bits per pixel too for 8-bit data).  The test images are binarised
once, stochastically (pixel = 1 with probability value/255, the same rule as the
training data's dynamic binarisation), with ``numpy.random.default_rng(test_binarize_seed)``
(seed 0 by default) in file order, so image i gets the same bits in every epoch, for
every k and every subset size; this is the protocol of the dynamically binarised
references (a single fixed stochastic binarisation of the test set, not a 0.5
threshold).  The encoder noise comes from the generator the runner passes in.
Cost: IS-5000 decodes 5000 x 10000 images; ``iwae_chunk`` of them per call (samples
of one image, or several images' samples together when k < iwae_chunk).

Samples: ``sample_mode: "mean"`` (the default) shows the decoder's mean -- the
Bernoulli probabilities as grey levels, which look much better than binary draws;
``"sample"`` shows draws of p(x|z).
"""
import math
import time

import numpy as np

from ... import optim, progress
from ...optim.schedules import check_schedule, scheduled_lr, set_lr
from ...backend import to_numpy
from ...data import load_dataset
from ...ops.reduce import logsumexp
from ..experiment import Experiment, register
from .hierarchical import HierConvVAE
from .model import log_mean_exp
from .networks import ConvVAE, MLPVAE

COMMON_DEFAULTS = {
    "batch_size": 128,
    "lr": 1e-3,
    "latent_dim": 32,
    "likelihood": "bernoulli",        # or "discretized-logistic" (8-bit data)
    "iwae_k": 100,                    # samples of the importance-weighted bound per image
    "test_limit": 1000,               # test images evaluated (None: all 10000)
    "eval_batch": 100,                # test images per IWAE call
    # decoder passes per forward call.  512, not more: at 4096 the transposed convs'
    # column buffers are ~400 MB, page-faulted afresh on every call -- IS-5000 took
    # 1.8 CPU-s per image (half of it system time) against 0.9 s at 512, one thread
    "iwae_chunk": 512,
    "test_binarize_seed": 0,          # the fixed binarisation of the test set
    "sample_mode": "mean",            # "mean" (grey-level probabilities) or "sample"
    "prior": "standard",              # or "vamp" (VampPrior)
    "pseudo_inputs": 500,             # the VampPrior's pseudo-inputs
    "kl_warmup_steps": 0,             # KL weight rises linearly 0 -> 1 over these steps
    "train_k": 1,                     # samples per image of the training bound (1: ELBO)
    "free_bits": 0.0,                 # nats: each latent layer's KL floor (ELBO training)
    "lr_schedule": "constant",        # or "cosine", "linear": lr -> lr_min over lr_decay_steps
    "lr_decay_steps": 0,
    "lr_min": 1e-5,
    "decoder": "factorized",          # or "pixelcnn": p(x|z) autoregressive over pixels
    "pixel_channels": 32,             # the pixelcnn decoder's context network: width,
    "pixel_layers": 2,                # its masked 3x3 layers after the 7x7 one,
    "pixel_features": 8,              # and the width where it meets z's features
}

ARCHITECTURES = {
    "conv": (ConvVAE, {"channels": [32, 64], "hidden": 256, "batchnorm": False}),
    "mlp": (MLPVAE, {"hidden": [512, 256]}),
    "hier": (HierConvVAE, {"channels": [32, 64], "hidden": 256, "latent1_dim": 32}),
}


class VAEExperiment(Experiment):
    architecture = "conv"
    kinds = ("samples", "reconstructions", "interpolations")  # what visualize draws

    @classmethod
    def default_config(cls):
        return {**COMMON_DEFAULTS, **ARCHITECTURES[cls.architecture][1]}

    def __init__(self, config):
        super().__init__(config)
        config = self.config
        if config["sample_mode"] not in ("mean", "sample"):
            raise ValueError(f"sample_mode must be 'mean' or 'sample', got "
                             f"{config['sample_mode']!r}")
        cls, _ = ARCHITECTURES[self.architecture]
        options = {name: config[name] for name in ARCHITECTURES[self.architecture][1]}
        check_schedule(config["lr_schedule"], config["lr_decay_steps"],
                       "an epoch of 60000 images at batch 128 is 469")
        if int(config["kl_warmup_steps"]) < 0:
            raise ValueError(f"kl_warmup_steps must be >= 0, got {config['kl_warmup_steps']}")
        if not float(config["free_bits"]) >= 0:
            raise ValueError(f"free_bits must be >= 0 nats, got {config['free_bits']}")
        if float(config["free_bits"]) > 0 and int(config["train_k"]) > 1:
            raise ValueError("free_bits floors the ELBO's KL terms; the importance-weighted "
                             f"bound (train_k={config['train_k']}) has none: use one of them")
        self.model = cls(latent_dim=int(config["latent_dim"]), likelihood=config["likelihood"],
                         prior=config["prior"], pseudo_inputs=int(config["pseudo_inputs"]),
                         decoder=config["decoder"], pixel_channels=config["pixel_channels"],
                         pixel_layers=config["pixel_layers"],
                         pixel_features=config["pixel_features"], **options)
        self.model.reset_parameters(np.random.default_rng([int(config["seed"]), 1]))
        if config["device"] != "cpu":
            self.model.to(device=config["device"])
        self.optimizer = optim.Adam(self.model.parameters(), lr=float(config["lr"]))
        self.steps = 0          # optimizer steps taken: drives KL warm-up and lr schedule

    # --- data --------------------------------------------------------------------------------
    def load_data(self):
        c = self.config
        return load_dataset(c.get("dataset") or "fashion-mnist", root=c.get("data"),
                            limit=c.get("limit"), test_limit=c.get("test_limit"))

    def test_inputs(self, test_arrays, n=None):
        """The first ``n`` test images in the model's input format, binarised (for the
        Bernoulli) with the fixed ``test_binarize_seed``, in file order: a prefix of the
        test set gets the bits the whole set would."""
        images = np.asarray(test_arrays[0])
        rng = np.random.default_rng(int(self.config["test_binarize_seed"]))
        x = self.model.prepare(images, rng)
        return x if n is None else x[:n]

    # --- checkpointed state ------------------------------------------------------------------
    def modules(self):
        return {"vae": self.model}

    def optimizers(self):
        return {"adam": self.optimizer}

    def extra_state(self):
        return {"steps": int(self.steps)}

    def load_extra_state(self, state):
        self.steps = int(np.asarray(state.get("steps", 0)))

    # --- schedules (functions of the step count, so a resumed run continues them) ----------
    def kl_weight(self, step=None):
        """The KL term's weight: step / kl_warmup_steps, at most 1 (1 without warm-up)."""
        step = self.steps if step is None else step
        warmup = int(self.config["kl_warmup_steps"])
        return 1.0 if warmup <= 0 else min(1.0, step / warmup)

    def learning_rate(self, step=None):
        """The schedule's rate at ``step`` (default: the current one; ``optim.schedules``)."""
        c = self.config
        return scheduled_lr(c["lr_schedule"], c["lr"], c["lr_min"], c["lr_decay_steps"],
                            self.steps if step is None else step)

    # --- training ----------------------------------------------------------------------------
    def train_step(self, batch, generator):
        self.model.train()
        x = self.model.prepare(batch[0], generator)          # dynamic binarisation
        k = int(self.config["train_k"])
        if k > 1:
            return self._iwae_step(x, generator, k)
        free = float(self.config["free_bits"])
        if free > 0:
            log_px, *layers = self.model.elbo_parts(x, generator)
            kl = sum(layers[1:], layers[0])
            # free bits (Kingma et al. 2016): each layer's batch-mean KL counts as at least
            # `free` nats, max(free, m) = free + relu(m - free), so a layer under the floor
            # gets no gradient pulling it further onto its prior (vae-hier's z1 collapsed
            # without it)
            penalty = sum(((kl_j.mean() - free).relu() + free for kl_j in layers), 0.0)
            objective = penalty * self.kl_weight() - log_px.mean()
        else:
            log_px, kl = self.model.elbo_terms(x, generator)
            objective = (kl * self.kl_weight() - log_px).mean()   # -ELBO when the weight is 1
        self._descend(objective)
        recon, kl = float(-log_px.data.mean()), float(kl.data.mean())
        # the loss reported is the true -ELBO, whatever the warm-up weight
        return {"loss": recon + kl, "recon": recon, "kl": kl}

    def _iwae_step(self, x, generator, k):
        """One step on -IWAE_k, the warm-up weight on the prior-over-posterior ratio."""
        log_px, log_ratio = self.model.log_weight_terms(x, k, generator)     # (k, N) each
        bound = logsumexp(log_px + log_ratio * self.kl_weight(), axis=0) - math.log(k)
        self._descend(-bound.mean())
        log_px, log_ratio = (to_numpy(t.data).astype(np.float64) for t in (log_px, log_ratio))
        iwae = log_mean_exp(log_px + log_ratio)                            # at weight 1
        return {"loss": float(-iwae.mean()), "recon": float(-log_px.mean()),
                "kl": float(-log_ratio.mean())}

    def _descend(self, objective):
        set_lr(self.optimizer, self.learning_rate())
        self.optimizer.zero_grad()
        objective.backward()
        self.optimizer.step()
        self.steps += 1

    # --- results -----------------------------------------------------------------------------
    def _mean(self):
        return self.config["sample_mode"] == "mean"

    def sample(self, n, generator):
        return self.model.sample(n, generator, mean=self._mean())

    def evaluate(self, test_arrays, generator):
        start = time.perf_counter()
        n = self.config.get("test_limit")
        n = len(test_arrays[0]) if n is None else min(int(n), len(test_arrays[0]))
        k = int(self.config["iwae_k"])
        batch = max(1, int(self.config["eval_batch"]))
        x = self.test_inputs(test_arrays, n)
        # per image: the ELBO, the bound, and each stochastic layer's KL (reported when
        # there are several -- the hierarchical model: shows whether each layer is used)
        results = {"elbo": np.empty(n), "iwae": np.empty(n), "layer_kls": None}
        # a long evaluation (tinygen eval) saves its finished batches and resumes from them
        saved = self.eval_progress
        resumed_at, done = saved.load(generator) if saved is not None else (0, None)
        for name, value in (done or {}).items():
            if results[name] is None:
                results[name] = np.empty(value.shape[:-1] + (n,))
            results[name][..., :resumed_at] = value
        for lo in progress.steps(range(resumed_at, n, batch), f"IWAE k={k}", unit="batch"):
            xb = x[lo:lo + batch]
            with self.model._evaluating():
                log_px, *kls = (t.numpy() for t in self.model.elbo_parts(xb, generator))
            bound = log_px
            for kl in kls:
                bound = bound - kl
            results["elbo"][lo:lo + len(xb)] = bound
            if results["layer_kls"] is None:
                results["layer_kls"] = np.empty((len(kls), n))
            results["layer_kls"][:, lo:lo + len(xb)] = kls
            results["iwae"][lo:lo + len(xb)] = self.model.iwae_bound(
                xb, k, generator, chunk=int(self.config["iwae_chunk"]))
            if saved is not None and lo + len(xb) < n:
                saved.save(lo + len(xb), results, generator)
        if saved is not None:
            saved.finish()
        elbo, iwae, layer_kls = results["elbo"], results["iwae"], results["layer_kls"]
        result = {"test_elbo_nats": float(elbo.mean()), "test_iwae_nats": float(iwae.mean()),
                  "test_iwae_stderr": float(iwae.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
                  "iwae_k": k, "eval_images": n}
        if resumed_at:
            result["eval_resumed_at"] = resumed_at      # images a stopped evaluation had done
        if layer_kls is not None and len(layer_kls) > 1:
            for i, kl in enumerate(layer_kls, 1):
                result[f"test_kl_z{i}_nats"] = float(kl.mean())
        if self.config["likelihood"] == "bernoulli":
            result["test_binarize_seed"] = int(self.config["test_binarize_seed"])
        else:  # bits per sub-pixel, the usual unit for 8-bit likelihoods
            pixels = int(np.prod(x.shape[1:]))
            result["test_iwae_bpd"] = float(-iwae.mean() / (pixels * math.log(2)))
        result["eval_seconds"] = time.perf_counter() - start
        return result

    def visualize(self, kind, n, generator, test_arrays):
        """uint8 images (n', 28, 28) for a grid, n' <= n:

        samples          n images from the prior
        reconstructions  test image, its reconstruction, next test image, ... (pairs)
        interpolations   rows of round(sqrt(n)) images, each row a path in latent space
                         from one test image's posterior mean to the next one's
        """
        mean = self._mean()
        if kind == "samples":
            return self.model.sample(n, generator, mean=mean)
        m = max(1, n // 2)
        x = self.test_inputs(test_arrays, None)
        if kind == "reconstructions":
            originals = self._shown(x[:m])
            rec = self.model.reconstruct(x[:m], mean=mean, generator=generator)
            return np.stack([originals, rec], axis=1).reshape(-1, *rec.shape[1:])
        if kind == "interpolations":
            steps = max(2, int(round(math.sqrt(n))))
            rows = max(1, n // steps)
            images = self.model.interpolate(x[0:2 * rows:2], x[1:2 * rows:2], steps,
                                            mean=mean, generator=generator)
            return images.reshape(-1, *images.shape[2:])
        raise ValueError(f"unknown visualisation {kind!r}; choose samples, reconstructions "
                         "or interpolations")

    def _shown(self, x):
        """Model inputs as uint8 images (N, 28, 28)."""
        x = np.asarray(x, dtype=np.float64)[:, 0]
        if self.config["likelihood"] != "bernoulli":
            x = (x + 1.0) / 2.0
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


@register("vae")
class ConvVAEExperiment(VAEExperiment):
    """``tinygen train vae``: the convolutional VAE (see the module doc)."""

    architecture = "conv"


@register("vae-hier")
class HierConvVAEExperiment(VAEExperiment):
    """``tinygen train vae-hier``: the two-latent-layer conv VAE (``hierarchical.py``);
    ``latent_dim`` is the top layer z2's (under the prior), ``latent1_dim`` z1's."""

    architecture = "hier"


@register("vae-mlp")
class MLPVAEExperiment(VAEExperiment):
    """``tinygen train vae-mlp``: the MLP VAE (see the module doc)."""

    architecture = "mlp"
