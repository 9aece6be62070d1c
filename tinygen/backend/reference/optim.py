"""The optimizers' per-parameter arithmetic in plain array code (numpy or cupy): the
oracle for the fused numba kernel (``numba_kernels/optim.py``).  Scalars are Python
floats, which numpy treats as weak, so float32 state stays float32."""


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, beta1, beta2, eps,
              step_size, bias_correction2_sqrt):
    """One Adam update of ``param`` in place (``max_exp_avg_sq``: amsgrad's buffer or None)."""
    from .. import array_module

    xp = array_module(param)
    exp_avg += (1 - beta1) * (grad - exp_avg)  # lerp, as PyTorch writes it
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * (grad * grad)
    second = exp_avg_sq
    if max_exp_avg_sq is not None:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    denom = xp.sqrt(second) / bias_correction2_sqrt
    denom += eps
    param -= step_size * (exp_avg / denom)
