"""PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks") and the gated
PixelCNN ("Conditional Image Generation with PixelCNN Decoders").

Both model uint8 images (N, C, H, W) (or (N, H, W) for C=1) autoregressively in raster
order.  Inputs are the images scaled to [-1, 1].  Two output heads (``output=``):

``"softmax"`` (the default; van den Oord et al.): a 256-way softmax per sub-pixel, in
raster order and, for C=3, channel order R, G, B:

    p(x) = prod_{r, c} prod_k p(x[k, r, c] | pixels before (r, c), channels < k at (r, c))

``forward`` returns logits (N, 256, C, H, W) (``cross_entropy``'s (N, classes, d...));
the targets are the uint8 values as class indices.

``"dlm"`` (PixelCNN++, Salimans et al. 2017): a discretized logistic mixture of
``mixtures`` components per pixel (``tinygen.models.logistic_mixture``), all C channels
jointly, coupled linearly for C=3:

    p(x) = prod_{r, c} p(x[:, r, c] | pixels before (r, c))

``forward`` returns the mixture parameters (N, P, H, W).  The network then must not see
any channel of the current pixel, so its masks ignore colour groups (groups_rgb=1) and
the gated model has no current-pixel path; the coupling carries R into G and B.

PixelCNN(channels=1, hidden=64, n_residual=5, output="softmax", mixtures=10)
    7x7 mask-A conv -> n_residual x [ReLU, 1x1 h->h/2, ReLU, 3x3 mask B, ReLU, 1x1 h/2->h]
    (+ residual) -> ReLU, 1x1 mask B h->h, ReLU, 1x1 mask B h->C*256 (or P).
    With C=3 and the softmax head every conv is masked with groups_rgb=3 (hidden and
    hidden/2 divisible by 3).

GatedPixelCNN(channels=1, hidden=64, n_layers=8, num_conditions=None, output="softmax",
              mixtures=10)
    GatedPixelCNNLayer stacks (vertical + horizontal, residual on the horizontal), each
    layer's gated horizontal features also go through a 1x1 skip conv; the skips are
    summed -> ReLU, 1x1, ReLU, 1x1 -> C*256 (or P).  Class conditioning adds a per-layer
    learnt bias (a bias-free Linear of the one-hot class) to both stacks' pre-gate features.
    With C=3 the stacks see no channel of the current pixel; with the softmax head a 1x1
    mask-A conv of the input (groups_rgb=3) adds the current pixel's earlier channels
    before the head, whose 1x1 convs are masked B with groups_rgb=3.

Sampling (``sample``, ``complete``) runs in raster and channel order; how the head's
output at (r, c) is computed is ``fast`` (``sampling.py``):

    False           "naive": the network on the whole image, every time (the reference)
    "windowed"      the network on the window the output sees: rows r - ``receptive_rows``
                    .. r, columns c - ``receptive_left`` .. c + ``receptive_right``
    "incremental"   gated only: per-layer caches, the vertical stack run once per row and
                    the horizontal stack once per pixel on the few columns it reads
    True            the fastest the model has: "incremental" (gated), "windowed" (PixelCNN)

The softmax head is asked once per sub-pixel and draws one ``generator.random(n)`` for
each (inverse CDF); the mixture head once per pixel and draws the pixel's component and
channels (``DiscretizedLogisticMixture.sample``).  All samplers draw the same numbers in
the same order from outputs equal up to float rounding, so they give the same images for
the same generator.
"""
import math
import numbers

import numpy as np

from ... import nn, progress
from ...autograd import no_grad
from ...creation import tensor
from ...nn import functional as F, init
from ...nn.conv import MaskedConv2d
from ..likelihoods import categorical_inverse_cdf
from ..logistic_mixture import DiscretizedLogisticMixture
from .gated_layer import GatedPixelCNNLayer
from .sampling import SAMPLERS

OUTPUTS = ("softmax", "dlm")


