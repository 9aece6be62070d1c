"""Generative models built on tinygen and their training recipes (Experiments)."""
import importlib

from .experiment import Experiment, register, get_experiment, EXPERIMENTS  # noqa: F401

# Modules that define and register Experiments, imported on first lookup.
_FAMILIES = ("classifier", "vae", "gan", "wavenet", "pixelcnn")


def _load_all():
    for family in _FAMILIES:
        importlib.import_module(f"{__name__}.{family}")
