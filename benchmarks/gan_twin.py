"""DCGAN / SN-GAN / WGAN-GP trained in tinygen and in a PyTorch twin, scored alike.

    python -m benchmarks.gan_twin --out runs/gan_twin                      # the full study
    python -m benchmarks.gan_twin --out runs/gan_twin_smoke --g-updates 20 --seeds 0 \\
        --fd-samples 500 --classifier-limit 2000 --threads 1                # a smoke run

For every model and seed, both engines start from the SAME weights (tinygen draws
them from the seed with the experiment's own initialisation -- DCGAN's N(0, 0.02) or
PyTorch's default, spectral norm's u and v included -- and the twin loads them), use
the same optimiser settings, see the real images in the same order (a permutation per
epoch from ``default_rng([seed, 3, epoch])``, batches of ``batch_size``, the last
partial batch dropped) and draw their noise (latents, the penalty's interpolation
weights) in the same order from identically seeded generators.  tinygen trains with
``GANExperiment.train_step`` itself (one D step per batch, a G step when
``d_steps % n_critic == 0``); the twin (``TorchTwin``) does the same in torch.  Both
stop after ``--g-updates`` generator updates (default 937 * 5: five epochs of a
one-D-step-per-G-step GAN at batch 64; WGAN-GP's critic then sees 5x the data).

Scoring: each generator (evaluation mode: BatchNorm running statistics) draws
``--fd-samples`` images (default 10,000) from the same latents, scored by tinygen's
FD-FMNIST against the real test set; the floor is the FD of as many real TRAINING
images against the test set.  Results go to ``OUT/gan_twin.json`` after every run, and
a rerun skips the (model, seed, engine) entries already there, so a long study can be
stopped and continued.  The torch networks are ``cpu_suite.torch_twins.gan_networks``
(same layer names as tinygen's state_dict).  Needs ``pip install torch`` (CPU).
"""
import argparse
import json
import os
import time
from pathlib import Path

MODELS = ("dcgan", "sngan", "wgan-gp")


def _parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--engines", nargs="+", default=["tinygen", "torch"],
                   choices=["tinygen", "torch"])
    p.add_argument("--g-updates", type=int, default=937 * 5)
    p.add_argument("--fd-samples", type=int, default=10000)
    p.add_argument("--fd-every", type=int, default=None, metavar="N",
                   help="also score FD every N generator updates (an FD-vs-budget curve "
                        "in the run's 'fd_curve'; the final score is always taken)")
    p.add_argument("--g-ema", type=float, default=0.0, metavar="DECAY",
                   help="average the generator's weights (tinygen's -o g_ema; the twin the "
                        "same) and score the average; the last iterate is scored beside it")
    p.add_argument("--out", default="runs/gan_twin")
    p.add_argument("--limit", type=int, default=None, help="first N training images only")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--classifier", default=None, metavar="PATH",
                   help="FD classifier (default: the shared one, trained once if missing)")
    p.add_argument("--classifier-limit", type=int, default=None, metavar="N",
                   help="smoke runs: train a throw-away classifier on N images into OUT")
    p.add_argument("-o", "--option", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE",
                   help="an experiment option for every run, as in `tinygen train -o` "
                        "(e.g. -o g_channels=64 -o d_channels=64 -o d_lr=4e-4); the twin "
                        "reads the same config.  Use a separate --out per set of options")
    return p


