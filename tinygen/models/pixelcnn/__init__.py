"""PixelCNN and gated PixelCNN: autoregressive models of 8-bit images.

    gated_layer.py GatedPixelCNNLayer: one layer of the gated model's vertical and
                   horizontal stacks
    networks.py    PixelCNN, GatedPixelCNN (softmax or discretized logistic mixture head;
                   NLL, bits/dim, sampling, completion)
    sampling.py    the samplers' ways to get an output: naive, windowed, and the gated
                   model's incremental one (per-layer row and column caches)
    experiment.py  ``tinygen train pixelcnn`` / ``gated-pixelcnn`` (test bits/dim)
"""
from .gated_layer import GatedPixelCNNLayer  # noqa: F401
from .networks import PixelCNN, GatedPixelCNN  # noqa: F401
from .experiment import (  # noqa: F401
    PixelCNNExperiment, MaskedPixelCNNExperiment, GatedPixelCNNExperiment,
)
