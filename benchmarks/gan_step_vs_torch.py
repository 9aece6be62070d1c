"""One GAN training step in tinygen and in PyTorch CPU, same architecture, side by side.

Workloads (float32, batch 64, Fashion-MNIST images scaled to [-1, 1]; the
architecture of ``tinygen.models.gan``: G latent 64 -> (64, 7, 7) -> BatchNorm ->
ConvTranspose 14x14 -> BatchNorm -> ConvTranspose 28x28 -> tanh; D conv 14x14 ->
conv 7x7 [-> BatchNorm] -> linear):

  * DCGAN: one discriminator step (G forward without a graph, D on real and on
    fake, non-saturating/BCE loss, backward, Adam) plus one generator step (G and D
    forward, backward through D into G, Adam) -- ``GANExperiment.train_step``;
  * WGAN-GP: one critic step (Wasserstein loss + 10 * gradient penalty on random
    interpolates, i.e. a double backward through the critic, Adam).

tinygen runs the training code itself (``GANExperiment.discriminator_step`` /
``generator_step``); PyTorch runs the same computation written in torch, with
weights copied from tinygen and the same noise.  Before timing, both engines take
three steps from identical weights and must agree on every loss (and on the
weights after the steps): the comparison is only meaningful if they compute the
same thing.

    python -m benchmarks.gan_step_vs_torch [--repeat 20] [--threads 1] [--channels 32]

Prints median milliseconds per step and the ratio tinygen / PyTorch (lower is
better for tinygen).  Needs ``pip install torch`` (CPU build).
"""
import argparse
import copy
import os
import platform


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=32,
                        help="C: G and D have C and 2C channels (the experiments' default)")
    parser.add_argument("--latent-dim", type=int, default=64)
    return parser


from benchmarks._timing import pin_threads  # noqa: E402  (standard library only)

pin_threads(_parser(), __name__ == "__main__")

import numpy as np  # noqa: E402

from benchmarks._timing import time_ms  # noqa: E402


# --- the same networks in PyTorch (parameter names match tinygen's state_dict) ----------
def torch_networks(torch, latent_dim, c, d_batchnorm):
    nn, F = torch.nn, torch.nn.functional

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(latent_dim, 2 * c * 49, bias=False)
            self.bn0 = nn.BatchNorm2d(2 * c)
            self.up1 = nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.up2 = nn.ConvTranspose2d(c, 1, 4, 2, 1)

        def forward(self, z):
            h = F.relu(self.bn0(self.fc(z).reshape(z.shape[0], 2 * c, 7, 7)))
            h = F.relu(self.bn1(self.up1(h)))
            return torch.tanh(self.up2(h))

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, c, 4, 2, 1)
            self.conv2 = nn.Conv2d(c, 2 * c, 4, 2, 1, bias=not d_batchnorm)
            if d_batchnorm:
                self.bn2 = nn.BatchNorm2d(2 * c)
            self.fc = nn.Linear(2 * c * 49, 1)

        def forward(self, x):
            h = F.leaky_relu(self.conv1(x), 0.2)
            h = self.conv2(h)
            if d_batchnorm:
                h = self.bn2(h)
            h = F.leaky_relu(h, 0.2)
            return self.fc(h.flatten(1)).reshape(x.shape[0])

    return Generator(), Discriminator()


class TorchGAN:
    """The torch twin of a GANExperiment: same weights, same optimiser settings, and
    the same draws from a copy of the numpy noise generator."""

    def __init__(self, torch, exp):
        cfg = exp.config
        self.torch, self.F = torch, torch.nn.functional
        self.latent_dim, self.loss = cfg["latent_dim"], cfg["loss"]
        self.gp_weight = float(cfg["gp_weight"])
        self.G, self.D = torch_networks(torch, cfg["latent_dim"], cfg["g_channels"],
                                        cfg["d_batchnorm"])
        for ours, theirs in ((exp.generator, self.G), (exp.discriminator, self.D)):
            theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                                    for k, v in ours.state_dict().items()})
        betas = (cfg["beta1"], cfg["beta2"])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg["lr"], betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg["lr"], betas=betas)

    def noise(self, n, rng):
        return self.torch.from_numpy(rng.standard_normal((n, self.latent_dim)).astype(np.float32))

    def discriminator_step(self, real, rng):
        torch, F = self.torch, self.F
        with torch.no_grad():
            fake = self.G(self.noise(real.shape[0], rng))
        real_s, fake_s = self.D(real), self.D(fake)
        if self.loss == "wgan-gp":
            loss = fake_s.mean() - real_s.mean()
            eps = torch.from_numpy(rng.random((real.shape[0], 1, 1, 1)).astype(np.float32))
            x_hat = (eps * real + (1.0 - eps) * fake).detach().requires_grad_()
            (g,) = torch.autograd.grad(self.D(x_hat).sum(), x_hat, create_graph=True)
            norms = ((g * g).flatten(1).sum(1) + 1e-12).sqrt()
            loss = loss + self.gp_weight * ((norms - 1.0) ** 2).mean()
        else:  # non-saturating / BCE
            loss = F.softplus(-real_s).mean() + F.softplus(fake_s).mean()
        self.opt_d.zero_grad()
        loss.backward()
        self.opt_d.step()
        return loss.item()

    def generator_step(self, n, rng):
        self.D.requires_grad_(False)
        fake_s = self.D(self.G(self.noise(n, rng)))
        loss = (-fake_s.mean()) if self.loss == "wgan-gp" else self.F.softplus(-fake_s).mean()
        self.opt_g.zero_grad()
        loss.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return loss.item()


