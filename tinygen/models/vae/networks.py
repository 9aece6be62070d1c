"""The two VAE architectures: ``MLPVAE`` and ``ConvVAE`` (28x28 single-channel images).

MLPVAE(latent_dim=32, hidden=(512, 256))
    encoder  784 -> 512 -> 256 -> 2*latent          (ReLU between)
    decoder  latent -> 256 -> 512 -> 784*C          (ReLU between)

ConvVAE(latent_dim=32, channels=(32, 64), hidden=256, batchnorm=False)
    encoder  (1, 28, 28) -conv 4x4 s2-> (32, 14, 14) -conv 4x4 s2-> (64, 7, 7)
             -> flatten 3136 -> [hidden] -> 2*latent
    decoder  latent -> [hidden] -> 3136 -> (64, 7, 7) -convT 4x4 s2-> (32, 14, 14)
             -convT 4x4 s2-> (C, 28, 28)

Both take ``prior`` ("standard" or "vamp") and ``pseudo_inputs`` (the VampPrior's K);
see ``model.py``.

C is the likelihood's channels per pixel: 1 (Bernoulli logits) or 2 (discretised
logistic mean and log-scale); with ``decoder="pixelcnn"`` the features the pixel head
fuses with the pixels before each one (``pixel_features``, see ``pixel_decoder.py``;
the decoder options are the base class's, ``model.py``).  Every conv has kernel 4, stride 2, padding 1, so each
halves the size (rounding down: 7 -> 3 with a third entry in ``channels``); the
transposed convs mirror them, with the output_padding that restores odd sizes.
``hidden=None`` connects the conv features straight to the latent layer (and back).
``batchnorm=True`` puts BatchNorm2d after every conv and transposed conv but the last;
those layers then have no bias, which the normalisation would subtract again (its
gradient is zero up to rounding, and Adam would turn that rounding noise into steps).
"""
import numbers

from ... import nn
from .model import VAE


def _sizes(channels):
    if (isinstance(channels, numbers.Integral) or not channels
            or not all(isinstance(c, numbers.Integral) and c > 0 for c in channels)):
        raise ValueError(f"channels must be a non-empty sequence of positive ints, got "
                         f"{channels!r}")
    return tuple(int(c) for c in channels)


class MLPVAE(VAE):
    def __init__(self, latent_dim=32, hidden=(512, 256), likelihood="bernoulli", dtype=None,
                 device=None, prior="standard", pseudo_inputs=500, **decoder):
        super().__init__(latent_dim, likelihood, prior, pseudo_inputs, dtype, device=device,
                         **decoder)
        hidden = (int(hidden),) if isinstance(hidden, numbers.Integral) else _sizes(hidden)
        self.hidden = hidden
        kw = dict(dtype=dtype, device=device)
        pixels = 28 * 28
        layers, width = [nn.Flatten()], pixels
        for h in hidden:
            layers += [nn.Linear(width, h, **kw), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 2 * latent_dim, **kw))
        self.encoder = nn.Sequential(*layers)
        layers, width = [], latent_dim
        for h in reversed(hidden):
            layers += [nn.Linear(width, h, **kw), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, pixels * self.decoder_channels, **kw))
        self.decoder = nn.Sequential(*layers)

    def _encoder_output(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z).reshape(z.shape[0], self.decoder_channels, 28, 28)

    def extra_repr(self):
        return f"latent_dim={self.latent_dim}, likelihood={self.likelihood.name!r}"


def conv_sizes(channels, owner):
    """Spatial sizes 28, 14, 7, ... after each stride-2 conv of ``channels``."""
    sizes = [28]
    for _ in channels:
        sizes.append((sizes[-1] + 2 - 4) // 2 + 1)
    if sizes[-1] < 1:
        raise ValueError(f"{owner}: {len(channels)} stride-2 convs shrink 28x28 to nothing")
    return sizes


def conv_encoder_layers(channels, batchnorm, kw):
    """(1, 28, 28) -> conv 4x4 s2 (+BN) + ReLU per stage -> flattened features."""
    layers, c_in = [], 1
    for c in channels:
        layers.append(nn.Conv2d(c_in, c, 4, stride=2, padding=1, bias=not batchnorm, **kw))
        if batchnorm:
            layers.append(nn.BatchNorm2d(c, **kw))
        layers.append(nn.ReLU())
        c_in = c
    layers.append(nn.Flatten())
    return layers


def conv_decoder_layers(channels, sizes, out_channels, batchnorm, kw):
    """The mirror of ``conv_encoder_layers``: (channels[-1], s, s) -> (out_channels, 28, 28),
    transposed convs 4x4 s2 with the output_padding that restores odd sizes."""
    layers = []
    outs = list(reversed(channels[:-1])) + [out_channels]
    for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs)):
        size_in, size_out = sizes[len(channels) - i], sizes[len(channels) - i - 1]
        normalized = batchnorm and i < len(channels) - 1
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1,
                                         output_padding=size_out - 2 * size_in,
                                         bias=not normalized, **kw))
        if i < len(channels) - 1:  # not after the output layer
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out, **kw))
            layers.append(nn.ReLU())
    return layers


class ConvVAE(VAE):
    def __init__(self, latent_dim=32, channels=(32, 64), hidden=256, batchnorm=False,
                 likelihood="bernoulli", dtype=None, device=None, prior="standard",
                 pseudo_inputs=500, **decoder):
        super().__init__(latent_dim, likelihood, prior, pseudo_inputs, dtype, device=device,
                         **decoder)
        channels = _sizes(channels)
        self.channels, self.hidden, self.batchnorm = channels, hidden, bool(batchnorm)
        kw = dict(dtype=dtype, device=device)
        sizes = conv_sizes(channels, "ConvVAE")
        self.feature_shape = (channels[-1], sizes[-1], sizes[-1])
        features = channels[-1] * sizes[-1] ** 2

        layers = conv_encoder_layers(channels, self.batchnorm, kw)
        width = features
        if hidden:
            layers += [nn.Linear(features, int(hidden), **kw), nn.ReLU()]
            width = int(hidden)
        layers.append(nn.Linear(width, 2 * latent_dim, **kw))
        self.encoder = nn.Sequential(*layers)

        layers, width = [], latent_dim
        if hidden:
            layers += [nn.Linear(latent_dim, int(hidden), **kw), nn.ReLU()]
            width = int(hidden)
        layers += [nn.Linear(width, features, **kw), nn.ReLU()]
        self.decoder_input = nn.Sequential(*layers)
        self.decoder = nn.Sequential(*conv_decoder_layers(
            channels, sizes, self.decoder_channels, self.batchnorm, kw))

    def _encoder_output(self, x):
        return self.encoder(x)

    def decode(self, z):
        h = self.decoder_input(z).reshape(z.shape[0], *self.feature_shape)
        return self.decoder(h)

    def extra_repr(self):
        return f"latent_dim={self.latent_dim}, likelihood={self.likelihood.name!r}"
