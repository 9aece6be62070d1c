"""RMSprop (Hinton's lecture 6e; centered variant from Graves, 2013), as PyTorch computes it.

Per parameter (g is the gradient):
    g = -g                                   if maximize
    g = g + weight_decay * p                 if weight_decay
    v = alpha * v + (1 - alpha) * g^2
    centered:  a = alpha * a + (1 - alpha) * g;   avg = sqrt(v - a^2) + eps
    otherwise: avg = sqrt(v) + eps
    momentum:  b = momentum * b + g / avg;  p = p - lr * b
    otherwise: p = p - lr * g / avg
"""
from .optimizer import Optimizer, check_number


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, maximize=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options):
        check_number("lr", options["lr"], low=0.0)
        check_number("alpha", options["alpha"], low=0.0, high=1.0, high_open=False)
        check_number("eps", options["eps"], low=0.0)
        check_number("weight_decay", options["weight_decay"], low=0.0)
        check_number("momentum", options["momentum"], low=0.0)

    def _update_group(self, group):
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        weight_decay, momentum = float(group["weight_decay"]), float(group["momentum"])
        centered = group["centered"]
        for p, xp, g in self._gradients(group):
            state = self.state.setdefault(p, {})
            if not state:
                state["step"] = 0
                state["square_avg"] = xp.zeros_like(p.data)
            state["step"] += 1
            if weight_decay != 0:
                g = g + weight_decay * p.data
            square_avg = state["square_avg"]
            square_avg *= alpha
            square_avg += (1 - alpha) * (g * g)
            if centered:
                grad_avg = state.get("grad_avg")
                if grad_avg is None:
                    grad_avg = state["grad_avg"] = xp.zeros_like(p.data)
                grad_avg += (1 - alpha) * (g - grad_avg)
                avg = xp.sqrt(square_avg - grad_avg * grad_avg)
            else:
                avg = xp.sqrt(square_avg)
            avg += eps
            if momentum > 0:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = xp.zeros_like(p.data)
                buf *= momentum
                buf += g / avg
                p.data -= lr * buf
            else:
                p.data -= lr * (g / avg)
