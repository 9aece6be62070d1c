"""tinygen: a from-scratch reverse-mode autodiff engine and deep generative models.

    import tinygen as tg
    x = tg.randn(4, 3, requires_grad=True)
    loss = (x.tanh() ** 2).sum()
    loss.backward()
"""
from ._version import __version__  # noqa: F401
from .autograd import (  # noqa: F401
    Tensor, Function, no_grad, enable_grad, is_grad_enabled, set_grad_enabled, grad,
)
from .creation import (  # noqa: F401
    tensor, as_tensor, zeros, ones, empty, full, arange, linspace, eye, randn, rand, randint,
    normal, zeros_like, ones_like, full_like, randn_like, rand_like,
    float32, float64, int32, int64, uint8, bool_,
)
from .random import manual_seed, default_generator, get_rng_state, set_rng_state  # noqa: F401
from .ops import *  # noqa: F401,F403
from .backend import cuda  # noqa: F401
from .serialization import save, load  # noqa: F401
from . import testing, nn, optim, progress  # noqa: F401
from .autograd.trace import trace_backward  # noqa: F401
from .autograd.anomaly import detect_anomaly, set_detect_anomaly, is_anomaly_enabled  # noqa: F401
from . import viz  # noqa: F401
