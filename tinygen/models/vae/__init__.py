"""Variational autoencoders on Fashion-MNIST (registered as ``tinygen train vae``,
``tinygen train vae-mlp`` and ``tinygen train vae-hier``).

    model.py       VAE: encode/decode contract, ELBO, importance-weighted bound (IWAE),
                   sampling, reconstructions, latent interpolation
    networks.py    MLPVAE and ConvVAE (strided convs down, transposed convs up)
    hierarchical.py  HierConvVAE: two stochastic layers, q(z1|x,z2) q(z2|x) (ConvHVAE)
    experiment.py  the Experiments the shared runner trains and evaluates

The likelihoods (Bernoulli, discretised logistic) live in ``tinygen.models.likelihoods``,
shared with the other model families.
"""
from .model import VAE  # noqa: F401
from .networks import MLPVAE, ConvVAE  # noqa: F401
from .hierarchical import HierConvVAE  # noqa: F401
from .experiment import (  # noqa: F401
    VAEExperiment, ConvVAEExperiment, MLPVAEExperiment, HierConvVAEExperiment,
    COMMON_DEFAULTS, ARCHITECTURES,
)
