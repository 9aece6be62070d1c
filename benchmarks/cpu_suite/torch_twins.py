"""The models of ``tinygen.models`` written in PyTorch, for the suite's torch worker.

Each twin takes tinygen's state_dict (numpy arrays, same keys), so both frameworks
start from the same weights; the suite checks they compute the same losses and
gradients before it times them.  Only torch is imported here.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def _params(state):
    return {k: torch.tensor(v, requires_grad=True) for k, v in state.items()}


def _load(module, state):
    module.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=True)
    return module


# --- VAEs --------------------------------------------------------------------------------------
def mlp_vae(state, latent_dim, hidden):
    net = nn.Module()
    layers, width = [nn.Flatten()], 784
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    net.encoder = nn.Sequential(*layers, nn.Linear(width, 2 * latent_dim))
    layers, width = [], latent_dim
    for h in reversed(hidden):
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    net.decoder = nn.Sequential(*layers, nn.Linear(width, 784))
    net.decode = lambda z: net.decoder(z).reshape(z.shape[0], 1, 28, 28)
    return _load(net, state)


def conv_vae(state, channels, latent_dim, hidden):
    c1, c2 = channels
    features = c2 * 7 * 7
    net = nn.Module()
    net.encoder = nn.Sequential(
        nn.Conv2d(1, c1, 4, 2, 1), nn.ReLU(), nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim))
    net.decoder_input = nn.Sequential(
        nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, features), nn.ReLU())
    net.decoder = nn.Sequential(
        nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(c1, 1, 4, 2, 1))
    net.decode = lambda z: net.decoder(net.decoder_input(z).reshape(z.shape[0], c2, 7, 7))
    return _load(net, state)


def negative_elbo(net, x, eps):
    """Mean negative ELBO (nats per image), as tinygen's VAE computes it (Bernoulli)."""
    mu, logvar = net.encoder(x).chunk(2, dim=1)
    z = mu + torch.exp(0.5 * logvar) * eps
    log_px = -F.binary_cross_entropy_with_logits(net.decode(z), x,
                                                 reduction="none").sum((1, 2, 3))
    kl = 0.5 * (mu * mu + logvar.exp() - logvar - 1.0).sum(1)
    return (kl - log_px).mean()


# --- GANs --------------------------------------------------------------------------------------
class SpectralNorm(nn.Module):
    """W / sigma(W) with one power-iteration step per training forward, as
    tinygen.nn.utils.spectral_norm (parameter weight_orig, buffers weight_u/_v)."""

    def __init__(self, layer, functional):
        super().__init__()
        self.layer, self.functional = layer, functional
        w = layer.weight
        del layer.weight
        self.weight_orig = nn.Parameter(w.detach().clone())
        self.register_buffer("weight_u", torch.zeros(w.shape[0]))
        self.register_buffer("weight_v", torch.zeros(w[0].numel()))

    def forward(self, x):
        m = self.weight_orig.reshape(self.weight_orig.shape[0], -1)
        if self.training:
            with torch.no_grad():
                self.weight_v.copy_(F.normalize(m.t() @ self.weight_u, dim=0, eps=1e-12))
                self.weight_u.copy_(F.normalize(m @ self.weight_v, dim=0, eps=1e-12))
        # clones: the next forward's power iteration updates the buffers in place, and
        # this forward's backward still needs the u, v it used
        sigma = torch.dot(self.weight_u.clone(), m @ self.weight_v.clone())
        return self.functional(x, self.weight_orig / sigma, self.layer.bias)


def gan_networks(latent_dim, c, d_batchnorm, spectral):
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
            if spectral:
                conv = lambda x, w, b: F.conv2d(x, w, b, 2, 1)  # noqa: E731
                self.conv1 = SpectralNorm(self.conv1, conv)
                self.conv2 = SpectralNorm(self.conv2, conv)
                self.fc = SpectralNorm(self.fc, F.linear)

        def forward(self, x):
            h = F.leaky_relu(self.conv1(x), 0.2)
            h = self.conv2(h)
            if d_batchnorm:
                h = self.bn2(h)
            h = F.leaky_relu(h, 0.2)
            return self.fc(h.flatten(1)).reshape(x.shape[0])

    return Generator(), Discriminator()


def _sn_keys(state):
    """tinygen's spectral-norm keys (conv1.weight_orig) -> the twin's (conv1.weight_orig
    stays; the wrapped layer's bias is conv1.layer.bias)."""
    out = {}
    for k, v in state.items():
        head, _, leaf = k.rpartition(".")
        out[f"{head}.layer.{leaf}" if leaf == "bias" else k] = v
    return out