def _positive(name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class _AutoregressiveImageModel(nn.Module):
    """What both PixelCNNs share: input scaling, the output head's likelihood, NLL,
    bits/dim, sampling."""

    def __init__(self, channels, n_classes, image_size, num_conditions=None,
                 output="softmax", mixtures=10):
        super().__init__()
        self.channels = _positive("channels", channels)
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        self.n_classes = _positive("n_classes", n_classes)
        if output not in OUTPUTS:
            raise ValueError(f"output must be 'softmax' (256-way softmax per sub-pixel) or "
                             f"'dlm' (discretized logistic mixture), got {output!r}")
        self.output = output
        self.mixtures = _positive("mixtures", mixtures)
        self.mixture = None
        if output == "dlm":
            if self.n_classes != 256:
                raise ValueError(f"output='dlm' models 8-bit values: n_classes must be 256, "
                                 f"got {n_classes}")
            self.mixture = DiscretizedLogisticMixture(self.channels, self.mixtures)
        if isinstance(image_size, numbers.Integral):
            image_size = (int(image_size), int(image_size))
        self.image_size = tuple(int(s) for s in image_size)
        self.num_conditions = None if num_conditions is None else _positive(
            "num_conditions", num_conditions)

    # --- parameters / tensors ------------------------------------------------------------
    def reset_parameters(self, generator=None):
        """Re-draw every layer's weights from ``generator`` (a numpy Generator)."""
        init.reset_parameters_(self, generator)

    def _parameter(self):
        return next(iter(self.parameters()))

    def _tensor(self, array):
        p = self._parameter()
        return tensor(array, dtype=p.dtype, device=p.device)

    def _images(self, images):
        """uint8 (N, H, W) or (N, C, H, W) -> numpy uint8 (N, C, H, W)."""
        x = np.asarray(images)
        if x.ndim == 3 and self.channels == 1:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected images (N, {self.channels}, H, W)"
                             + (" or (N, H, W)" if self.channels == 1 else "")
                             + f", got shape {x.shape}")
        if x.dtype.kind not in "iu" or x.min(initial=0) < 0 or x.max(initial=0) >= self.n_classes:
            raise ValueError(f"images must hold integers in [0, {self.n_classes}), got "
                             f"dtype {x.dtype}")
        return x

    def scale(self, images):
        """uint8 (N, C, H, W) -> the network's input, a Tensor in [-1, 1]."""
        x = np.asarray(images, dtype=np.float64)
        return self._tensor(x * (2.0 / (self.n_classes - 1)) - 1.0)

    def _one_hot(self, classes, n):
        if self.num_conditions is None:
            if classes is not None:
                raise ValueError("this model is unconditional; classes must be None")
            return None
        if classes is None:
            raise ValueError("this model is class-conditional; pass classes")
        classes = np.broadcast_to(np.asarray(classes, dtype=np.int64), (n,))
        if classes.min() < 0 or classes.max() >= self.num_conditions:
            raise ValueError(f"classes must be in [0, {self.num_conditions})")
        return self._tensor(np.eye(self.num_conditions)[classes])

    def outputs(self, images, classes=None):
        """The head's output for uint8 images: logits (N, n_classes, C, H, W) (softmax)
        or mixture parameters (N, P, H, W) (dlm)."""
        x = self._images(images)
        return self(self.scale(x), self._one_hot(classes, len(x)))

    def logits(self, images, classes=None):
        """Logits (N, n_classes, C, H, W) for uint8 images (the softmax head)."""
        if self.output != "softmax":
            raise ValueError("logits: this model's output is a discretized logistic "
                             "mixture; use outputs() for its parameters")
        return self.outputs(images, classes)

    @property
    def _head_channels(self):
        """Output channels of the last 1x1 conv."""
        if self.mixture is not None:
            return self.mixture.parameters_per_pixel
        return self.channels * self.n_classes

    @property
    def _mask_groups(self):
        """groups_rgb of the masks: colour groups for the softmax head only (the mixture
        head's parameters must not see the current pixel at all)."""
        return self.channels if self.mixture is None else 1

    def _head_output(self, out):
        if self.mixture is not None:
            return out
        n, _, h, w = out.shape
        # output channels are grouped by colour: [R's classes, G's classes, B's classes]
        out = out.reshape(n, self.channels, self.n_classes, h, w)
        return out.permute(0, 2, 1, 3, 4)

    # --- likelihood ----------------------------------------------------------------------
    def nll(self, images, classes=None):
        """Per-image negative log-likelihood in nats, a Tensor (N,)."""
        x = self._images(images)
        out = self(self.scale(x), self._one_hot(classes, len(x)))
        if self.mixture is not None:
            per = -self.mixture.log_prob(out, x)                       # (N, H, W)
        else:
            target = tensor(x.astype(np.int64), device=self._parameter().device)
            per = F.cross_entropy(out, target, reduction="none")       # (N, C, H, W)
        return per.reshape(len(x), -1).sum(1)

    def bits_per_dim(self, images, classes=None):
        """Mean NLL in bits per sub-pixel (a float), without building a graph."""
        x = self._images(images)
        with no_grad():
            nats = self.nll(x, classes).data
        return float(nats.mean()) / (int(np.prod(x.shape[1:])) * math.log(2))

    # --- sampling ------------------------------------------------------------------------
    # how far an output sees: rows above its own, columns to its left and right
    # (set by subclasses; the windowed sampler's window)
    receptive_rows = receptive_left = receptive_right = None
    # the ways this model can compute an output while sampling (``sampling.SAMPLERS``),
    # the fastest last
    samplers = ("naive", "windowed")

    def _sampler(self, fast):
        if isinstance(fast, bool):
            return SAMPLERS[self.samplers[-1] if fast else "naive"]
        if isinstance(fast, str) and fast in self.samplers:
            return SAMPLERS[fast]
        raise ValueError(f"fast must be True, False or one of {self.samplers} for "
                         f"{type(self).__name__}, got {fast!r}")

    def _fill(self, x, cond, generator, start, fast):
        n, C, H, W = x.shape
        outputs = self._sampler(fast)(self, x, cond)
        was_training = self.training
        self.eval()
        try:
            for r in progress.steps(range(start, H), f"sampling {n} images", unit="row"):
                for c in range(W):
                    if self.mixture is not None:    # one output draws the whole pixel
                        x[:, :, r, c] = self.mixture.sample(outputs.at(r, c), generator)
                        continue
                    for k in range(C):              # the softmax: one per sub-pixel
                        logits = outputs.at(r, c)[:, :, k]
                        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
                        x[:, k, r, c] = categorical_inverse_cdf(weights, generator.random(n))
        finally:
            self.train(was_training)
        return x

    def sample(self, n, generator, classes=None, fast=True):
        """``n`` images, uint8 (n, C, H, W), drawn in raster and channel order.
        ``fast``: True, False (naive) or a name from ``samplers`` (module notes)."""
        n = _positive("n", n)
        x = np.zeros((n, self.channels) + self.image_size, dtype=np.uint8)
        x = self._fill(x, self._one_hot(classes, n), generator, 0, fast)
        return x

    def complete(self, images, rows_given, generator, classes=None, fast=True):
        """Image completion: keep rows < ``rows_given`` of ``images`` (uint8) and draw
        the rest in raster order; returns uint8 (N, C, H, W)."""
        x = self._images(images).astype(np.uint8, copy=True)
        if not 0 <= rows_given <= x.shape[2]:
            raise ValueError(f"rows_given must be in [0, {x.shape[2]}], got {rows_given}")
        x[:, :, rows_given:] = 0
        return self._fill(x, self._one_hot(classes, len(x)), generator, rows_given, fast)


