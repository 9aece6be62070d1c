"""Model rows: each model's full training step (forward, backward, optimizer).

The tinygen side runs the library's own model code (and, for the GANs, the
experiment's ``discriminator_step`` / ``generator_step``); the torch side runs its
twin (``torch_twins.py``) from the tinygen side's weights.  Data are random uint8
images / codes from fixed seeds (the timing does not depend on the pixels), noise
comes from numpy generators seeded alike on both sides and drawn in the same order.
"""
import numpy as np

N_IMAGES = {"vae": 128, "gan": 64, "pixelcnn": 32}


def _images(n):
    return np.random.default_rng(0).integers(0, 256, (n, 28, 28)).astype(np.uint8)


def _np_state(module):
    return {k: np.array(v.numpy()) for k, v in module.state_dict().items()}


def _grads(named):
    return {k: np.array(p.grad.numpy()) for k, p in named if p.grad is not None}


# --- VAE (MLP and conv): -ELBO, Bernoulli, one sample, Adam ------------------------------------
def _vae_case(Case, Bench, name, conv):
    def model():
        from tinygen.models.vae import ConvVAE, MLPVAE

        m = ConvVAE() if conv else MLPVAE()
        m.reset_parameters(np.random.default_rng(0))
        return m

    def build_tinygen(quick, state):
        import tinygen as tg

        m = model()
        x = tg.tensor(m.prepare(_images(N_IMAGES["vae"]), np.random.default_rng(1)))
        opt = tg.optim.Adam(m.parameters(), lr=1e-3)
        noise = np.random.default_rng(3)
        box = {}

        def step():
            loss = -m.elbo(x, noise).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            box["loss"] = loss.item()

        config = {"latent_dim": m.latent_dim, "hidden": getattr(m, "hidden", None),
                  "channels": getattr(m, "channels", None), "x": x.numpy()}
        return Bench(step, lambda: {"loss": np.array(box["loss"]),
                                    **_grads(m.named_parameters())},
                     {"weights": _np_state(m), "config": config})

    def build_torch(quick, state):
        import torch

        from . import torch_twins as T

        cfg = state["config"]
        if conv:
            net = T.conv_vae(state["weights"], cfg["channels"], cfg["latent_dim"], cfg["hidden"])
        else:
            net = T.mlp_vae(state["weights"], cfg["latent_dim"], cfg["hidden"])
        x = torch.tensor(cfg["x"])
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        noise = np.random.default_rng(3)
        box = {}

        def step():
            eps = noise.standard_normal((len(x), cfg["latent_dim"])).astype(np.float32)
            loss = T.negative_elbo(net, x, torch.from_numpy(eps))
            opt.zero_grad()
            loss.backward()
            opt.step()
            box["loss"] = loss.item()

        return Bench(step, lambda: {"loss": np.array(box["loss"]),
                                    **_grads(net.named_parameters())})

    return Case(name, "model", build_tinygen, build_torch, rtol=2e-3, atol=2e-4)


# --- GANs: GANExperiment's steps ---------------------------------------------------------------
def _gan_case(Case, Bench, name, label, with_g):
    def build_tinygen(quick, state):
        from tinygen.models import get_experiment

        n = N_IMAGES["gan"]
        exp = get_experiment(name)({"seed": 0, "batch_size": n, "fd_samples": 0})
        images = _images(n)
        x = exp._images(images)
        rng = np.random.default_rng(2)
        box = {}

        def step():
            box["d"] = exp.discriminator_step(x, rng)["d_loss"]
            if with_g:
                box["g"] = exp.generator_step(n, rng)

        def outputs():
            out = {"d_loss": np.array(box["d"])}
            if with_g:
                out["g_loss"] = np.array(box["g"])
            for prefix, net in (("G.", exp.generator), ("D.", exp.discriminator)):
                out.update({prefix + k: v for k, v in _grads(net.named_parameters()).items()})
            return out

        cfg = {k: exp.config[k] for k in ("latent_dim", "g_channels", "d_batchnorm",
                                          "spectral_norm", "loss", "gp_weight", "beta1",
                                          "beta2", "lr")}
        return Bench(step, outputs, {"config": cfg, "G": _np_state(exp.generator),
                                     "D": _np_state(exp.discriminator),
                                     "x": x.numpy()})

    def build_torch(quick, state):
        import torch

        from .torch_twins import TorchGAN

        twin = TorchGAN(state["config"], state["G"], state["D"])
        x = torch.tensor(state["x"])
        n = len(x)
        rng = np.random.default_rng(2)
        box = {}

        def step():
            box["d"] = twin.discriminator_step(x, rng).item()
            if with_g:
                box["g"] = twin.generator_step(n, rng).item()

        def outputs():
            out = {"d_loss": np.array(box["d"])}
            if with_g:
                out["g_loss"] = np.array(box["g"])
            out.update(twin.named_grads(state["config"]["spectral_norm"]))
            return out

        return Bench(step, outputs)

    return Case(label, "model", build_tinygen, build_torch, rtol=2e-3, atol=1e-4)


