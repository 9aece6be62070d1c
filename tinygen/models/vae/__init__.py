"""Variational autoencoders on Fashion-MNIST (registered as ``tinygen train vae`` and
``tinygen train vae-mlp``).

    model.py       VAE: encode/decode contract, ELBO, importance-weighted bound (IWAE),
                   sampling, reconstructions, latent interpolation
    networks.py    MLPVAE and ConvVAE (strided convs down, transposed convs up)
    experiment.py  the Experiments the shared runner trains and evaluates

The likelihoods (Bernoulli, discretised logistic) live in ``tinygen.models.likelihoods``,
shared with the other model families.
"""
from .model import VAE  # noqa: F401
from .networks import MLPVAE, ConvVAE  # noqa: F401
from .experiment import (  # noqa: F401
    VAEExperiment, ConvVAEExperiment, MLPVAEExperiment, COMMON_DEFAULTS, ARCHITECTURES,
)
