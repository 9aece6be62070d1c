"""PNG output of a run, drawn with Pillow only: sample grids and the loss-curve plot.

    save_image_grid(samples_uint8, "samples.png")        # (n, H, W) or (n, C, H, W)
    save_loss_plot(history, "loss.png")                  # one line per loss name

Both write atomically (temp file + rename), so a viewer never sees half a PNG.
"""
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tinygen.serialization import atomic_open

# matplotlib's "tab10": distinguishable, and familiar to anyone who reads loss plots.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
           (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
           (188, 189, 34), (23, 190, 207)]


# --- image grids ----------------------------------------------------------------------

def make_image_grid(images, nrow=None, padding=2, pad_value=255, scale=1):
    """Tile uint8 images into one array: (H', W') for grey images, (H', W', 3) for RGB.

    images: (n, H, W) or (n, C, H, W) with C in {1, 3}, dtype uint8 (see
    ``tinygen.models.experiment.to_uint8_images`` for float images). nrow: images per
    row (default: ceil(sqrt(n)), a square-ish grid). scale: integer upsampling of
    every pixel (nearest neighbour) so small images stay visible.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0..255), got {images.dtype}; convert "
                         f"with tinygen.models.experiment.to_uint8_images")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (n, H, W) or (n, C, H, W) with C in "
                         f"{{1, 3}}, got {images.shape}")
    n, c, h, w = images.shape
    if n == 0:
        raise ValueError("no images to put in a grid")
    nrow = int(nrow) if nrow else math.ceil(math.sqrt(n))
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    padding, scale = int(padding), int(scale)
    if padding < 0 or scale < 1:
        raise ValueError(f"need padding >= 0 and scale >= 1, got {padding}, {scale}")
    if scale > 1:
        images = images.repeat(scale, axis=2).repeat(scale, axis=3)
        h, w = h * scale, w * scale
    ncol_rows = math.ceil(n / nrow)
    grid = np.full((c, padding + ncol_rows * (h + padding), padding + nrow * (w + padding)),
                   pad_value, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[:, top:top + h, left:left + w] = images[i]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def save_image_grid(images, path, nrow=None, padding=2, pad_value=255, scale=1):
    """Write ``make_image_grid(images, ...)`` to ``path`` as PNG; returns the grid array."""
    grid = make_image_grid(images, nrow=nrow, padding=padding, pad_value=pad_value,
                           scale=scale)
    _save_png(Image.fromarray(grid), path)
    return grid


def _save_png(image, path):
    with atomic_open(os.fspath(path), "wb") as f:
        image.save(f, format="PNG")


# --- loss plot ------------------------------------------------------------------------

def save_loss_plot(history, path, width=800, height=480, smooth=None, title="training loss"):
    """Draw one line per loss name against the step number and write a PNG.

    history: a ``History``, its ``state_dict()``, or ``{name: values}`` (steps 1..n).
    Long runs are smoothed by a moving average over ``smooth`` steps (default: about a
    fiftieth of the run), drawn over the faint raw values. The y range ignores the
    most extreme 1% at each end so one spike (a GAN's first steps) does not flatten
    the curves; values outside it are drawn at the border.
    """
    steps, losses = _columns(history)
    image = Image.new("RGB", (int(width), int(height)), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, right, top, bottom = 72, width - 16, 36, height - 48
    if not losses or len(steps) == 0:
        draw.text((left, top), "no losses recorded yet", fill="black", font=font)
        _save_png(image, path)
        return image

    # Each loss as its own series: the steps where it was reported (a GAN's generator
    # loss may come every n_critic steps), smoothed over its own points.
    steps = np.asarray(steps, dtype=np.float64)
    series = {}
    for name, values in losses.items():
        ok = np.isfinite(values)
        vals = values[ok]
        window = int(smooth) if smooth else max(1, len(vals) // 50)
        series[name] = (steps[ok], vals, _moving_average(vals, window), window)
    window = max((s[3] for s in series.values()), default=1)
    finite = np.concatenate([s[1] for s in series.values()] + [np.zeros(0)])
    if finite.size == 0:
        lo, hi = 0.0, 1.0
    else:
        lo, hi = np.percentile(finite, [1, 99]) if finite.size >= 100 else (finite.min(), finite.max())
        fin_s = np.concatenate([s[2] for s in series.values()])
        lo, hi = float(min(lo, fin_s.min())), float(max(hi, fin_s.max()))
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    yticks = nice_ticks(lo, hi)
    lo, hi = min(lo, yticks[0]), max(hi, yticks[-1])
    x0, x1 = float(steps[0]), float(steps[-1])
    if x1 <= x0:
        x0, x1 = x0 - 1.0, x0 + 1.0
    xticks = [t for t in nice_ticks(x0, x1, 6) if x0 <= t <= x1]

    def px(x):
        return left + (x - x0) / (x1 - x0) * (right - left)

    def py(y):
        return bottom - (np.clip(y, lo, hi) - lo) / (hi - lo) * (bottom - top)

    # grid, axes and ticks
    for t in yticks:
        y = py(t)
        draw.line([(left, y), (right, y)], fill=(230, 230, 230))
        label = format_tick(t, yticks)
        tw, th = _text_size(draw, label, font)
        draw.text((left - 6 - tw, y - th / 2), label, fill="black", font=font)
        draw.line([(left - 4, y), (left, y)], fill="black")
    for t in xticks:
        x = px(t)
        draw.line([(x, top), (x, bottom)], fill=(230, 230, 230))
        label = format_tick(t, xticks)
        tw, th = _text_size(draw, label, font)
        draw.text((x - tw / 2, bottom + 6), label, fill="black", font=font)
        draw.line([(x, bottom), (x, bottom + 4)], fill="black")
    draw.rectangle([left, top, right, bottom], outline="black")
    xlabel = "step"
    tw, _ = _text_size(draw, xlabel, font)
    draw.text(((left + right) / 2 - tw / 2, bottom + 24), xlabel, fill="black", font=font)
    heading = title + (" (bold: moving average, faint: every step)" if window > 1 else "")
    tw, _ = _text_size(draw, heading, font)
    draw.text(((left + right) / 2 - tw / 2, 12), heading, fill="black", font=font)
    draw.text((8, 12), "loss", fill="black", font=font)

    # curves: faint raw values, then the smoothed line
    for i, (name, (xs, raw, smoothed, w)) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        if w > 1:
            faint = tuple(int(255 - 0.3 * (255 - c)) for c in color)
            _polyline(draw, px(xs), py(raw), faint)
        _polyline(draw, px(xs), py(smoothed), color, width=2)

    # legend, top right inside the axes
    names = list(losses)
    sizes = [_text_size(draw, nm, font) for nm in names]
    box_w = 34 + max(s[0] for s in sizes)
    line_h = max(12, max(s[1] for s in sizes) + 6)
    bx1, by0 = right - 8, top + 8
    bx0, by1 = bx1 - box_w, by0 + 6 + line_h * len(names)
    draw.rectangle([bx0, by0, bx1, by1], fill="white", outline=(160, 160, 160))
    for i, (name, (tw, th)) in enumerate(zip(names, sizes)):
        y = by0 + 3 + i * line_h + line_h / 2
        draw.line([(bx0 + 6, y), (bx0 + 24, y)], fill=PALETTE[i % len(PALETTE)], width=3)
        draw.text((bx0 + 30, y - th / 2), name, fill="black", font=font)
    _save_png(image, path)
    return image


def nice_ticks(lo, hi, count=5):
    """Round tick values (1, 2, 2.5, 5 x 10^k apart) covering [lo, hi]."""
    span = hi - lo
    if not math.isfinite(span) or span <= 0:
        return [lo]
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        step = m * magnitude
        if span / step <= count:
            break
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t < hi + step * (1 - 1e-9):
        ticks.append(round(t / step) * step)
        t += step
    return ticks


def format_tick(value, ticks):
    """A label with just enough decimals to tell the ticks apart."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value) or 1.0
    if abs(value) >= 1e5 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.3g}"
    decimals = 0
    while decimals < 8 and abs(round(step, decimals) - step) > 1e-9 * step:
        decimals += 1
    return f"{value:.{decimals}f}"


