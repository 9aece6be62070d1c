"""What each ``-o KEY=VALUE`` model option means and which values it takes.

    describe_options(cls)            # lines for ``tinygen train MODEL --help``
    check_options(cls, config)       # ConfigError naming the option, or the config with
                                     # numbers normalised (an int where a float is meant)

A model's options are the keys of its ``default_config()``; their type is the type of the
default (an int option refuses 3.5, a list of ints refuses [0]), refined by ``SPECS``
below: a one-line meaning, a lower bound, an upper bound where a larger value only
exhausts memory, and the choices of a string option. Every option of every registered
model has an entry (a test checks), so ``--help`` never shows an undocumented one.
"""
from dataclasses import dataclass

import numpy as np

from ..optim.schedules import SCHEDULES


class ConfigError(ValueError):
    """A bad option: unknown key, wrong type, a change --resume cannot honour."""


@dataclass(frozen=True)
class Spec:
    meaning: str
    low: float = None          # smallest allowed value (of each element, for lists)
    high: float = None         # largest: beyond it the model would not fit in memory
    choices: tuple = None      # the allowed strings
    kind: str = None           # the type when the default is None: int, float, str
    above: bool = False        # low itself is excluded (a learning rate must be > 0)


# Upper bounds on sizes: far above anything sensible, far below a MemoryError.
_WIDTH, _COUNT = 1 << 16, 1 << 24

