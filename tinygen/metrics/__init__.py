"""Evaluation metrics for generative models (numpy only, float64)."""
from .frechet import (  # noqa: F401
    frechet_distance, feature_statistics, sqrtm_psd, fd_fmnist, fd_floor, fd_from_features,
    reference_statistics, images_to_unit,
)