def _columns(history):
    if hasattr(history, "state_dict"):
        history = history.state_dict()
    if "losses" in history and isinstance(history["losses"], dict):
        losses = {k: np.asarray(v, dtype=np.float64) for k, v in history["losses"].items()}
        steps = np.asarray(history.get("steps", np.arange(1, len(next(iter(losses.values()), [])) + 1)))
    else:
        losses = {k: np.asarray(v, dtype=np.float64) for k, v in history.items()}
        n = max((len(v) for v in losses.values()), default=0)
        if any(len(v) != n for v in losses.values()):
            raise ValueError("loss columns have different lengths")
        steps = np.arange(1, n + 1)
    return steps, losses


def _moving_average(values, window):
    """Mean of the finite values among the last ``window`` (NaN where there are none)."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1:
        return values
    ok = np.isfinite(values)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, values, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    count = ccount[idx] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (csum[idx] - csum[lo]) / count
    out[count == 0] = np.nan
    return out


def _polyline(draw, xs, ys, color, width=1):
    run = [(float(x), float(y)) for x, y in zip(xs, ys)]
    if len(run) == 1:
        x, y = run[0]
        draw.ellipse([x - 1, y - 1, x + 1, y + 1], fill=color)
    elif run:
        draw.line(run, fill=color, width=width, joint="curve" if width > 1 else None)


def _text_size(draw, text, font):
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    return x1 - x0, y1 - y0
