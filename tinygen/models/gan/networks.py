"""DCGAN generator and discriminator for 28x28 single-channel images.

Generator (Radford et al. 2016, shrunk to 28x28):

    z (latent_dim) -> Linear -> (2C, 7, 7) -> BatchNorm -> ReLU
      -> ConvTranspose2d(2C, C, 4, stride 2, padding 1)   14x14 -> BatchNorm -> ReLU
      -> ConvTranspose2d(C, 1, 4, stride 2, padding 1)    28x28 -> tanh  (in [-1, 1])

Discriminator / critic:

    x (1, 28, 28) -> Conv2d(1, C, 4, stride 2, padding 1)  14x14 -> leaky_relu(0.2)
      -> Conv2d(C, 2C, 4, stride 2, padding 1)           7x7 -> [BatchNorm] -> leaky_relu(0.2)
      -> flatten -> Linear(2C*49, 1)                     one unnormalised score per image

BatchNorm in the discriminator is optional: WGAN-GP leaves it out (the penalty is
taken per sample, and batch statistics would couple the samples; Gulrajani et al.
2017, section 4), SN-GAN does not need it.  ``spectral_norm=True`` re-parameterises
every conv and linear weight of the discriminator as W / sigma(W) (Miyato et al. 2018).
The first D layer has no BatchNorm, as in DCGAN.  Layers followed by a BatchNorm
have no bias (the normalisation would cancel it).
"""
import numpy as np

from ... import nn
from ...nn import functional as F
from ...nn import init

IMAGE_SHAPE = (1, 28, 28)


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim=64, channels=32, dtype=None):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.channels = int(channels)
        c = self.channels
        # No bias before a BatchNorm: the normalisation subtracts it again (its exact
        # gradient is 0, and Adam would turn the round-off left in it into steps).
        self.fc = nn.Linear(self.latent_dim, 2 * c * 7 * 7, bias=False, dtype=dtype)
        self.bn0 = nn.BatchNorm2d(2 * c, dtype=dtype)
        self.up1 = nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False,
                                      dtype=dtype)
        self.bn1 = nn.BatchNorm2d(c, dtype=dtype)
        self.up2 = nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1, dtype=dtype)

    def forward(self, z):
        h = self.fc(z).reshape(z.shape[0], 2 * self.channels, 7, 7)
        h = F.relu(self.bn0(h))
        h = F.relu(self.bn1(self.up1(h)))
        return F.tanh(self.up2(h))


class DCGANDiscriminator(nn.Module):
    def __init__(self, channels=32, spectral_norm=False, batchnorm=True, dtype=None):
        super().__init__()
        self.channels = int(channels)
        self.use_spectral_norm = bool(spectral_norm)
        self.use_batchnorm = bool(batchnorm)
        c = self.channels
        self.conv1 = nn.Conv2d(1, c, 4, stride=2, padding=1, dtype=dtype)
        self.conv2 = nn.Conv2d(c, 2 * c, 4, stride=2, padding=1,
                               bias=not self.use_batchnorm, dtype=dtype)
        if self.use_batchnorm:
            self.bn2 = nn.BatchNorm2d(2 * c, dtype=dtype)
        self.fc = nn.Linear(2 * c * 7 * 7, 1, dtype=dtype)
        if self.use_spectral_norm:
            for layer in (self.conv1, self.conv2, self.fc):
                nn.utils.spectral_norm(layer)

    def forward(self, x):
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = self.conv2(h)
        if self.use_batchnorm:
            h = self.bn2(h)
        h = F.leaky_relu(h, 0.2)
        return self.fc(h.flatten(1)).reshape(x.shape[0])


def dcgan_init_(module, generator):
    """DCGAN's initialisation: conv/linear weights N(0, 0.02), biases 0, BatchNorm
    scale N(1, 0.02) and shift 0.  Spectral-normed layers get it on ``weight_orig``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = m._parameters.get("weight")
            if weight is None:
                weight = m._parameters.get("weight_orig")
            init.normal_(weight, 0.0, 0.02, generator=generator)
            if m.bias is not None:
                init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            init.normal_(m.weight, 1.0, 0.02, generator=generator)
            init.zeros_(m.bias)
    return module


def default_init_(module, generator):
    """PyTorch's default initialisation, redrawn from ``generator`` (reproducible)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if "weight_orig" in m._parameters:  # spectral norm: re-init the raw weight
                weight = m._parameters["weight_orig"]
                init.kaiming_uniform_(weight, a=np.sqrt(5), generator=generator)
                fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
                if m.bias is not None:
                    init.uniform_(m.bias, -1 / np.sqrt(fan_in), 1 / np.sqrt(fan_in),
                                  generator=generator)
            else:
                m.reset_parameters(generator=generator)
    return module