SPECS = {
    # the runner's (set with their own flags: --epochs, --batch-size, ...)
    "epochs": Spec("epochs in total", 1),
    "batch_size": Spec("examples per optimisation step", 1, _COUNT),
    "lr": Spec("learning rate", 0, above=True),
    "seed": Spec("seeds weight init, batch order and sampling", 0),
    "limit": Spec("train on the first N images only", 1, kind="int"),
    "test_limit": Spec("evaluate on the first N test images only (null: all)", 1, kind="int"),
    "n_samples": Spec("images per sample grid", 1, _COUNT),
    # shared by several models
    "latent_dim": Spec("dimension of the latent code z", 1, _WIDTH),
    "hidden": Spec("hidden units / feature maps (a list: one per layer)", 1, _WIDTH),
    "eval_batch": Spec("test images per evaluation forward pass", 1, _COUNT),
    "n_layers": Spec("number of layers", 1, 1024),
    # VAE
    "likelihood": Spec("decoder likelihood", choices=("bernoulli", "discretized-logistic")),
    "iwae_k": Spec("importance samples per image for the IWAE bound in evaluate", 1, _COUNT),
    "iwae_chunk": Spec("decoder passes per forward call in the IWAE bound (bounds memory)",
                       1, _COUNT),
    "test_binarize_seed": Spec("seed of the fixed binarisation of the test images", 0),
    "sample_mode": Spec("sample grids show decoder means or binary samples",
                        choices=("mean", "sample")),
    "channels": Spec("conv channels of the encoder per stage", 1, _WIDTH),
    "latent1_dim": Spec("dimension of the lower latent z1 of vae-hier (latent_dim is the "
                        "top z2's, under the prior)", 1, _WIDTH),
    "batchnorm": Spec("batch norm in the conv encoder/decoder"),
    "prior": Spec("prior p(z): standard normal or VampPrior (a mixture of the encoder's "
                  "posteriors at learned pseudo-inputs)", choices=("standard", "vamp")),
    "pseudo_inputs": Spec("pseudo-inputs of the VampPrior (prior vamp)", 1, _COUNT),
    "train_k": Spec("samples of z per image in the training bound: 1 the ELBO, k > 1 the "
                    "importance-weighted bound IWAE_k (k decoder passes per image)", 1, 4096),
    "kl_warmup_steps": Spec("KL weight rises linearly from 0 to 1 over these steps (0: none)",
                            0),
    "free_bits": Spec("nats: each latent layer's batch-mean KL counts as at least this in the "
                      "ELBO objective (free bits; train_k 1 only; 0: none)", 0),
    "lr_schedule": Spec("learning-rate schedule by optimizer step: constant, or cosine or "
                        "linear from lr to lr_min over lr_decay_steps (GANs: over G updates, "
                        "for G and D)", choices=SCHEDULES),
    "lr_decay_steps": Spec("steps of the cosine or linear schedule", 0),
    "lr_min": Spec("learning rate at the end of the cosine or linear schedule", 0),
    "decoder": Spec("p(x|z): factorized over pixels, or pixelcnn (each pixel also given the "
                    "pixels before it, through masked convs)", choices=("factorized", "pixelcnn")),
    "pixel_channels": Spec("width of the pixelcnn decoder's masked convs (decoder pixelcnn)",
                           1, _WIDTH),
    "pixel_layers": Spec("masked 3x3 layers after the pixelcnn decoder's 7x7 one", 0, 1024),
    "pixel_features": Spec("channels where the pixelcnn decoder's context meets z's features",
                           1, _WIDTH),
    # GANs
    "g_channels": Spec("generator width C: latent -> (2C,7,7) -> (C,14,14) -> image",
                       1, _WIDTH),
    "d_channels": Spec("discriminator width C: image -> (C,14,14) -> (2C,7,7) -> 1",
                       1, _WIDTH),
    "loss": Spec("GAN loss: non-saturating, minimax, hinge, least-squares, wasserstein, "
                 "wgan-gp"),
    "n_critic": Spec("discriminator steps per generator step", 1, 1000),
    "optimizer": Spec("optimizer of both networks", choices=("adam", "rmsprop")),
    "g_lr": Spec("generator learning rate (null: lr)", 0, kind="float", above=True),
    "d_lr": Spec("discriminator learning rate (null: lr)", 0, kind="float", above=True),
    "beta1": Spec("Adam beta1 (momentum of the gradient mean)", 0, 0.999999),
    "beta2": Spec("Adam beta2 (of the squared-gradient mean)", 0, 0.999999),
    "gp_weight": Spec("gradient-penalty weight lambda (loss wgan-gp)", 0),
    "clip_value": Spec("critic weight clipping c (loss wasserstein)", 0),
    "spectral_norm": Spec("spectral normalisation of the discriminator's layers"),
    "d_batchnorm": Spec("batch norm in the discriminator"),
    "init": Spec("weight init: dcgan (N(0, 0.02)) or PyTorch's default",
                 choices=("dcgan", "default")),
    "fd_samples": Spec("generated images for FD-FMNIST in evaluate (0: no FD)", 0, _COUNT),
    "fd_floor": Spec("also report the real-train vs real-test FD (the floor)"),
    "n_fixed_samples": Spec("fixed latents behind the sample grids", 1, _COUNT),
    "g_ema": Spec("decay of an average of G's weights that samples and FD use (0: none)",
                  0, 0.999999),
    # classifier
    "width": Spec("channels of the first conv (the second has twice as many)", 1, _WIDTH),
    # PixelCNN
    "output": Spec("output head: a 256-way softmax or a discretized logistic mixture",
                   choices=("softmax", "dlm")),
    "mixtures": Spec("components of the discretized logistic mixture (output dlm)", 1, 1024),
    "n_residual": Spec("residual blocks", 1, 1024),
    "conditional": Spec("condition on the class label"),
    # WaveNet
    "audio": Spec("'melody' (synthetic) or a folder of 16-bit WAV files"),
    "test_audio": Spec("a folder of 16-bit WAV files to evaluate on (null: the held-out "
                       "part of audio)", kind="str"),
    "seconds": Spec("length of the synthetic melody, seconds", 0, 1e5, above=True),
    "sample_rate": Spec("samples per second", 1, 10 ** 6),
    "melody_seed": Spec("seed of the synthetic melody", 0),
    "window": Spec("samples per training/test window", 1, _COUNT),
    "train_windows": Spec("training windows drawn per epoch", 1, _COUNT),
    "dilation_cycle": Spec("dilations of one cycle of layers", 1, 1 << 20),
    "residual_channels": Spec("channels of the residual stack", 1, _WIDTH),
    "skip_channels": Spec("channels of the skip connections", 1, _WIDTH),
    "quantization": Spec("mu-law levels (classes of the output softmax)", 2, _WIDTH),
    "kernel_size": Spec("taps of each dilated causal convolution", 1, 64),
    "local": Spec("local conditioning: null (none) or 'mel'", choices=(None, "mel")),
    "n_mels": Spec("log-mel bands (local mel)", 1, 1024),
    "mel_window": Spec("FFT window of the mel features, samples", 1, _COUNT),
    "mel_hop": Spec("samples per mel frame", 1, _COUNT),
}

