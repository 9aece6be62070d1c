"""The conv VAE's training step (forward + backward + Adam) in tinygen and in PyTorch CPU.

The architecture is ``tinygen train vae``'s default ConvVAE:

    encoder  conv 1->32 4x4 s2, ReLU, conv 32->64 4x4 s2, ReLU, 3136 -> 256 -> 64 (mu, logvar)
    decoder  32 -> 256 -> 3136, (64, 7, 7), convT 64->32 4x4 s2, ReLU, convT 32->1 4x4 s2

with the Bernoulli likelihood, one reparameterised sample and the closed-form KL, on a
batch of 128 binarised Fashion-MNIST images (random 'images' when the data set is not
installed), float32.  PyTorch gets a copy of tinygen's weights (same state_dict keys),
and both first compute the loss and gradients for the same batch and the same noise,
which must agree; then each is timed.

    python -m benchmarks.vae_step_vs_torch [--repeat 30] [--threads 1] [--batch-size 128]

Prints milliseconds per step (median and best of --repeat; on a shared machine the best
is the stable figure) and the ratios tinygen / PyTorch (lower is better for tinygen).
The two are timed in alternation, a few steps each, so that load from other processes
falls on both alike.  Needs ``pip install torch`` (CPU build).
"""
import argparse
import os
import platform


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=128)
    return parser


from benchmarks._timing import pin_threads  # noqa: E402  (standard library only)

pin_threads(_parser(), __name__ == "__main__")

import numpy as np  # noqa: E402

import tinygen as tg  # noqa: E402
from benchmarks._timing import interleaved_ms  # noqa: E402
from tinygen.models.vae import ConvVAE  # noqa: E402


def torch_conv_vae(torch, model):
    """The same network in PyTorch, with a copy of ``model``'s (tinygen) weights."""
    nn = torch.nn
    c1, c2 = model.channels
    features = c2 * 7 * 7
    latent, hidden = model.latent_dim, model.hidden
    net = nn.Module()
    net.encoder = nn.Sequential(
        nn.Conv2d(1, c1, 4, 2, 1), nn.ReLU(), nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
    net.decoder_input = nn.Sequential(
        nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, features), nn.ReLU())
    net.decoder = nn.Sequential(
        nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(c1, 1, 4, 2, 1))
    state = {k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()}
    net.load_state_dict(state, strict=True)
    return net


def torch_negative_elbo(torch, net, x, eps):
    """Mean negative ELBO (nats per image), exactly as tinygen's ConvVAE computes it."""
    F = torch.nn.functional
    mu, logvar = net.encoder(x).chunk(2, dim=1)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = net.decoder(net.decoder_input(z).reshape(x.shape[0], -1, 7, 7))
    log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    kl = 0.5 * (mu * mu + logvar.exp() - logvar - 1.0).sum(1)
    return (kl - log_px).mean()


def _batch(n):
    try:
        from tinygen.data import load_fashion_mnist

        images = load_fashion_mnist("test")[0][:n]
        source = "Fashion-MNIST test images"
    except Exception:  # no data set here: the timing does not depend on the pixels
        images = np.random.default_rng(0).integers(0, 256, (n, 28, 28)).astype(np.uint8)
        source = "random images (Fashion-MNIST not found)"
    return images, source


def main(argv=None):
    args = _parser().parse_args(argv)
    import numba
    import torch

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))

    model = ConvVAE()
    model.reset_parameters(np.random.default_rng(0))
    net = torch_conv_vae(torch, model)
    images, source = _batch(args.batch_size)
    x_np = model.prepare(images, np.random.default_rng(1))              # binarised once
    x_tg, x_th = tg.tensor(x_np), torch.tensor(x_np)

    # Same weights, batch and noise: same loss and gradients, or the timing means nothing.
    noise_seed = 2
    loss_tg = -model.elbo(x_tg, np.random.default_rng(noise_seed)).mean()
    loss_tg.backward()
    eps = model._noise(np.random.default_rng(noise_seed), (args.batch_size, model.latent_dim))
    loss_th = torch_negative_elbo(torch, net, x_th, torch.tensor(eps))
    loss_th.backward()
    np.testing.assert_allclose(loss_tg.item(), loss_th.item(), rtol=1e-5)
    for (name, p), q in zip(model.named_parameters(), net.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=2e-3, atol=2e-5,
                                   err_msg=name)

    opt_tg = tg.optim.Adam(model.parameters(), lr=1e-3)
    opt_th = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = np.random.default_rng(3)

    def step_tg():
        loss = -model.elbo(x_tg, generator).mean()
        opt_tg.zero_grad()
        loss.backward()
        opt_tg.step()

    def step_th():
        loss = torch_negative_elbo(torch, net, x_th,
                                   torch.randn(args.batch_size, model.latent_dim))
        opt_th.zero_grad()
        loss.backward()
        opt_th.step()

    (ours, ours_best), (theirs, theirs_best) = interleaved_ms([step_tg, step_th], args.repeat,
                                                               args.warmup)
    print(f"# tinygen {tg.__version__} vs PyTorch {torch.__version__} (CPU), numpy "
          f"{np.__version__}, numba {numba.__version__}, {args.threads} thread(s), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"# loss on identical weights/noise: tinygen {loss_tg.item():.6f}, PyTorch "
          f"{loss_th.item():.6f} ({source})")
    print(f"{'conv VAE step fwd+bwd+Adam, batch ' + str(args.batch_size):<44} "
          f"{'tinygen ms':>11} {'torch ms':>9} {'ratio':>6}")
    for label, a, b in (("median", ours, theirs), ("best", ours_best, theirs_best)):
        print(f"{'  ' + label + ' of ' + str(args.repeat):<44} {a:>11.2f} {b:>9.2f} "
              f"{a / b:>6.2f}")
    return ours, theirs


if __name__ == "__main__":
    main()
