"""The gated PixelCNN's training step (forward + backward + Adam) in tinygen and in
PyTorch CPU.

The architecture is ``tinygen train gated-pixelcnn``'s GatedPixelCNN (unconditional,
one channel, 256-way softmax per pixel): per layer a 2x3 down-shifted vertical conv, a
1x2 down-right-shifted horizontal conv (the first excludes the current pixel), a 1x1
vertical->horizontal link on the vertical features shifted down one row, the gates
tanh(a) * sigmoid(b), a 1x1 horizontal output (+ residual after the first layer) and a
1x1 skip; the summed skips -> ReLU, 1x1, ReLU, 1x1 -> 256 logits.  The loss is the mean
NLL in nats per image, as in training.  PyTorch gets a copy of tinygen's weights; both
first compute the loss and gradients on the same batch of Fashion-MNIST images (random
images when the data set is not installed), which must agree; then each is timed.

    python -m benchmarks.pixelcnn_step_vs_torch [--hidden 48] [--layers 8]
        [--batch-size 32] [--repeat 10] [--threads 1]

Prints milliseconds per step (median and best of --repeat) and the ratio tinygen /
PyTorch (lower is better for tinygen), the two timed in alternation so that load from
other processes falls on both alike.  Needs ``pip install torch`` (CPU build).
"""
import argparse
import os
import platform


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=48)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    return parser


from benchmarks._timing import pin_threads  # noqa: E402  (standard library only)

pin_threads(_parser(), __name__ == "__main__")

import numpy as np  # noqa: E402

import tinygen as tg  # noqa: E402
from benchmarks._timing import interleaved_ms  # noqa: E402
from tinygen.models.pixelcnn import GatedPixelCNN  # noqa: E402


def torch_gated_pixelcnn(torch, model):
    """The same network in PyTorch (a forward function and its parameters), with a copy
    of ``model``'s (tinygen) weights."""
    F = torch.nn.functional
    params = {k: torch.tensor(v.numpy(), requires_grad=True)
              for k, v in model.state_dict().items()}

    def conv(x, name, pad=None):
        if pad is not None:
            x = F.pad(x, pad)                      # (left, right, top, bottom)
        return F.conv2d(x, params[name + ".weight"], params[name + ".bias"])

    def gate(features):
        a, b = features.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(x):
        v = h = x
        skips = 0
        for i, layer in enumerate(model.layers):
            p = f"layers.{i}."
            v_feat = conv(v, p + "vertical", (1, 1, 1, 0))              # rows r-1..r
            if layer.first:                         # columns c-2..c-1: pad 2, drop the last
                h_feat = conv(h, p + "horizontal", (2, 0, 0, 0))[..., :-1]
            else:                                                      # columns c-1..c
                h_feat = conv(h, p + "horizontal", (1, 0, 0, 0))
            shifted = F.pad(v_feat, (0, 0, 1, 0))[:, :, :-1]            # down one row
            h_feat = h_feat + conv(shifted, p + "vertical_to_horizontal")
            gated = gate(h_feat)
            h_out = conv(gated, p + "horizontal_out")
            h = h_out if layer.first else h_out + h
            v = gate(v_feat)
            skips = skips + conv(gated, p + "skip")
        out = conv(F.relu(skips), "head.1")
        return conv(F.relu(out), "head.3")                             # (N, 256, H, W)

    return forward, list(params.values()), params


def torch_nll(torch, forward, x, target):
    """Mean NLL in nats per image."""
    logits = forward(x)
    per = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    return per.reshape(len(x), -1).sum(1).mean()


def _batch(n):
    try:
        from tinygen.data import load_fashion_mnist

        return load_fashion_mnist("test")[0][:n], "Fashion-MNIST test images"
    except Exception:  # no data set here: the timing does not depend on the pixels
        images = np.random.default_rng(0).integers(0, 256, (n, 28, 28)).astype(np.uint8)
        return images, "random images (Fashion-MNIST not found)"


def main(argv=None):
    args = _parser().parse_args(argv)
    import numba
    import torch

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))

    model = GatedPixelCNN(channels=1, hidden=args.hidden, n_layers=args.layers)
    model.reset_parameters(np.random.default_rng(0))
    forward, params, by_name = torch_gated_pixelcnn(torch, model)
    images, source = _batch(args.batch_size)
    x_th = torch.tensor(model.scale(images[:, None]).numpy())
    target_th = torch.tensor(images.astype(np.int64))

    # Same weights and batch: same loss and gradients, or the timing means nothing.
    loss_tg = model.nll(images).mean()
    loss_tg.backward()
    loss_th = torch_nll(torch, forward, x_th, target_th)
    loss_th.backward()
    np.testing.assert_allclose(loss_tg.item(), loss_th.item(), rtol=1e-4)
    for name, p in model.named_parameters():
        if p.grad is None:  # the last layer's horizontal output feeds nothing (only its skip)
            assert by_name[name].grad is None, name
            continue
        np.testing.assert_allclose(p.grad.numpy(), by_name[name].grad.numpy(), rtol=2e-3,
                                   atol=2e-3 * float(np.abs(p.grad.numpy()).max()),
                                   err_msg=name)

    opt_tg = tg.optim.Adam(model.parameters(), lr=1e-3)
    opt_th = torch.optim.Adam(params, lr=1e-3)

    def step_tg():
        loss = model.nll(images).mean()
        opt_tg.zero_grad()
        loss.backward()
        opt_tg.step()

    def step_th():
        loss = torch_nll(torch, forward, x_th, target_th)
        opt_th.zero_grad()
        loss.backward()
        opt_th.step()

    (ours, ours_best), (theirs, theirs_best) = interleaved_ms([step_tg, step_th], args.repeat,
                                                              args.warmup, block=2)
    print(f"# tinygen {tg.__version__} vs PyTorch {torch.__version__} (CPU), numpy "
          f"{np.__version__}, numba {numba.__version__}, {args.threads} thread(s), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"# loss on identical weights: tinygen {loss_tg.item():.4f}, PyTorch "
          f"{loss_th.item():.4f} nats/image ({source})")
    label = (f"gated PixelCNN h={args.hidden} L={args.layers} step fwd+bwd+Adam, "
             f"batch {args.batch_size}")
    print(f"{label:<58} {'tinygen ms':>11} {'torch ms':>9} {'ratio':>6}")
    for stat, a, b in (("median", ours, theirs), ("best", ours_best, theirs_best)):
        print(f"{'  ' + stat + ' of ' + str(args.repeat):<58} {a:>11.1f} {b:>9.1f} "
              f"{a / b:>6.2f}")
    return ours, theirs


if __name__ == "__main__":
    main()
