"""The optimizers' per-parameter update in one pass (numba, cached; large parameters
shared out among threads in slices): the reference
(``tinygen.backend.reference.optim``) makes eight passes over memory with temporaries;
this reads and writes each element once.  Same operations in the same order, with the
scalars rounded to the arrays' dtype first as numpy does with Python floats: the
results are bit-equal (tests/optim/test_fused_adam.py)."""
import numpy as np

from .activations import _kernel
from .chunks import share_rows
from ..reference import optim as _reference


def _adam_loop(p, g, m, v, one_minus_beta1, beta2, one_minus_beta2, eps, step_size, bc2):
    for i in range(p.size):
        gi = g[i]
        mi = m[i] + one_minus_beta1 * (gi - m[i])
        vi = v[i] * beta2
        vi = vi + one_minus_beta2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        denom = np.sqrt(vi) / bc2
        denom = denom + eps
        p[i] = p[i] - step_size * (mi / denom)


# No FMA contraction: bit-equal to numpy's separate operations.
_ADAM = _kernel(_adam_loop, contract=False)


def _flat_view(a):
    """A 1-D view of a C-contiguous array (None when there is no such view)."""
    return a.reshape(-1) if a.flags.c_contiguous else None


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, beta1, beta2, eps,
              step_size, bias_correction2_sqrt):
    # (no comprehension or generator here: this runs for every parameter on every step)
    p, m, v = _flat_view(param), _flat_view(exp_avg), _flat_view(exp_avg_sq)
    if (max_exp_avg_sq is not None or p is None or m is None or v is None
            or grad.dtype != param.dtype):
        return _reference.adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, beta1,
                                    beta2, eps, step_size, bias_correction2_sqrt)
    t = param.dtype.type
    share_rows(_ADAM, param.size, param.size, p, np.ascontiguousarray(grad).reshape(-1),
               m, v, t(1 - beta1), t(beta2), t(1 - beta2), t(eps), t(step_size),
               t(bias_correction2_sqrt))