def _key_value(text):
    """``KEY=VALUE`` with VALUE parsed as JSON when it is JSON: `tinygen train -o`'s rule
    (``tinygen.cli.train._key_value``), written out here because this parser runs
    before numpy and tinygen are imported (``pin_threads`` sets the thread counts
    first)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip().replace("-", "_"), json.loads(value)
    except ValueError:
        return key.strip().replace("-", "_"), value


from benchmarks._timing import pin_threads  # noqa: E402  (standard library only)

pin_threads(_parser(), __name__ == "__main__")

import numpy as np  # noqa: E402


# --- the twin ----------------------------------------------------------------------------
class TorchTwin:
    """A GANExperiment's training in torch: same weights, optimisers, losses, cadence."""

    def __init__(self, torch, exp):
        from benchmarks.cpu_suite.torch_twins import gan_networks

        c = exp.config
        if c["g_channels"] != c["d_channels"]:
            raise SystemExit("the twin's networks take one channel count (g = d)")
        self.torch, self.F, self.config = torch, torch.nn.functional, c
        # (spectral norm as torch's own utility below, not the twin's: this study trains)
        self.G, self.D = gan_networks(c["latent_dim"], c["g_channels"], c["d_batchnorm"],
                                      spectral=False)
        if c["spectral_norm"]:
            for name in ("conv1", "conv2", "fc"):
                setattr(self.D, name, torch.nn.utils.spectral_norm(getattr(self.D, name)))
        for ours, theirs in ((exp.generator, self.G), (exp.discriminator, self.D)):
            theirs.load_state_dict({k: torch.from_numpy(np.array(v.numpy()))
                                    for k, v in ours.state_dict().items()})
        if c["optimizer"] != "adam" or c["loss"] not in ("non-saturating", "hinge", "wgan-gp"):
            raise SystemExit(f"the twin knows Adam with non-saturating/hinge/wgan-gp losses, "
                             f"not {c['optimizer']}/{c['loss']}")
        betas = (c["beta1"], c["beta2"])
        lr_g = c["lr"] if c["g_lr"] is None else c["g_lr"]
        lr_d = c["lr"] if c["d_lr"] is None else c["d_lr"]
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr_d, betas=betas)
        self.d_steps = self.g_steps = 0
        self.G_ema = None
        if float(c["g_ema"]) > 0:
            import copy

            self.G_ema = copy.deepcopy(self.G).requires_grad_(False)

    def update_ema(self):
        """nn.utils.ema's rule, written out again in torch: every float entry of the
        state dict averaged with min(decay, (1 + step) / (10 + step)), ints copied."""
        d = min(float(self.config["g_ema"]), (1.0 + self.g_steps) / (10.0 + self.g_steps))
        src = self.G.state_dict()
        with self.torch.no_grad():
            for key, a in self.G_ema.state_dict().items():
                if a.dtype.is_floating_point:
                    a.mul_(d).add_(src[key], alpha=1.0 - d)
                else:
                    a.copy_(src[key])

    def noise(self, n, rng):
        return self.torch.from_numpy(
            rng.standard_normal((n, self.config["latent_dim"])).astype(np.float32))

    def d_loss(self, real_s, fake_s):
        F, loss = self.F, self.config["loss"]
        if loss == "non-saturating":
            return F.softplus(-real_s).mean() + F.softplus(fake_s).mean()
        if loss == "hinge":
            return F.relu(1.0 - real_s).mean() + F.relu(1.0 + fake_s).mean()
        return fake_s.mean() - real_s.mean()

    def g_loss(self, fake_s):
        return self.F.softplus(-fake_s).mean() if self.config["loss"] == "non-saturating" \
            else -fake_s.mean()

    def train_step(self, images, rng):
        torch = self.torch
        real = torch.from_numpy(images.astype(np.float32).reshape(-1, 1, 28, 28)
                                * np.float32(2.0 / 255.0) - np.float32(1.0))
        update_g = self.d_steps % int(self.config["n_critic"]) == 0
        self.G.train(), self.D.train()
        with torch.no_grad():
            fake = self.G(self.noise(real.shape[0], rng))
        loss = self.d_loss(self.D(real), self.D(fake))
        if self.config["loss"] == "wgan-gp":
            eps = torch.from_numpy(rng.random((real.shape[0], 1, 1, 1)).astype(np.float32))
            x_hat = (eps * real + (1.0 - eps) * fake).detach().requires_grad_()
            (g,) = torch.autograd.grad(self.D(x_hat).sum(), x_hat, create_graph=True)
            norms = ((g * g).flatten(1).sum(1) + 1e-12).sqrt()
            loss = loss + float(self.config["gp_weight"]) * ((norms - 1.0) ** 2).mean()
        self.opt_d.zero_grad()
        loss.backward()
        self.opt_d.step()
        self.d_steps += 1
        if update_g:
            self.D.requires_grad_(False)
            g_loss = self.g_loss(self.D(self.G(self.noise(real.shape[0], rng))))
            self.opt_g.zero_grad()
            g_loss.backward()
            self.opt_g.step()
            self.D.requires_grad_(True)
            if self.G_ema is not None:
                self.update_ema()
            self.g_steps += 1

    def generate(self, z, ema=None):
        torch = self.torch
        if ema is None:
            ema = self.G_ema is not None
        G = self.G_ema if ema and self.G_ema is not None else self.G
        G.eval()
        with torch.no_grad():
            out = [G(torch.from_numpy(z[lo:lo + 500])).numpy()
                   for lo in range(0, len(z), 500)]
        return np.concatenate(out)


# --- one run ------------------------------------------------------------------------------
def batches(images, batch_size, seed):
    """Batches of real images forever, in the order both engines see them."""
    epoch = 0
    while True:
        order = np.random.default_rng([seed, 3, epoch]).permutation(len(images))
        for lo in range(0, len(order) - batch_size + 1, batch_size):
            yield images[order[lo:lo + batch_size]]
        epoch += 1


