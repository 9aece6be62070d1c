"""How the PixelCNN samplers get the head's output at pixel (r, c), given the pixels drawn
so far: three ways, all exact (they differ from each other by float rounding only, so
they draw the same images from the same generator).

Each is made for one batch being filled in place (``x``, uint8 (n, C, H, W)) and asked
``at(r, c)`` in raster order; it returns the output at (r, c) for every image as numpy
float64: logits (n, n_classes, C) for the softmax head, mixture parameters (n, P) for
the mixture head.  The softmax head asks once per sub-pixel (for C=3, after each
colour is drawn); the mixture head once per pixel.

``naive``        the whole network on the whole image, every time (the reference).
``windowed``     the whole network on the window of rows r - receptive_rows .. r and
                 columns c - receptive_left .. c + receptive_right (any PixelCNN).
``incremental``  the gated PixelCNN only: its stacks' per-layer features are cached,
                 the vertical stack advanced a row per row, the horizontal stack a column
                 per pixel (see ``GatedIncremental``).
"""
import numpy as np

from ...autograd import Tensor, no_grad
from ...backend import array_module, to_numpy


def _at(out, r, c):
    """The head's output at (r, c) of a network pass, as numpy float64."""
    return np.asarray(to_numpy(out.data[..., r, c]), dtype=np.float64)


class Naive:
    """The whole network on the whole image for every output."""

    def __init__(self, model, x, cond):
        self.model, self.x, self.cond = model, x, cond

    def at(self, r, c):
        with no_grad():
            return _at(self.model(self.model.scale(self.x), self.cond), r, c)


class Windowed:
    """The whole network on the window the output at (r, c) sees: rows r - receptive_rows
    .. r, columns c - receptive_left .. c + receptive_right.  Exact: zero padding at the
    window's edges only reaches features the output at (r, c) never reads."""

    def __init__(self, model, x, cond):
        self.model, self.x, self.cond = model, x, cond

    def at(self, r, c):
        m = self.model
        top, left = max(0, r - m.receptive_rows), max(0, c - m.receptive_left)
        window = self.x[:, :, top:r + 1, left:c + m.receptive_right + 1]
        with no_grad():
            return _at(m(m.scale(window), self.cond), r - top, c - left)


class GatedIncremental:
    """The gated PixelCNN with per-layer caches: O(layers) work per pixel.

    The horizontal stack at row r sees the vertical stack only through row r - 1
    (``down_shift``), all of whose inputs are drawn when row r starts; its convs are one
    row high and see only columns <= c (and layer 0 not even c).  So:

    * at the start of row r, each layer's ``vertical_part`` runs once on its vertical
      input's rows max(0, r - kh) .. r (full width; kh the vertical kernel's height):
      row r - 1 of v' (the next layer's input) and row r of from_vertical are exact
      there (row r's input is not drawn yet, and nothing kept reads it).  Rows r - kh ..
      r - 1 of each layer's input are kept in a buffer that moves down a row per row.
    * at pixel (r, c), each layer's ``horizontal_part`` runs on columns c - kw .. c of its
      input's row r (kw the horizontal kernel's width: layer 0 reads c - kw .. c - 1, the
      others c - kw + 1 .. c), whose columns < c were computed at the earlier pixels of
      the row and column c just now by the layer below; column c of the output and of
      the skip are kept.  Layer 0's input is the image row itself (column c unread).
    * per sub-pixel: the head on the summed skips at (r, c) and the current pixel (whose
      drawn colours only the C=3 softmax head's mask-A conv reads).

    The layer's math stays in ``ConditionalGatedLayer``: this class only chooses which
    rows and columns each part runs on and keeps their results.
    """

    def __init__(self, model, x, cond):
        self.model, self.x = model, x
        layers = model.layers
        for layer in layers:
            if layer.horizontal.kernel_size[0] != 1:
                raise ValueError("the incremental sampler needs one-row horizontal kernels, got "
                                 f"{layer.horizontal.kernel_size}; use fast='windowed'")
        n, _, _, width = x.shape
        p = model._parameter()
        xp = array_module(p.data)
        with no_grad():
            self.biases = [layer.condition_bias(cond) for layer in layers]
        self.kh = layers[0].vertical.kernel_size[0]
        self.kw = layers[0].horizontal.kernel_size[1]
        # layer i's vertical input at rows r - kh .. r
        self.v_rows = [xp.zeros((n, layer.vertical.in_channels, self.kh + 1, width), p.dtype)
                       for layer in layers]
        self.from_vertical = [None] * len(layers)      # row r of each layer's term
        # layer i's horizontal output in row r (= layer i+1's input), columns < c so far
        self.h_rows = [xp.zeros((n, layer.horizontal_out.out_channels, 1, width), p.dtype)
                       for layer in layers]
        self.row, self.column, self.skips = -1, None, None

    def at(self, r, c):
        if (r, c) != (self.row, self.column):
            assert r > self.row and c == 0 or r == self.row and c == self.column + 1, \
                "the incremental sampler visits pixels in raster order"
            with no_grad():
                while self.row < r:
                    self.row += 1
                    self._start_row(self.row)
                self.skips = self._stacks_at(r, c)
            self.column = c
        m = self.model
        with no_grad():
            out = m._head(self.skips, m.scale(self.x[:, :, r:r + 1, c:c + 1]))
        return _at(out, 0, 0)

    def _start_row(self, r):
        """Row r - 1 is drawn: move each buffer down a row, run the vertical stack."""
        for rows in self.v_rows:
            rows[:, :, :-1] = rows[:, :, 1:].copy()
        if r > 0:
            self.v_rows[0][:, :, -2:-1] = self.model.scale(self.x[:, :, r - 1:r]).data
        # rows >= 0 only: down_shift must bring zeros into row 0 (not the features of a
        # row above the image), and the conv pads the top with zeros itself
        top = max(0, self.kh - r)
        for i, layer in enumerate(self.model.layers):
            v_out, from_vertical = layer.vertical_part(Tensor._make(self.v_rows[i][:, :, top:]),
                                                       self.biases[i])
            self.from_vertical[i] = from_vertical.data[:, :, -1:]
            if r > 0 and i + 1 < len(self.v_rows):     # (row 0 has no row above)
                self.v_rows[i + 1][:, :, -2:-1] = v_out.data[:, :, -2:-1]

    def _stacks_at(self, r, c):
        """The skips at (r, c), summed over layers in the forward's order."""
        left = max(0, c - self.kw)
        h = self.model.scale(self.x[:, :, r:r + 1, left:c + 1])
        skips = None
        for i, layer in enumerate(self.model.layers):
            h_out, skip = layer.horizontal_and_skip(
                h, Tensor._make(self.from_vertical[i][..., left:c + 1]))
            self.h_rows[i][..., c] = h_out.data[..., -1]
            h = Tensor._make(self.h_rows[i][..., left:c + 1])
            skip = Tensor._make(skip.data[..., -1:])
            skips = skip if skips is None else skips + skip
        return skips


SAMPLERS = {"naive": Naive, "windowed": Windowed, "incremental": GatedIncremental}
