"""tinygen: a from-scratch reverse-mode autodiff engine and deep generative models.

    import tinygen as tg
    x = tg.randn(4, 3, requires_grad=True)
    loss = (x.tanh() ** 2).sum()
    loss.backward()
"""
import os as _os

# One CPU, two thread pools: OpenBLAS's (the GEMMs) and numba's (the kernels between
# them).  An idle OpenBLAS worker spins for 2^28 cycles (~0.1 s) after every BLAS call
# before it sleeps, and on a 2-core machine it starves numba's threads: a conv VAE step
# took 310 ms on 2 threads against 90 ms on 1.  With 2^4 cycles the workers sleep at
# once and 2 threads take 80 ms.  OpenBLAS reads this when it loads, i.e. at the first
# numpy import, so it takes effect when tinygen is imported before numpy (the tinygen
# command, or `import tinygen` first); a user's own setting wins.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from ._version import __version__  # noqa: E402,F401
from .autograd import (  # noqa: E402,F401
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