class PixelCNN(_AutoregressiveImageModel):
    def __init__(self, channels=1, hidden=64, n_residual=5, n_classes=256, image_size=28,
                 output="softmax", mixtures=10, dtype=None, device=None):
        super().__init__(channels, n_classes, image_size, output=output, mixtures=mixtures)
        hidden = _positive("hidden", hidden)
        g = self._mask_groups
        if hidden % 2 or (hidden // 2) % g:
            raise ValueError(f"hidden must be even and hidden/2 divisible by channels={g}, "
                             f"got hidden={hidden}")
        self.hidden, self.n_residual = hidden, int(n_residual)
        # the 7x7 conv sees 3 rows up and 3 columns each side, each 3x3 conv one more
        self.receptive_rows = self.receptive_left = self.receptive_right = 3 + self.n_residual
        kw = dict(groups_rgb=g, dtype=dtype, device=device)
        self.input_conv = MaskedConv2d(self.channels, hidden, 7, "A", **kw)
        blocks = []
        for _ in range(self.n_residual):
            blocks.append(nn.Sequential(
                nn.ReLU(), MaskedConv2d(hidden, hidden // 2, 1, "B", **kw),
                nn.ReLU(), MaskedConv2d(hidden // 2, hidden // 2, 3, "B", **kw),
                nn.ReLU(), MaskedConv2d(hidden // 2, hidden, 1, "B", **kw)))
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(
            nn.ReLU(), MaskedConv2d(hidden, hidden, 1, "B", **kw),
            nn.ReLU(), MaskedConv2d(hidden, self._head_channels, 1, "B", **kw))

    def forward(self, x, condition=None):
        if condition is not None:
            raise ValueError("PixelCNN is unconditional")
        h = self.input_conv(x)
        for block in self.blocks:
            # h + block(h), the sum made by the block's last conv
            *inner, last = block
            out = h
            for layer in inner:
                out = layer(out)
            h = last(out, residual=h)
        return self._head_output(self.head(h))


class ConditionalGatedLayer(GatedPixelCNNLayer):
    """GatedPixelCNNLayer plus a 1x1 skip output and an optional class bias.  The
    incremental sampler runs its two parts (``vertical_part``, ``horizontal_and_skip``)
    separately, on the rows and columns it needs."""

    def __init__(self, in_channels, channels, kernel_size=3, first=False, num_conditions=None,
                 dtype=None, device=None):
        super().__init__(in_channels, channels, kernel_size, first, dtype=dtype, device=device)
        kw = dict(dtype=dtype, device=device)
        self.skip = nn.Conv2d(channels, channels, 1, **kw)
        self.condition = (None if num_conditions is None
                          else nn.Linear(num_conditions, 4 * channels, bias=False, **kw))

    def condition_bias(self, condition):
        """``vertical_part``'s bias for a one-hot condition (N, num_conditions): the
        class's learnt biases of the vertical and horizontal pre-gate features, each
        (N, 2*channels, 1, 1); None without conditioning."""
        if self.condition is None or condition is None:
            return None
        bias = self.condition(condition)
        n, c2 = bias.shape[0], bias.shape[1] // 2
        return bias[:, :c2].reshape(n, c2, 1, 1), bias[:, c2:].reshape(n, c2, 1, 1)

    def horizontal_and_skip(self, h, from_vertical, skips=None):
        """(h', skip): ``horizontal_part`` with the skip conv of its gated features (plus
        ``skips``, the earlier layers' sum, when given: added by the conv's kernels)."""
        h_out, gated = self.horizontal_part(h, from_vertical)
        return h_out, self.skip(gated, residual=skips)

    def forward(self, v, h, condition=None, skips=None):
        """(v', h', skip (+ skips))."""
        v_out, from_vertical = self.vertical_part(v, self.condition_bias(condition))
        h_out, skip = self.horizontal_and_skip(h, from_vertical, skips)
        return v_out, h_out, skip


class GatedPixelCNN(_AutoregressiveImageModel):
    samplers = ("naive", "windowed", "incremental")

    def __init__(self, channels=1, hidden=64, n_layers=8, n_classes=256, num_conditions=None,
                 kernel_size=3, image_size=28, output="softmax", mixtures=10, dtype=None,
                 device=None):
        super().__init__(channels, n_classes, image_size, num_conditions, output, mixtures)
        hidden = _positive("hidden", hidden)
        g = self._mask_groups
        if hidden % g:
            raise ValueError(f"hidden must be divisible by channels={g}, got {hidden}")
        self.hidden, self.n_layers = hidden, _positive("n_layers", n_layers)
        # the windowed sampler's window: the vertical stack grows k//2 rows up and k//2
        # columns each side a layer, the down-shift into h adds a row; the horizontal
        # stack grows k//2 columns left a layer, its first conv (current pixel excluded)
        # k//2 + 1
        half = int(kernel_size) // 2
        self.receptive_rows = self.receptive_left = self.n_layers * half + 1
        self.receptive_right = self.n_layers * half
        kw = dict(dtype=dtype, device=device)
        self.layers = nn.ModuleList([
            ConditionalGatedLayer(self.channels if i == 0 else hidden, hidden, kernel_size,
                                  first=(i == 0), num_conditions=self.num_conditions, **kw)
            for i in range(self.n_layers)])
        mkw = dict(groups_rgb=g, **kw)
        # the current pixel's earlier colours (C=3 softmax only; the stacks never see the
        # pixel, and the mixture head must not)
        self.current = MaskedConv2d(g, hidden, 1, "A", **mkw) if g > 1 else None
        self.head = nn.Sequential(
            nn.ReLU(), MaskedConv2d(hidden, hidden, 1, "B", **mkw),
            nn.ReLU(), MaskedConv2d(hidden, self._head_channels, 1, "B", **mkw))

    def forward(self, x, condition=None):
        if (condition is None) != (self.num_conditions is None):
            raise ValueError("pass a one-hot condition exactly when num_conditions is set")
        v = h = x
        skips = None
        for layer in self.layers:
            v, h, skips = layer(v, h, condition, skips)
        return self._head(skips, x)

    def _head(self, skips, x):
        """The output from the layers' summed skips and the input ``x`` at the same
        positions (whose current-pixel colours only the C=3 softmax head reads)."""
        if self.current is not None:
            skips = skips + self.current(x)
        return self._head_output(self.head(skips))
