"""WaveNet over mu-law codes, with Fast-WaveNet generation.

Convention: ``forward(codes)`` with codes (N, T) returns logits (N, Q, T) where the
logits at t are the distribution of x_t given x_<t.  The network's input at t is the
one-hot of x_{t-1}; at t = 0 it is the all-zero "start" vector (so the first
distribution is the model's unconditional one).  ``cross_entropy(logits, codes)`` is
therefore the NLL of the whole sequence, with no off-by-one slicing by the caller.

Architecture (per layer l, dilation d_l, R residual, S skip channels):

    h_0   = Conv1x1(onehot)                                   (an embedding)
    z     = CausalConv1d(R, 2R, k, dilation=d_l)(h_l) [+ class term_l] [+ local term_l]
    g     = tanh(z[:R]) * sigmoid(z[R:])
    h_l+1 = h_l + Conv1x1(R, R)(g);   skip += Conv1x1(R, S)(g)
    logits = Conv1x1(S, Q)(relu(Conv1x1(S, S)(relu(skip))))

Global conditioning (``global_classes``): class term_l = V_l onehot(class), constant
over time (van den Oord et al. 2016, section 2.5).

Local conditioning (``local_channels``, ``local_hop``; section 2.6): features
(N, M, F) at one frame per ``local_hop`` samples are upsampled to the sample rate by
repetition -- frame j covers samples [j*hop, (j+1)*hop) -- and enter every layer's gate
through its own 1x1 conv: local term_l(t) = W_l y_{t // hop}, W_l (2R, M) holding the
paper's W_f,l (rows [:R]) and W_g,l (rows [R:]).  Why repetition + 1x1 and not the
paper's learned transposed conv: a transposed conv with stride = kernel = hop gives
each sample a phase-dependent linear map of the same single frame, so both see
exactly the same frames (the receptive field below is identical); with repetition
the term is constant over a frame, so training computes W_l y at the frame rate (hop
times fewer products) and generation computes it once per frame per layer and hands
the per-sample kernel a plain additive gate bias, the same slot the class term uses.

What the output at t sees.  The audio: x_{t-rf+1}, ..., x_{t-1} (``receptive_field``
= 1 + sum (k-1) d_l, counting the start input).  The features: the conditioning
enters after layer 1's dilated conv, so the upsampled features at positions
t - C, ..., t with C = sum over layers l >= 2 of (k-1) d_l (``local_receptive_field``
= C + 1), i.e. exactly the frames (t - C) // hop, ..., t // hop (``local_frames``,
clipped at 0): never a frame that starts after t.

Generation.  ``generate(naive=False)`` runs the Fast-WaveNet step
(``tinygen.backend.kernels`` family ``"wavenet"``: the numba kernel by default, or the
numpy reference under ``use_impl("reference")``): per-layer ring buffers of recent
inputs, so a new sample costs one step of every layer -- O(layers), independent of the
receptive field.  ``naive=True`` recomputes the full forward over the last
``receptive_field`` inputs for every sample.  Both draw ``generator.random(B)`` per
step and invert the CDF of softmax(logits / temperature), so for the same generator
state they return the same codes (up to floating-point ties at a CDF boundary; run the
model in float64 to make those vanishingly rare).
"""
import numpy as np

from ... import nn, no_grad, progress, tensor
from ...backend import array_module, to_numpy
from ...backend.kernels import kernels
from ...backend.reference.wavenet import StepWeights
from ...nn import functional as F, init


def _cycle(n_layers, dilation_cycle):
    cycle = tuple(int(d) for d in dilation_cycle)
    if not cycle or any(d < 1 for d in cycle):
        raise ValueError(f"dilation_cycle must be positive ints, got {dilation_cycle!r}")
    return tuple(cycle[i % len(cycle)] for i in range(n_layers))