def check_same_numbers(exp, twin, x_np, rng, with_g_step, steps=3):
    """Both engines take ``steps`` steps from identical weights and noise; losses and
    final weights must agree to float32 round-off."""
    torch = twin.torch
    x_ours, x_theirs = exp._images(x_np), torch.from_numpy(
        x_np.astype(np.float32).reshape(-1, 1, 28, 28) * np.float32(2 / 255) - np.float32(1))
    for _ in range(steps):
        rng_t = copy.deepcopy(rng)
        ours = exp.discriminator_step(x_ours, rng)["d_loss"]
        theirs = twin.discriminator_step(x_theirs, rng_t)
        np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=1e-5)
        if with_g_step:
            rng_t = copy.deepcopy(rng)
            ours = exp.generator_step(x_np.shape[0], rng)
            theirs = twin.generator_step(x_np.shape[0], rng_t)
            np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=1e-5)
    for ours, theirs in ((exp.generator, twin.G), (exp.discriminator, twin.D)):
        t_state = theirs.state_dict()
        for k, v in ours.state_dict().items():
            np.testing.assert_allclose(v.numpy(), t_state[k].numpy(), rtol=1e-3, atol=1e-5,
                                       err_msg=k)


def main(argv=None):
    args = _parser().parse_args(argv)
    import numba
    import torch

    import tinygen as tg
    from tinygen.models import get_experiment

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(args.threads)
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from tinygen.data import load_dataset
            (images, _), _ = load_dataset("fashion-mnist", limit=args.batch_size)
    except Exception:  # no data at all: random images work as well for timing
        images = np.random.default_rng(0).integers(0, 256, (args.batch_size, 28, 28),
                                                   dtype=np.uint8)
    options = {"seed": 0, "batch_size": args.batch_size, "latent_dim": args.latent_dim,
               "g_channels": args.channels, "d_channels": args.channels, "fd_samples": 0}
    rows = []
    for name, label, with_g in (("dcgan", "DCGAN step (D step + G step)", True),
                                ("wgan-gp", "WGAN-GP critic step (with penalty)", False)):
        exp = get_experiment(name)(options)
        twin = TorchGAN(torch, exp)
        check_same_numbers(exp, twin, images, np.random.default_rng(1), with_g)
        x_ours = exp._images(images)
        x_theirs = torch.from_numpy(
            images.astype(np.float32).reshape(-1, 1, 28, 28) * np.float32(2 / 255) - 1)
        rng_a, rng_b = np.random.default_rng(2), np.random.default_rng(2)

        def ours():
            exp.discriminator_step(x_ours, rng_a)
            if with_g:
                exp.generator_step(args.batch_size, rng_a)

        def theirs():
            twin.discriminator_step(x_theirs, rng_b)
            if with_g:
                twin.generator_step(args.batch_size, rng_b)

        rows.append((label, time_ms(ours, args.repeat), time_ms(theirs, args.repeat)))

    print(f"# tinygen {tg.__version__} vs PyTorch {torch.__version__} (CPU), numpy "
          f"{np.__version__}, numba {numba.__version__}, {args.threads} thread(s), "
          f"{platform.processor() or platform.machine()}")
    print(f"# batch {args.batch_size}, C={args.channels}, latent {args.latent_dim}, float32; "
          f"same losses and weights verified over 3 steps; median of {args.repeat}")
    print(f"{'workload':<40} {'tinygen ms':>11} {'torch ms':>9} {'ratio':>6}")
    for label, a, b in rows:
        print(f"{label:<40} {a:>11.2f} {b:>9.2f} {a / b:>6.2f}")


if __name__ == "__main__":
    main()
