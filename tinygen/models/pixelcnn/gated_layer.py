"""One layer of the gated PixelCNN: the vertical and horizontal stacks of van den Oord
et al. 2016 built of ``tinygen.nn``'s shifted convs, with the gate between them."""
from ...nn.conv import Conv2d, DownRightShiftedConv2d, DownShiftedConv2d
from ...nn._validate import positive_int
from ...nn.module import Module
from ...ops.conv_pixelcnn import down_shift_conv1x1
from ...ops.gated_activation import gated_activation


def _gate(features):
    """tanh(a) * sigmoid(b) with (a, b) the two channel halves: the fused op (one pass
    each way, no slices of the features and no scatter of their gradients)."""
    return gated_activation(features, axis=1)


class GatedPixelCNNLayer(Module):
    """One layer of the gated PixelCNN (van den Oord et al. 2016), without conditioning.

        v_feat = DownShiftedConv2d(v)                       (2*channels, rows <= r)
        v'     = gate(v_feat)
        h_feat = DownRightShiftedConv2d(h) + Conv1x1(down_shift(v_feat))
        h'     = Conv1x1(gate(h_feat)) (+ h, the residual, after the first layer)

    gate(a, b) = tanh(a) * sigmoid(b).  ``first=True`` makes the horizontal conv
    exclude the current pixel (mask A) and drops the residual.  The output h' at
    pixel (r, c) depends only on pixels before it in raster order, and with
    enough layers on all of them (no blind spot); v' is never an output by itself.

    The math is split in two (``forward`` is one then the other) because the
    horizontal stack at row r sees the vertical stack only through row r - 1:
    ``vertical_part`` gives v' and the vertical term of h_feat, ``horizontal_part``
    the rest.  An incremental sampler runs the first once per row and the second
    once per pixel, on the few columns it reads.
    """

    def __init__(self, in_channels, channels, kernel_size=3, first=False, dtype=None,
                 device=None):
        super().__init__()
        k = positive_int("kernel_size", kernel_size)
        if k % 2 == 0:
            raise ValueError(f"GatedPixelCNNLayer: kernel_size must be odd, got {k}")
        self.first = bool(first)
        if not self.first and in_channels != channels:
            raise ValueError("GatedPixelCNNLayer: after the first layer in_channels must equal "
                             f"channels (the residual), got {in_channels} and {channels}")
        kw = dict(dtype=dtype, device=device)
        self.vertical = DownShiftedConv2d(in_channels, 2 * channels, (k // 2 + 1, k), **kw)
        self.horizontal = DownRightShiftedConv2d(in_channels, 2 * channels, (1, k // 2 + 1),
                                                 include_current=not self.first, **kw)
        self.vertical_to_horizontal = Conv2d(2 * channels, 2 * channels, 1, **kw)
        self.horizontal_out = Conv2d(channels, channels, 1, **kw)

    def vertical_part(self, v, bias=None):
        """(v', from_vertical): the vertical stack's output and its term of h_feat,
        Conv1x1(down_shift(v_feat)), whose row r depends on rows < r of v only.
        ``bias``: None or (v_bias, h_bias), added to v_feat and to from_vertical
        (class conditioning: a per-image bias of both stacks' pre-gate features)."""
        v_feat = self.vertical(v)
        link = self.vertical_to_horizontal    # its 1x1 conv of down_shift(v_feat)
        from_vertical = down_shift_conv1x1(v_feat, link.weight, link.bias)
        if bias is not None:
            v_feat = v_feat + bias[0]
            from_vertical = from_vertical + bias[1]
        return _gate(v_feat), from_vertical

    def horizontal_part(self, h, from_vertical):
        """(h', gate(h_feat)) given ``vertical_part``'s term; the gated features are
        also returned for a skip connection.  Output (r, c) reads h at row r, columns
        c-kw+1..c (c-kw..c-1 in the first layer), and from_vertical at (r, c)."""
        # the horizontal conv + from_vertical, and the residual h, summed by the convs
        gated = _gate(self.horizontal(h, residual=from_vertical))
        return self.horizontal_out(gated, residual=None if self.first else h), gated

    def forward(self, v, h):
        v_out, from_vertical = self.vertical_part(v)
        h_out, _ = self.horizontal_part(h, from_vertical)
        return v_out, h_out