class WaveNet(nn.Module):
    def __init__(self, n_layers=20, dilation_cycle=tuple(2 ** i for i in range(10)),
                 residual_channels=64, skip_channels=128, quantization=256, kernel_size=2,
                 global_classes=None, local_channels=None, local_hop=None, dtype=None):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if (local_channels is None) != (local_hop is None):
            raise ValueError("local conditioning needs both local_channels and local_hop, got "
                             f"local_channels={local_channels!r}, local_hop={local_hop!r}")
        self.dilations = _cycle(int(n_layers), dilation_cycle)
        self.residual_channels = R = int(residual_channels)
        self.skip_channels = S = int(skip_channels)
        self.quantization = Q = int(quantization)
        self.kernel_size = k = int(kernel_size)
        self.global_classes = None if global_classes is None else int(global_classes)
        self.local_channels = None if local_channels is None else int(local_channels)
        self.local_hop = None if local_hop is None else int(local_hop)
        if self.local_channels is not None and min(self.local_channels, self.local_hop) < 1:
            raise ValueError(f"local_channels and local_hop must be positive, got "
                             f"{local_channels}, {local_hop}")
        kw = dict(dtype=dtype)
        self.embed = nn.Conv1d(Q, R, 1, **kw)
        self.dilated = nn.ModuleList([nn.CausalConv1d(R, 2 * R, k, dilation=d, **kw)
                                      for d in self.dilations])
        self.residual = nn.ModuleList([nn.Conv1d(R, R, 1, **kw) for _ in self.dilations])
        self.skip = nn.ModuleList([nn.Conv1d(R, S, 1, **kw) for _ in self.dilations])
        if self.global_classes is not None:
            self.condition = nn.ModuleList([nn.Linear(self.global_classes, 2 * R, bias=False,
                                                      **kw) for _ in self.dilations])
        if self.local_channels is not None:
            self.local_condition = nn.ModuleList([
                nn.Conv1d(self.local_channels, 2 * R, 1, bias=False, **kw)
                for _ in self.dilations])
        self.out1 = nn.Conv1d(S, S, 1, **kw)
        self.out2 = nn.Conv1d(S, Q, 1, **kw)

    @property
    def receptive_field(self):
        """Inputs an output sees: 1 + sum (k-1) d_l (the input at t is x_{t-1})."""
        return 1 + sum((self.kernel_size - 1) * d for d in self.dilations)

    @property
    def local_receptive_field(self):
        """Upsampled feature positions an output sees: t - C .. t, C = sum_{l>=2} (k-1) d_l."""
        return 1 + sum((self.kernel_size - 1) * d for d in self.dilations[1:])

    def local_frames(self, t):
        """``(first, last)``: the feature frames the output at time t depends on."""
        hop = self._require_local("local_frames")
        return max(0, t - self.local_receptive_field + 1) // hop, t // hop

    def reset_parameters(self, generator=None):
        init.reset_parameters_(self, generator)

    def _dtype(self):
        return self.embed.weight.data.dtype

    def _device(self):
        return self.embed.weight.device

    def _require_local(self, what):
        if self.local_hop is None:
            raise ValueError(f"WaveNet.{what}: the model has no local conditioning")
        return self.local_hop

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
        if t > 1:   # flat indices (n*Q + code)*T + t (one index array, not meshgrid's three)
            flat = ((np.arange(n)[:, None] * self.quantization + codes[:, :-1]) * t
                    + np.arange(1, t))
            x.reshape(-1)[flat.ravel()] = 1.0
        return x

    def forward(self, codes, global_class=None, local_features=None):
        """Logits (N, Q, T) of codes (N, T); ``local_features`` (N, M, F), F*hop >= T."""
        return self._net(self.shifted_one_hot(codes), global_class, local_features)

    def _net(self, onehot, global_class=None, local_features=None, start=0):
        """The network on inputs ``onehot`` (N, Q, T) at times start .. start+T-1 (the
        time fixes which feature frames the positions get)."""
        n, _, length = onehot.shape
        h = self.embed(tensor(onehot, device=self._device()))
        cond = self._class_one_hot(global_class, n)
        features = self._check_features(local_features, n, start + length)
        skip = None
        for i in range(len(self.dilations)):
            z = self.dilated[i](h)
            if cond is not None:
                b = self.condition[i](cond)
                z = z + b.reshape(b.shape[0], b.shape[1], 1)
            if features is not None:
                z = z + self._local_term(i, features, start, length)
            g = F.gated_activation(z, axis=1)
            # h + conv(g) and skip + conv(g), the sums made by the convs' kernels
            h = self.residual[i](g, residual=h)
            skip = self.skip[i](g, residual=skip)
        return self.out2(F.relu(self.out1(F.relu(skip))))

    def _local_term(self, i, features, start, length):
        """Layer i's local term at times start .. start+length-1: W_i y at the frames
        covering them, each repeated over its hop samples, cut to those times."""
        hop = self.local_hop
        first, last = start // hop, (start + length - 1) // hop
        c = self.local_condition[i](tensor(features[:, :, first:last + 1], device=self._device()))
        n, channels, frames = c.shape
        up = c.reshape(n, channels, frames, 1).broadcast_to((n, channels, frames, hop))
        offset = start - first * hop
        return up.reshape(n, channels, frames * hop)[:, :, offset:offset + length]

    def _check_features(self, features, n, length):
        """``features`` as a (n, M, F) array of the model's dtype covering ``length``
        samples, or None (after checking that matches the model)."""
        if self.local_channels is None:
            if features is not None:
                raise ValueError("WaveNet: local_features given but the model has no local "
                                 "conditioning (local_channels)")
            return None
        if features is None:
            raise ValueError("WaveNet: this model is locally conditioned; pass local_features "
                             f"(N, {self.local_channels}, frames)")
        features = np.asarray(features)
        if not np.issubdtype(features.dtype, np.floating) or features.ndim != 3 \
                or features.shape[:2] != (n, self.local_channels):
            raise ValueError(f"WaveNet: local_features must be a float array of shape ({n}, "
                             f"{self.local_channels}, frames), got {features.dtype} "
                             f"{features.shape}")
        needed = -(-length // self.local_hop)
        if features.shape[2] < needed:
            raise ValueError(f"WaveNet: local_features has {features.shape[2]} frames; "
                             f"{length} samples at hop {self.local_hop} need {needed}")
        if not np.isfinite(features).all():
            raise ValueError("WaveNet: local_features holds NaN or infinite values")
        return features.astype(self._dtype(), copy=False)

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
        return tensor(np.eye(self.global_classes, dtype=self._dtype())[c], device=self._device())

    def loss(self, codes, global_class=None, local_features=None):
        """Mean NLL in nats per sample."""
        return F.cross_entropy(self.forward(codes, global_class, local_features),
                               tensor(np.asarray(codes)))

    # --- generation -----------------------------------------------------------------------------
    def generate(self, n_samples, generator, temperature=1.0, naive=False, global_class=None,
                 local_features=None, n_sequences=None):
        """Int64 codes drawn autoregressively: (n_samples,) for one sequence, or
        (n_sequences, n_samples) for a batch drawn together.

        global_class: an int (or one per sequence).  local_features: (M, F) for one
        sequence, (n_sequences, M, F) for a batch, with F * hop >= n_samples.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        batch = 1 if n_sequences is None else int(n_sequences)
        if batch < 1:
            raise ValueError(f"n_sequences must be >= 1, got {n_sequences}")
        n_samples = int(n_samples)
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples}")
        if local_features is not None and n_sequences is None:
            local_features = np.asarray(local_features)[None]
        features = self._check_features(local_features, batch, n_samples)
        classes = None if global_class is None else \
            np.broadcast_to(np.asarray(global_class, dtype=np.int64), (batch,))
        self._class_one_hot(classes, batch)     # checks the classes against the model
        with no_grad():
            step = self._naive_stepper(batch, classes, features) if naive else \
                self._fast_stepper(batch, classes, features)
            out = np.empty((batch, n_samples), dtype=np.int64)
            previous = None                    # the start input
            for t in progress.steps(range(n_samples), "sampling audio", unit="sample"):
                logits = step(previous)
                out[:, t] = previous = sample_codes(logits, temperature,
                                                    generator.random(batch))
        return out[0] if n_sequences is None else out

    def _naive_stepper(self, batch, classes, features, history=None):
        """``step(previous) -> logits (B, Q)`` of the next sample, from a full forward
        over the last ``receptive_field`` inputs; ``history`` (optional): the inputs so
        far (None = start, else (B,) codes), e.g. to time steady-state steps in
        benchmarks."""
        rf, Q = self.receptive_field, self.quantization
        history = [] if history is None else list(history)

        def step(previous):
            history.append(previous)
            window = history[-rf:]
            x = np.zeros((batch, Q, len(window)), dtype=self._dtype())
            for j, c in enumerate(window):
                if c is not None:
                    x[np.arange(batch), c, j] = 1.0
            start = len(history) - len(window)
            logits = self._net(x, classes, features, start)
            return np.asarray(logits.data[:, :, -1], dtype=np.float64)

        return step

    def _fast_stepper(self, batch, classes, features):
        """``step(previous) -> logits (B, Q)`` from the step kernel of the weights'
        device (the conditioning terms are computed here, on the host)."""
        weights = self.step_weights()
        impl = kernels("wavenet", weights.embed, "WaveNet.generate")
        weights = impl.pack(weights)     # into the kernel's own layout, once
        ring = impl.new_ring(weights, batch)
        cond = self._step_conditioning(batch, classes, features)
        hop = self.local_hop
        start = np.full(batch, -1, dtype=np.int64)
        t = 0

        def step(previous):
            nonlocal t
            previous = start if previous is None else previous
            c = None if cond is None else cond[t // hop if features is not None else 0]
            logits = impl.step(weights, ring, t, previous, c)
            t += 1
            return to_numpy(logits).astype(np.float64)

        return step

    def step_weights(self):
        """The weights packed for one generation step, on the parameters' device
        (layout: ``StepWeights`` in ``tinygen/backend/reference/wavenet.py``)."""
        xp = array_module(self.embed.weight.data)

        def a(p):
            return xp.ascontiguousarray(p.data)

        def stack(modules, tail=False):
            return xp.ascontiguousarray(xp.stack([a(m.bias if tail else m.weight)
                                                  for m in modules]))

        return StepWeights(
            embed=xp.ascontiguousarray(a(self.embed.weight)[:, :, 0].T),
            embed_b=a(self.embed.bias),
            conv_w=xp.ascontiguousarray(stack(self.dilated).transpose(0, 3, 1, 2)),
            conv_b=stack(self.dilated, tail=True),
            res_w=stack(self.residual)[..., 0].copy(), res_b=stack(self.residual, tail=True),
            skip_w=stack(self.skip)[..., 0].copy(), skip_b=stack(self.skip, tail=True),
            out1_w=a(self.out1.weight)[:, :, 0].copy(), out1_b=a(self.out1.bias),
            out2_w=a(self.out2.weight)[:, :, 0].copy(), out2_b=a(self.out2.bias),
            dilations=np.array(self.dilations, dtype=np.int64))

    def _step_conditioning(self, batch, classes, features):
        """Every layer's gate term per frame, (frames, B, L, 2R) -- one frame (index 0)
        without local features -- or None for an unconditioned model."""
        terms = None
        if classes is not None:
            onehot = np.eye(self.global_classes, dtype=self._dtype())[classes]
            terms = np.stack([onehot @ to_numpy(c.weight.data).T
                              for c in self.condition], axis=1)[None]       # (1, B, L, 2R)
        if features is not None:
            local = np.stack([np.einsum("cm,bmf->fbc", to_numpy(c.weight.data)[:, :, 0],
                                        features) for c in self.local_condition], axis=2)
            terms = local if terms is None else local + terms
        return None if terms is None else np.ascontiguousarray(terms, dtype=self._dtype())


def sample_codes(logits, temperature, u):
    """Inverse-CDF draws from softmax(logits / temperature), one per row of ``logits``
    (B, Q), with the uniforms ``u`` (B,)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    # the first class whose CDF exceeds u * total (searchsorted 'right')
    index = (cdf <= (np.asarray(u)[:, None] * cdf[:, -1:])).sum(axis=1)
    return np.minimum(index, logits.shape[1] - 1).astype(np.int64)
