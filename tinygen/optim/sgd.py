"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

Per parameter, exactly PyTorch's update (g is the gradient):
    g = -g                              if maximize
    g = g + weight_decay * p            if weight_decay
    b = g (first step), else b = momentum * b + (1 - dampening) * g     if momentum
    g = g + momentum * b if nesterov, else g = b                        if momentum
    p = p - lr * g
"""
from .optimizer import Optimizer, check_number


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options):
        check_number("lr", options["lr"], low=0.0)
        check_number("momentum", options["momentum"], low=0.0)
        check_number("dampening", options["dampening"])
        check_number("weight_decay", options["weight_decay"], low=0.0)
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening == 0, got "
                             f"momentum={options['momentum']}, dampening={options['dampening']}")

    def _update_group(self, group):
        lr, momentum = float(group["lr"]), float(group["momentum"])
        dampening, weight_decay = float(group["dampening"]), float(group["weight_decay"])
        nesterov = group["nesterov"]
        for p, xp, g in self._gradients(group):
            if weight_decay != 0:
                g = g + weight_decay * p.data
            if momentum != 0:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = xp.array(g, copy=True)
                else:
                    buf *= momentum
                    buf += (1 - dampening) * g
                g = g + momentum * buf if nesterov else buf
            p.data -= lr * g
