"""WaveNet (van den Oord et al. 2016) with fast incremental generation (Paine et al. 2016)."""
from .model import WaveNet  # noqa: F401
from . import experiment  # noqa: F401,E402  (registers ``tinygen train wavenet``)