class TorchGAN:
    """The torch twin of a GANExperiment: same weights, same optimiser settings, and
    the same draws from a numpy generator seeded like the tinygen side's."""

    def __init__(self, cfg, g_state, d_state):
        self.latent_dim, self.loss = cfg["latent_dim"], cfg["loss"]
        self.gp_weight = float(cfg["gp_weight"])
        self.G, self.D = gan_networks(cfg["latent_dim"], cfg["g_channels"], cfg["d_batchnorm"],
                                      cfg["spectral_norm"])
        _load(self.G, g_state)
        _load(self.D, _sn_keys(d_state) if cfg["spectral_norm"] else d_state)
        betas = (cfg["beta1"], cfg["beta2"])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg["lr"], betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg["lr"], betas=betas)

    def noise(self, n, rng):
        return torch.from_numpy(rng.standard_normal((n, self.latent_dim)).astype(np.float32))

    def discriminator_step(self, real, rng):
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
        elif self.loss == "hinge":
            loss = F.relu(1.0 - real_s).mean() + F.relu(1.0 + fake_s).mean()
        else:  # non-saturating / BCE
            loss = F.softplus(-real_s).mean() + F.softplus(fake_s).mean()
        self.opt_d.zero_grad()
        loss.backward()
        self.opt_d.step()
        return loss.detach()

    def generator_step(self, n, rng):
        self.D.requires_grad_(False)
        fake_s = self.D(self.G(self.noise(n, rng)))
        if self.loss in ("wgan-gp", "hinge"):
            loss = -fake_s.mean()
        else:
            loss = F.softplus(-fake_s).mean()
        self.opt_g.zero_grad()
        loss.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return loss.detach()

    def named_grads(self, sn):
        out = {}
        for prefix, net in (("G.", self.G), ("D.", self.D)):
            for k, p in net.named_parameters():
                if p.grad is not None:
                    k = k.replace(".layer.", ".") if sn else k
                    out[prefix + k] = p.grad.numpy()
        return out


# --- PixelCNNs ---------------------------------------------------------------------------------
def pixelcnn_mask(k, mask_type):
    m = np.zeros((k, k), dtype=np.float32)
    m[:k // 2] = 1
    m[k // 2, :k // 2 + (mask_type == "B")] = 1
    return torch.from_numpy(m)


def masked_pixelcnn(state, n_residual):
    """PixelCNN (one channel, 256-way softmax): 7x7 mask A, residual blocks of 1x1 /
    3x3 mask B / 1x1, head ReLU 1x1 ReLU 1x1.  Returns (forward, params by name)."""
    params = _params(state)
    masks = {3: pixelcnn_mask(3, "B"), 7: pixelcnn_mask(7, "A")}

    def conv(x, name):
        w = params[name + ".weight"]
        k = w.shape[-1]
        if k > 1:
            w = w * masks[k]
        return F.conv2d(x, w, params[name + ".bias"], padding=k // 2)

    def forward(x):
        h = conv(x, "input_conv")
        for b in range(n_residual):
            p = f"blocks.{b}."
            r = conv(F.relu(h), p + "1")
            r = conv(F.relu(r), p + "3")
            h = h + conv(F.relu(r), p + "5")
        out = conv(F.relu(conv(F.relu(h), "head.1")), "head.3")
        return out

    return forward, params


def gated_pixelcnn(state, first_flags):
    """The gated PixelCNN (one channel, 256-way softmax); returns (forward, params)."""
    params = _params(state)

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
        for i, first in enumerate(first_flags):
            p = f"layers.{i}."
            v_feat = conv(v, p + "vertical", (1, 1, 1, 0))              # rows r-1..r
            if first:                               # columns c-2..c-1: pad 2, drop the last
                h_feat = conv(h, p + "horizontal", (2, 0, 0, 0))[..., :-1]
            else:                                                      # columns c-1..c
                h_feat = conv(h, p + "horizontal", (1, 0, 0, 0))
            shifted = F.pad(v_feat, (0, 0, 1, 0))[:, :, :-1]            # down one row
            h_feat = h_feat + conv(shifted, p + "vertical_to_horizontal")
            gated = gate(h_feat)
            h_out = conv(gated, p + "horizontal_out")
            h = h_out if first else h_out + h
            v = gate(v_feat)
            skips = skips + conv(gated, p + "skip")
        out = conv(F.relu(skips), "head.1")
        return conv(F.relu(out), "head.3")                             # (N, 256, H, W)

    return forward, params


def pixel_nll(forward, x, target):
    """Mean NLL in nats per image (256-way softmax per pixel)."""
    per = F.cross_entropy(forward(x), target, reduction="none")
    return per.reshape(len(x), -1).sum(1).mean()


# --- WaveNet -----------------------------------------------------------------------------------
def wavenet(state, dilations):
    params = _params(state)

    def conv(x, name, dilation=1):
        w = params[name + ".weight"]
        pad = dilation * (w.shape[-1] - 1)
        if pad:
            x = F.pad(x, [pad, 0])
        return F.conv1d(x, w, params[name + ".bias"], dilation=dilation)

    def forward(onehot):
        h = conv(onehot, "embed")
        skip = 0
        for i, d in enumerate(dilations):
            z = conv(h, f"dilated.{i}", d)
            a, b = z.chunk(2, dim=1)
            g = torch.tanh(a) * torch.sigmoid(b)
            h = h + conv(g, f"residual.{i}")
            skip = skip + conv(g, f"skip.{i}")
        return conv(F.relu(conv(F.relu(skip), "out1")), "out2")

    return forward, params
