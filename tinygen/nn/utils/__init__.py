"""Helpers that act on a model's parameters (gradient clipping, spectral norm, weight
averaging)."""
from .clip_grad import clip_grad_norm_, clip_grad_value_  # noqa: F401
from .spectral_norm import spectral_norm, remove_spectral_norm  # noqa: F401
from .ema import ema_copy, ema_decay, ema_update_  # noqa: F401
