"""WaveNet over mu-law codes, with Fast-WaveNet generation.

Convention: ``forward(codes)`` with codes (N, T) returns logits (N, Q, T) where the
logits at t are the distribution of x_t given x_<t.  The network's input at t is the
one-hot of x_{t-1}; at t = 0 it is the all-zero "start" vector (so the first
distribution is the model's unconditional one).  ``cross_entropy(logits, codes)`` is
therefore the NLL of the whole sequence, with no off-by-one slicing by the caller.

Architecture (per layer l, dilation d_l, R residual, S skip channels):

    h_0   = Conv1x1(onehot)                                   (an embedding)
    z     = CausalConv1d(R, 2R, k, dilation=d_l)(h_l) [+ class bias_l]
    g     = tanh(z[:R]) * sigmoid(z[R:])
    h_l+1 = h_l + Conv1x1(R, R)(g);   skip += Conv1x1(R, S)(g)
    logits = Conv1x1(S, Q)(relu(Conv1x1(S, S)(relu(skip))))

Generation.  ``generate(naive=False)`` keeps for each layer a ring buffer of its last
(k-1)*d_l + 1 inputs, so a new sample costs one step of every layer: O(layers) plain
numpy mat-vecs, independent of the receptive field.  ``naive=True`` recomputes the full
forward over the last ``receptive_field`` inputs for every sample.  Both draw one
``generator.random()`` per sample and invert the CDF of softmax(logits / temperature),
so for the same generator state they return the same codes (up to floating-point ties
at a CDF boundary; run the model in float64 to make those vanishingly rare).
"""
import numpy as np

from ... import nn, no_grad, tensor
from ...nn import functional as F, init


def _cycle(n_layers, dilation_cycle):
    cycle = tuple(int(d) for d in dilation_cycle)
    if not cycle or any(d < 1 for d in cycle):
        raise ValueError(f"dilation_cycle must be positive ints, got {dilation_cycle!r}")
    return tuple(cycle[i % len(cycle)] for i in range(n_layers))


