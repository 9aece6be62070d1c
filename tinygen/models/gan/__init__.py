"""GANs on Fashion-MNIST: DCGAN, SN-GAN and WGAN-GP (registered as ``tinygen train
dcgan|sngan|wgan-gp``).

    networks.py    DCGANGenerator, DCGANDiscriminator (optional BatchNorm / spectral norm)
    losses.py      the loss table (minimax, non-saturating, hinge, least-squares,
                   wasserstein, wgan-gp), gradient penalty, weight clipping
    experiment.py  the Experiment the shared runner trains
"""
from .networks import DCGANGenerator, DCGANDiscriminator, dcgan_init_, default_init_  # noqa: F401
from .losses import LOSSES, gradient_penalty, interpolate, clip_parameters_  # noqa: F401
from .experiment import (  # noqa: F401
    GANExperiment, DCGANExperiment, SNGANExperiment, WGANGPExperiment, PRESETS,
)
