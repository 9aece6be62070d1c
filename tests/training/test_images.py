"""PNG sample grids and loss plots: valid images of the expected size and layout."""
import math

import numpy as np
import pytest
from PIL import Image

from tinygen.training.history import History
from tinygen.training.images import (
    format_tick, make_image_grid, nice_ticks, save_image_grid, save_loss_plot,
)


def open_png(path):
    with Image.open(path) as im:
        im.verify()  # a complete, valid PNG
    im = Image.open(path)
    assert im.format == "PNG"
    return im


def test_grey_grid_layout(tmp_path):
    images = np.stack([np.full((28, 28), 10 * i, np.uint8) for i in range(10)])
    path = tmp_path / "grid.png"
    grid = save_image_grid(images, path, nrow=4, padding=2)
    im = open_png(path)
    assert im.mode == "L" and im.size == (4 * 30 + 2, 3 * 30 + 2)
    a = np.asarray(im)
    np.testing.assert_array_equal(a, grid)
    assert a[2, 2] == 0 and a[2, 32] == 10 and a[32, 2] == 40  # tiles in row-major order
    assert a[0, 0] == 255 and a[-1, -1] == 255                  # padding / empty cells
    assert (a[62:90, 32:60] == 90).all() and (a[62:90, 62:120] == 255).all()


def test_default_grid_is_square_ish(tmp_path):
    save_image_grid(np.zeros((64, 1, 28, 28), np.uint8), tmp_path / "g.png")
    im = open_png(tmp_path / "g.png")
    assert im.size == (8 * 30 + 2, 8 * 30 + 2)


def test_rgb_grid_and_scale(tmp_path):
    images = np.zeros((3, 3, 5, 5), np.uint8)
    images[:, 0] = 200  # red
    save_image_grid(images, tmp_path / "rgb.png", nrow=3, padding=1, scale=2)
    im = open_png(tmp_path / "rgb.png")
    assert im.mode == "RGB" and im.size == (3 * 11 + 1, 11 + 1)
    assert im.getpixel((1, 1)) == (200, 0, 0)


@pytest.mark.parametrize("images, match", [
    (np.zeros((4, 28, 28), np.float32), "uint8"),
    (np.zeros((4, 2, 28, 28), np.uint8), "C in"),
    (np.zeros((28, 28), np.uint8), "shape"),
    (np.zeros((0, 28, 28), np.uint8), "no images"),
])
def test_grid_errors(images, match):
    with pytest.raises(ValueError, match=match):
        make_image_grid(images)


def test_loss_plot_is_a_valid_png(tmp_path):
    h = History()
    rng = np.random.default_rng(0)
    for step in range(1, 301):
        losses = {"d_loss": 1.0 + math.exp(-step / 50) + 0.1 * rng.standard_normal()}
        if step % 5 == 0:
            losses["g_loss"] = 3.0 - step / 200
        h.append(step, 1 + step // 100, losses)
    path = tmp_path / "loss.png"
    save_loss_plot(h, path)
    im = open_png(path)
    assert im.size == (800, 480) and im.mode == "RGB"
    a = np.asarray(im.convert("RGB")).astype(int)
    # both line colours are drawn (tab10 blue and orange)
    assert (np.abs(a - [31, 119, 180]).sum(axis=2) < 30).sum() > 100
    assert (np.abs(a - [255, 127, 14]).sum(axis=2) < 30).sum() > 100
    assert (a.sum(axis=2) < 100).sum() > 500  # axes, ticks and text in black


@pytest.mark.parametrize("history", [
    {},                                   # nothing yet
    {"loss": [2.0]},                      # one point
    {"loss": [1.0, 1.0, 1.0]},            # constant
    {"loss": [float("nan"), 1.0, float("inf")]},
    {"a": [1e6, 2e6], "b": [3e-5, 1e-5]},
])
def test_loss_plot_edge_cases(tmp_path, history):
    save_loss_plot(history, tmp_path / "p.png", width=400, height=300)
    assert open_png(tmp_path / "p.png").size == (400, 300)


def test_loss_plot_from_state_dict(tmp_path):
    h = History()
    for s in range(1, 4):
        h.append(s, 1, {"loss": 1.0 / s})
    save_loss_plot(h.state_dict(), tmp_path / "p.png")
    assert open_png(tmp_path / "p.png").size == (800, 480)


def test_nice_ticks():
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(0.13, 0.91) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert format_tick(0.25, [0.0, 0.25]) == "0.25"
    assert format_tick(200.0, [0.0, 200.0]) == "200"
    assert format_tick(1.5, [1.0, 1.5]) == "1.5"