class WaveNet(nn.Module):
    def __init__(self, n_layers=20, dilation_cycle=tuple(2 ** i for i in range(10)),
                 residual_channels=64, skip_channels=128, quantization=256, kernel_size=2,
                 global_classes=None, dtype=None):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.dilations = _cycle(int(n_layers), dilation_cycle)
        self.residual_channels = R = int(residual_channels)
        self.skip_channels = S = int(skip_channels)
        self.quantization = Q = int(quantization)
        self.kernel_size = k = int(kernel_size)
        self.global_classes = None if global_classes is None else int(global_classes)
        kw = dict(dtype=dtype)
        self.embed = nn.Conv1d(Q, R, 1, **kw)
        self.dilated = nn.ModuleList([nn.CausalConv1d(R, 2 * R, k, dilation=d, **kw)
                                      for d in self.dilations])
        self.residual = nn.ModuleList([nn.Conv1d(R, R, 1, **kw) for _ in self.dilations])
        self.skip = nn.ModuleList([nn.Conv1d(R, S, 1, **kw) for _ in self.dilations])
        if self.global_classes is not None:
            self.condition = nn.ModuleList([nn.Linear(self.global_classes, 2 * R, bias=False,
                                                      **kw) for _ in self.dilations])
        self.out1 = nn.Conv1d(S, S, 1, **kw)
        self.out2 = nn.Conv1d(S, Q, 1, **kw)

    @property
    def receptive_field(self):
        """Inputs an output sees: 1 + sum (k-1) d_l (the input at t is x_{t-1})."""
        return 1 + sum((self.kernel_size - 1) * d for d in self.dilations)

    def reset_parameters(self, generator=None):
        init.reset_parameters_(self, generator)

    def _dtype(self):
        return self.embed.weight.data.dtype

    # --- training-time forward -----------------------------------------------------------------
    def shifted_one_hot(self, codes):
        """(N, T) codes -> (N, Q, T) network input: one-hot of x_{t-1}, zeros at t = 0."""
        codes = np.asarray(codes)
        if codes.ndim != 2:
            raise ValueError(f"WaveNet: codes must be (N, T), got shape {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.quantization):
            raise ValueError(f"WaveNet: codes must lie in [0, {self.quantization})")
        n, t = codes.shape
        x = np.zeros((n, self.quantization, t), dtype=self._dtype())
        if t > 1:
            nn_, tt = np.meshgrid(np.arange(n), np.arange(1, t), indexing="ij")
            x[nn_, codes[:, :-1], tt] = 1.0
        return x

    def forward(self, codes, global_class=None):
        return self._net(self.shifted_one_hot(codes), global_class)

    def _net(self, onehot, global_class=None):
        h = self.embed(tensor(onehot))
        cond = self._class_one_hot(global_class, onehot.shape[0])
        skip = None
        for i in range(len(self.dilations)):
            z = self.dilated[i](h)
            if cond is not None:
                b = self.condition[i](cond)
                z = z + b.reshape(b.shape[0], b.shape[1], 1)
            g = F.gated_activation(z, axis=1)
            h = h + self.residual[i](g)
            s = self.skip[i](g)
            skip = s if skip is None else skip + s
        return self.out2(F.relu(self.out1(F.relu(skip))))

    def _class_one_hot(self, global_class, n):
        if self.global_classes is None:
            if global_class is not None:
                raise ValueError("WaveNet: global_class given but the model has no "
                                 "global_classes")
            return None
        if global_class is None:
            raise ValueError("WaveNet: this model is conditioned; pass global_class")
        c = np.broadcast_to(np.asarray(global_class, dtype=np.int64), (n,))
        if c.min() < 0 or c.max() >= self.global_classes:
            raise ValueError(f"WaveNet: global_class must lie in [0, {self.global_classes})")
        return tensor(np.eye(self.global_classes, dtype=self._dtype())[c])

    def loss(self, codes, global_class=None):
        """Mean NLL in nats per sample."""
        return F.cross_entropy(self.forward(codes, global_class), tensor(np.asarray(codes)))

    # --- generation -----------------------------------------------------------------------------
    def generate(self, n_samples, generator, temperature=1.0, naive=False, global_class=None):
        """``n_samples`` int64 codes (one sequence), drawn autoregressively."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        with no_grad():
            step = self._naive_stepper(global_class) if naive else \
                self._fast_stepper(global_class)
            out = np.empty(int(n_samples), dtype=np.int64)
            previous = None                    # the start input
            for t in range(int(n_samples)):
                logits = step(previous)
                out[t] = previous = _sample(logits, temperature, generator.random())
        return out

    def _naive_stepper(self, global_class, history=None):
        """``step(previous) -> logits`` of the next sample; ``history`` (optional): the
        inputs so far (None = start), e.g. to time steady-state steps in benchmarks."""
        rf, Q = self.receptive_field, self.quantization
        history = [] if history is None else list(history)

        def step(previous):
            history.append(previous)
            window = history[-rf:]
            x = np.zeros((1, Q, len(window)), dtype=self._dtype())
            for j, c in enumerate(window):
                if c is not None:
                    x[0, c, j] = 1.0
            logits = self._net(x, None if global_class is None else [global_class])
            return np.asarray(logits.data[0, :, len(window) - 1], dtype=np.float64)

        return step

    def _fast_stepper(self, global_class):
        a = lambda p: np.asarray(p.data)     # noqa: E731
        k, R = self.kernel_size, self.residual_channels
        embed_w, embed_b = a(self.embed.weight)[:, :, 0], a(self.embed.bias)
        layers = []
        cond = self._class_one_hot(None if global_class is None else [global_class], 1)
        for i, d in enumerate(self.dilations):
            conv = self.dilated[i]
            bias = a(conv.bias).copy()
            if cond is not None:
                bias = bias + a(cond)[0] @ a(self.condition[i].weight).T
            size = (k - 1) * d + 1
            layers.append(dict(
                taps=[a(conv.weight)[:, :, j] for j in range(k)], bias=bias, d=d, size=size,
                queue=np.zeros((size, R), dtype=embed_w.dtype), pos=0,
                res_w=a(self.residual[i].weight)[:, :, 0], res_b=a(self.residual[i].bias),
                skip_w=a(self.skip[i].weight)[:, :, 0], skip_b=a(self.skip[i].bias)))
        o1w, o1b = a(self.out1.weight)[:, :, 0], a(self.out1.bias)
        o2w, o2b = a(self.out2.weight)[:, :, 0], a(self.out2.bias)

        def step(previous):
            h = embed_b.copy() if previous is None else embed_w[:, previous] + embed_b
            skip = 0.0
            for L in layers:
                q, size, d = L["queue"], L["size"], L["d"]
                q[L["pos"]] = h                  # ring buffer: slot pos holds time t
                # tap j of the causal conv multiplies the input at t - (k-1-j) d
                z = L["bias"].copy()
                for j, w in enumerate(L["taps"]):
                    z += w @ q[(L["pos"] - (k - 1 - j) * d) % size]
                L["pos"] = (L["pos"] + 1) % size
                g = np.tanh(z[:R]) * (1.0 / (1.0 + np.exp(-z[R:])))
                h = h + (L["res_w"] @ g + L["res_b"])
                skip = skip + (L["skip_w"] @ g + L["skip_b"])
            y = o1w @ np.maximum(skip, 0.0) + o1b
            return np.asarray(o2w @ np.maximum(y, 0.0) + o2b, dtype=np.float64)

        return step


def _sample(logits, temperature, u):
    """Inverse-CDF draw from softmax(logits / temperature) with the uniform ``u``."""
    z = logits / temperature
    p = np.exp(z - z.max())
    cdf = np.cumsum(p)
    return int(min(np.searchsorted(cdf, u * cdf[-1], side="right"), len(p) - 1))