def run_one(name, seed, engine, images, args, classifier):
    import torch

    from tinygen.metrics import fd_fmnist
    from tinygen.models import get_experiment
    from tinygen.models.experiment import to_uint8_images

    exp = get_experiment(name)({**dict(args.option), "seed": seed, "fd_samples": 0,
                                "g_ema": args.g_ema})
    twin = TorchTwin(torch, exp) if engine == "torch" else None
    stepper = twin if twin is not None else exp
    rng = np.random.default_rng([seed, 4])              # all training noise
    z = np.random.default_rng([seed, 99]).standard_normal(
        (args.fd_samples, int(exp.config["latent_dim"]))).astype(np.float32)

    def score(ema=None):
        # the same latents at every budget, so the curve moves only with the weights
        fake = (exp if twin is None else twin).generate(z, ema=ema)
        return float(fd_fmnist(to_uint8_images(fake[:, 0], low=-1.0, high=1.0), "test",
                               classifier=classifier))

    curve, curve_raw = {}, {}
    seconds = 0.0
    data = batches(images, int(exp.config["batch_size"]), seed)
    while stepper.g_steps < args.g_updates:
        start = time.perf_counter()
        budget = args.g_updates
        if args.fd_every:
            budget = min(budget, (stepper.g_steps // args.fd_every + 1) * args.fd_every)
        while stepper.g_steps < budget:
            stepper.train_step((next(data),) if twin is None else next(data), rng)
        seconds += time.perf_counter() - start      # training time only, scoring excluded
        n = int(stepper.g_steps)
        curve[n] = score()
        if args.g_ema:
            curve_raw[n] = score(ema=False)
        print(f"#   {name}/{seed}/{engine} at {n} G updates: FD {curve[n]:.2f}"
              + (f" (average; last iterate {curve_raw[n]:.2f})" if args.g_ema else ""),
              flush=True)
    n = int(stepper.g_steps)
    result = {"fd_fmnist": curve[n], "g_updates": n,
              "d_updates": int(stepper.d_steps), "train_seconds": seconds}
    if args.g_ema:
        result.update(g_ema=args.g_ema, fd_fmnist_last_iterate=curve_raw[n])
    if args.fd_every:
        result["fd_curve"] = curve
        if args.g_ema:
            result["fd_curve_last_iterate"] = curve_raw
    return result


def main(argv=None):
    args = _parser().parse_args(argv)
    import numba
    import torch

    from tinygen.data import load_dataset
    from tinygen.metrics import fd_floor
    from tinygen.models.classifier import load_classifier, load_or_train_classifier

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.classifier is not None:
        classifier = load_classifier(args.classifier)
    elif args.classifier_limit is not None:
        classifier = load_or_train_classifier(out / "classifier-smoke.npz", epochs=1,
                                              options={"limit": args.classifier_limit},
                                              progress=False)
    else:
        classifier = load_or_train_classifier()
    (images, _), _ = load_dataset("fashion-mnist", limit=args.limit)
    path = out / "gan_twin.json"
    results = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    options = dict(args.option)
    if results.get("options", {}) != options and results["runs"]:
        raise SystemExit(f"{path} holds runs with options {results.get('options', {})}, "
                         f"not {options}: use another --out")
    results.update(g_updates=args.g_updates, fd_samples=args.fd_samples, options=options,
                   classifier_test_accuracy=getattr(classifier, "test_accuracy", None))
    if "fd_floor" not in results:
        results["fd_floor"] = float(fd_floor(classifier=classifier, n_train=args.fd_samples))
    for name in args.models:
        for seed in args.seeds:
            for engine in args.engines:
                key = f"{name}/{seed}/{engine}"
                if key in results["runs"]:
                    continue
                results["runs"][key] = run_one(name, seed, engine, images, args, classifier)
                print(f"# {key}: {results['runs'][key]}", flush=True)
                path.write_text(json.dumps(results, indent=2) + "\n")
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'model':<9} {'engine':<8} {'FD mean':>8} {'FD std':>7} {'seeds':>5} "
          f"{'s/run':>7}   ({args.g_updates} G updates, {args.fd_samples} samples)")
    for name in args.models:
        for engine in args.engines:
            runs = [r for k, r in results["runs"].items()
                    if k.startswith(f"{name}/") and k.endswith(f"/{engine}")]
            if runs:
                fds = np.array([r["fd_fmnist"] for r in runs])
                print(f"{name:<9} {engine:<8} {fds.mean():>8.2f} "
                      f"{fds.std(ddof=1) if len(fds) > 1 else 0.0:>7.2f} {len(fds):>5} "
                      f"{np.mean([r['train_seconds'] for r in runs]):>7.0f}")
    print(f"floor (real train vs test, {args.fd_samples} images): {results['fd_floor']:.3f}")
    return results


if __name__ == "__main__":
    main()