# Options whose value may be null whatever the default (the runner's Nones).
_NULLABLE = {"limit", "test_limit", "g_lr", "d_lr", "local", "test_audio"}
# The runner's options that have their own flag (named so in messages).
FLAGS = ("epochs", "batch_size", "lr", "seed", "limit", "test_limit", "n_samples")


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _kind(default, spec):
    if spec is not None and spec.kind:
        return spec.kind
    if isinstance(default, bool):
        return "bool"
    if _is_int(default):
        return "int"
    if _is_number(default):
        return "float"
    if isinstance(default, (list, tuple)):
        return "int list" if all(_is_int(x) for x in default) else "list"
    if isinstance(default, str) or (spec is not None and spec.choices):
        return "str"
    return "any"


def check_value(key, value, default):
    """``value`` for option ``key`` (default ``default``) checked and normalised; raises
    ConfigError naming the option and what it takes."""
    spec = SPECS.get(key)
    kind = _kind(default, spec)
    if value is None and (default is None or key in _NULLABLE):
        return None

    def bad(what):
        return ConfigError(f"{argument(key, value)}: {key} must be {what}")

    if kind in ("int", "int list"):
        what = _describe(spec, "integer")
        if kind == "int list":
            if not isinstance(value, (list, tuple)) or not value or \
                    not all(_is_int(x) for x in value):
                raise bad(f"a non-empty list of integers, e.g. [32, 64], each {what}")
            return [_bounded(int(x), spec, bad, what) for x in value]
        if not _is_int(value):
            raise bad(what)
        return _bounded(int(value), spec, bad, what)
    if kind == "float":
        what = _describe(spec, "number")
        if not _is_number(value) or not np.isfinite(value):
            raise bad(what)
        return _bounded(float(value), spec, bad, what)
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "int list":
        if not isinstance(value, (list, tuple)) or not value or \
                not all(_is_int(x) for x in value):
            raise bad("a non-empty list of integers, e.g. [32, 64]")
        return [_bounded(key, int(x), spec, bad) for x in value]
    if kind == "str":
        if spec is not None and spec.choices:
            if value not in spec.choices:
                raise bad("one of " + ", ".join("null" if c is None else c
                                                 for c in spec.choices))
        elif not isinstance(value, str):
            raise bad("a string")
    return value


def _describe(spec, noun):
    article = "an" if noun[0] in "aeiou" else "a"
    if spec is None or spec.low is None:
        return f"{article} {noun}"
    if spec.low == 0:
        return f"a positive {noun}" if spec.above else f"a non-negative {noun}"
    if spec.low == 1 and not spec.above and noun == "integer":
        return "a positive integer"
    return f"{article} {noun} {'>' if spec.above else '>='} {_show(spec.low)}"


def _bounded(value, spec, bad, what):
    if spec is None:
        return value
    if spec.low is not None and (value < spec.low or (spec.above and value == spec.low)):
        raise bad(what)
    if spec.high is not None and value > spec.high:
        raise bad(f"<= {_show(spec.high)}" + (" (a larger model would not fit in memory)"
                                              if spec.high >= 1024 else ""))
    return value


def argument(key, value):
    """How the user wrote the option: ``--epochs 0`` or ``-o latent_dim=3.5``."""
    if key in FLAGS:
        return f"--{key.replace('_', '-')} {_show(value)}"
    return f"-o {key}={_show(value)}"


def _show(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def check_options(defaults, config, keys=None):
    """``config`` with every option in ``keys`` (default: all of ``defaults``) checked
    against its default's type and its spec."""
    out = dict(config)
    for key in keys if keys is not None else defaults:
        if key in out:
            out[key] = check_value(key, out[key], defaults.get(key))
    return out


def describe_options(defaults, skip=()):
    """One line per option: ``name  type  default  meaning``."""
    rows = []
    for key in sorted(defaults):
        if key in skip:
            continue
        spec = SPECS.get(key)
        kind = _kind(defaults[key], spec)
        if spec is not None and spec.choices:
            kind = "|".join("null" if c is None else c for c in spec.choices)
        kind = {"int list": "[int]"}.get(kind, kind)
        default = _show(defaults[key]) if not isinstance(defaults[key], list) else \
            "[" + ",".join(map(str, defaults[key])) + "]"
        meaning = spec.meaning if spec is not None else ""
        rows.append((key, kind, default, meaning))
    w0 = max((len(r[0]) for r in rows), default=0)
    w1 = max((len(r[1]) for r in rows), default=0)
    w2 = max((len(r[2]) for r in rows), default=0)
    return [f"{k:<{w0}}  {t:<{w1}}  {d:<{w2}}  {m}".rstrip() for k, t, d, m in rows]