# --- PixelCNNs: mean NLL (nats per image), Adam ------------------------------------------------
def _pixelcnn_case(Case, Bench, name, gated):
    def model():
        from tinygen.models.pixelcnn import GatedPixelCNN, PixelCNN

        m = (GatedPixelCNN(channels=1, hidden=48, n_layers=8) if gated
             else PixelCNN(channels=1, hidden=64, n_residual=5))
        m.reset_parameters(np.random.default_rng(0))
        return m

    def build_tinygen(quick, state):
        import tinygen as tg

        m = model()
        images = _images(N_IMAGES["pixelcnn"])
        opt = tg.optim.Adam(m.parameters(), lr=1e-3)
        box = {}

        def step():
            loss = m.nll(images).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            box["loss"] = loss.item()

        config = {"images": images, "levels": m.n_classes,
                  "first": [layer.first for layer in m.layers] if gated else None,
                  "n_residual": None if gated else m.n_residual}
        return Bench(step, lambda: {"loss": np.array(box["loss"]),
                                    **_grads(m.named_parameters())},
                     {"weights": _np_state(m), "config": config})

    def build_torch(quick, state):
        import torch

        from . import torch_twins as T

        cfg = state["config"]
        if gated:
            forward, params = T.gated_pixelcnn(state["weights"], cfg["first"])
        else:
            forward, params = T.masked_pixelcnn(state["weights"], cfg["n_residual"])
        images = torch.tensor(cfg["images"])
        opt = torch.optim.Adam(params.values(), lr=1e-3)
        box = {}

        def step():
            # input and targets made from the uint8 images in the step, as m.nll does
            x = images[:, None].double() * (2.0 / (cfg["levels"] - 1)) - 1.0
            loss = T.pixel_nll(forward, x.float(), images.long())
            opt.zero_grad()
            loss.backward()
            opt.step()
            box["loss"] = loss.item()

        return Bench(step, lambda: {"loss": np.array(box["loss"]),
                                    **_grads(params.items())})

    return Case(name, "model", build_tinygen, build_torch, rtol=2e-3, atol=2e-3)


# --- WaveNet: mean NLL per sample, Adam (the experiment's default network) ---------------------
WAVENET = dict(n_layers=10, residual_channels=32, skip_channels=64, batch=8, window=1024)


def _wavenet_case(Case, Bench):
    def build_tinygen(quick, state):
        import tinygen as tg
        from tinygen.models.wavenet.model import WaveNet

        m = WaveNet(WAVENET["n_layers"], residual_channels=WAVENET["residual_channels"],
                    skip_channels=WAVENET["skip_channels"])
        m.reset_parameters(np.random.default_rng(0))
        codes = np.random.default_rng(1).integers(0, 256, (WAVENET["batch"], WAVENET["window"]))
        opt = tg.optim.Adam(m.parameters(), lr=1e-3)
        box = {}

        def step():
            loss = m.loss(codes)
            opt.zero_grad()
            loss.backward()
            opt.step()
            box["loss"] = loss.item()

        config = {"codes": codes, "quantization": m.quantization,
                  "dilations": list(m.dilations)}
        return Bench(step, lambda: {"loss": np.array(box["loss"]),
                                    **_grads(m.named_parameters())},
                     {"weights": _np_state(m), "config": config})

    def build_torch(quick, state):
        import torch
        import torch.nn.functional as F

        from . import torch_twins as T

        cfg = state["config"]
        forward, params = T.wavenet(state["weights"], cfg["dilations"])
        codes = torch.tensor(cfg["codes"])
        opt = torch.optim.Adam(params.values(), lr=1e-3)
        box = {}

        def step():
            # the network's input made in the step, as ours makes it (m.loss(codes)):
            # one-hot of the previous sample, zeros at t = 0
            x = torch.zeros((codes.shape[0], cfg["quantization"], codes.shape[1]))
            x[:, :, 1:].scatter_(1, codes[:, None, :-1], 1.0)
            loss = F.cross_entropy(forward(x), codes)
            opt.zero_grad()
            loss.backward()
            opt.step()
            box["loss"] = loss.item()

        return Bench(step, lambda: {"loss": np.array(box["loss"]),
                                    **_grads(params.items())})

    label = (f"WaveNet step L={WAVENET['n_layers']} R={WAVENET['residual_channels']} "
             f"batch {WAVENET['batch']}x{WAVENET['window']}")
    return Case(label, "model", build_tinygen, build_torch, rtol=2e-3, atol=2e-3)


def model_cases(Case, Bench):
    return [
        _vae_case(Case, Bench, "VAE (MLP 784-512-256-32) step, batch 128", conv=False),
        _vae_case(Case, Bench, "VAE (conv) step, batch 128", conv=True),
        _gan_case(Case, Bench, "dcgan", "DCGAN step (D + G), batch 64", with_g=True),
        _gan_case(Case, Bench, "sngan", "SN-GAN step (D + G), batch 64", with_g=True),
        _gan_case(Case, Bench, "wgan-gp", "WGAN-GP critic step with penalty, batch 64",
                  with_g=False),
        _pixelcnn_case(Case, Bench, "PixelCNN h=64 5 blocks step, batch 32", gated=False),
        _pixelcnn_case(Case, Bench, "gated PixelCNN h=48 L=8 step, batch 32", gated=True),
        _wavenet_case(Case, Bench),
    ]
