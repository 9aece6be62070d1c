"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019), as PyTorch computes them.

Per parameter, at step t (g is the gradient):
    g = -g                                   if maximize
    p = p * (1 - lr * weight_decay)          AdamW (decoupled decay)
    g = g + weight_decay * p                 Adam with weight_decay
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g^2
    v_max = max(v_max, v)                    amsgrad (v_max replaces v below)
    denom = sqrt(v) / sqrt(1 - beta2^t) + eps
    p = p - lr / (1 - beta1^t) * m / denom
"""
import math

from ..backend.kernels import kernels
from .optimizer import Optimizer, check_number


class Adam(Optimizer):
    _decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options):
        check_number("lr", options["lr"], low=0.0)
        check_number("eps", options["eps"], low=0.0)
        betas = options["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        check_number("betas[0]", betas[0], low=0.0, high=1.0)
        check_number("betas[1]", betas[1], low=0.0, high=1.0)
        check_number("weight_decay", options["weight_decay"], low=0.0)

    def _update_group(self, group):
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        amsgrad = group["amsgrad"]
        for p, xp, g in self._gradients(group):
            state = self.state.setdefault(p, {})
            if not state:
                state["step"] = 0
                state["exp_avg"] = xp.zeros_like(p.data)
                state["exp_avg_sq"] = xp.zeros_like(p.data)
                if amsgrad:
                    state["max_exp_avg_sq"] = xp.zeros_like(p.data)
            state["step"] += 1
            step = state["step"]
            if weight_decay != 0:
                if self._decoupled_weight_decay:
                    p.data *= 1 - lr * weight_decay
                else:
                    g = g + weight_decay * p.data
            bias_correction1 = 1 - beta1 ** step
            bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
            max_sq = None
            if amsgrad:
                max_sq = state.get("max_exp_avg_sq")
                if max_sq is None:  # amsgrad switched on after the first steps
                    max_sq = state["max_exp_avg_sq"] = xp.zeros_like(p.data)
            # The arithmetic itself (one fused pass on the CPU): backend/reference/optim.py
            kernels("optim", p.data, "Adam").adam_step(
                p.data, g, state["exp_avg"], state["exp_avg_sq"], max_sq, beta1, beta2, eps,
                lr / bias_correction1, bias_correction2_sqrt)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before the Adam step."""

    _decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
