"""PixelCNN and gated PixelCNN (tinygen.models.pixelcnn): the autoregressive property end
to end (raster and colour order), the gated model's full receptive field (no blind
spot), shapes and NLL, training on real Fashion-MNIST, sampling and completion (the
row-cropped sampler gives exactly the naive sampler's images)."""
import math

import numpy as np
import pytest

import tinygen as tg
from tinygen import optim
from tinygen.data import load_fashion_mnist
from tinygen.models.pixelcnn import GatedPixelCNN, PixelCNN

SIZE = 6


def _models():
    """Small float64 models of both families, channels 1 and 3, conditional too."""
    return {
        "pixelcnn-1": PixelCNN(1, 8, 2, image_size=SIZE, dtype=np.float64),
        "pixelcnn-3": PixelCNN(3, 12, 2, image_size=SIZE, dtype=np.float64),
        "gated-1": GatedPixelCNN(1, 8, 6, image_size=SIZE, dtype=np.float64),
        "gated-3": GatedPixelCNN(3, 24, 6, image_size=SIZE, dtype=np.float64),
        "gated-cond": GatedPixelCNN(1, 8, 3, num_conditions=4, image_size=SIZE,
                                    dtype=np.float64),
    }


def _init(model, seed=0):
    model.reset_parameters(np.random.default_rng(seed))
    # non-zero biases everywhere, so that no path is silenced by chance
    rng = np.random.default_rng(seed + 1)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.data[...] = rng.uniform(-0.5, 0.5, p.shape)
    return model


def _classes(model, n):
    return None if model.num_conditions is None else np.arange(n) % model.num_conditions


def _order(channels):
    """Sub-pixel positions (k, r, c) in the model's order: raster, then colour."""
    return [(k, r, c) for r in range(SIZE) for c in range(SIZE) for k in range(channels)]


@pytest.mark.parametrize("name", list(_models()))
def test_shapes_and_nll(name):
    model = _init(_models()[name])
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, model.channels, SIZE, SIZE), dtype=np.uint8)
    classes = _classes(model, 2)
    logits = model.logits(x, classes)
    assert logits.shape == (2, 256, model.channels, SIZE, SIZE)
    nll = model.nll(x, classes)
    assert nll.shape == (2,)
    # the NLL is the sum of -log softmax at the targets
    z = np.asarray(logits.data, dtype=np.float64)
    logp = z - z.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    idx = x.astype(np.int64)[:, None]
    expected = -np.take_along_axis(logp, idx, axis=1).reshape(2, -1).sum(1)
    np.testing.assert_allclose(nll.data, expected, rtol=1e-10)
    bpd = model.bits_per_dim(x, classes)
    assert bpd == pytest.approx(expected.mean() / (x[0].size * math.log(2)))
    if model.channels == 1:   # (N, H, W) images are accepted for one channel
        np.testing.assert_allclose(model.nll(x[:, 0], classes).data, nll.data)


@pytest.mark.parametrize("name", list(_models()))
def test_output_never_depends_on_current_or_later_subpixels(name):
    """For every sub-pixel i: changing the inputs at i and after it leaves the
    distribution at i unchanged (and with random weights, the change is visible at
    the next position in the row, so the perturbation did something)."""
    model = _init(_models()[name])
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (1, model.channels, SIZE, SIZE), dtype=np.uint8)
    classes = _classes(model, 1)
    with tg.no_grad():
        base = model.logits(x, classes).data
    order = _order(model.channels)
    changed_later = same_row = 0
    for i, (k, r, c) in enumerate(order):
        y = x.copy()
        for (kk, rr, cc) in order[i:]:
            y[0, kk, rr, cc] = (int(x[0, kk, rr, cc]) + 1 + rng.integers(0, 254)) % 256
        with tg.no_grad():
            out = model.logits(y, classes).data
        np.testing.assert_array_equal(out[0, :, k, r, c], base[0, :, k, r, c],
                                      err_msg=f"position {(k, r, c)} sees its future")
        if i + 1 < len(order) and order[i + 1][1] == r:   # the next one in this row
            kk, rr, cc = order[i + 1]
            changed_later += not np.array_equal(out[0, :, kk, rr, cc], base[0, :, kk, rr, cc])
            same_row += 1
    assert changed_later == same_row   # the next sub-pixel in the row sees the change


def _dependencies(model, k, r, c):
    """Boolean (C, H, W): the input sub-pixels the logits at (k, r, c) depend on
    (the gradient of a random projection of those logits)."""
    x = np.random.default_rng(5).integers(0, 256, (1, model.channels) + model.image_size)
    inp = model.scale(x.astype(np.uint8))
    inp.requires_grad = True
    cond = model._one_hot(_classes(model, 1), 1)
    out = model(inp, cond)
    w = np.random.default_rng(6).normal(size=256)
    (out[0, :, k, r, c] * tg.tensor(w)).sum().backward()
    return np.asarray(inp.grad.data)[0] != 0


@pytest.mark.parametrize("name", ["gated-1", "gated-3"])
def test_gated_receptive_field_is_the_whole_past(name):
    """No blind spot: with enough layers every earlier sub-pixel influences every
    output; never a later one."""
    model = _init(_models()[name])
    order = _order(model.channels)
    for i, (k, r, c) in enumerate(order):
        dep = _dependencies(model, k, r, c)
        expected = np.zeros_like(dep)
        for (kk, rr, cc) in order[:i]:
            expected[kk, rr, cc] = True
        np.testing.assert_array_equal(dep, expected, err_msg=f"position {(k, r, c)}")


def test_gated_receptive_field_grows_with_depth():
    """In the current row the first layer sees two pixels to the left, each later
    layer one more: two layers reach columns c-3..c-1 only."""
    model = _init(GatedPixelCNN(1, 8, 2, image_size=SIZE, dtype=np.float64))
    dep = _dependencies(model, 0, 3, 5)
    assert dep[0, 3, 2:5].all() and not dep[0, 3, :2].any()


def test_original_pixelcnn_has_the_blind_spot():
    """The masked-conv PixelCNN misses pixels up and to the right (its known blind
    spot), the motivation for the gated model's two stacks."""
    model = _init(PixelCNN(1, 8, 2, image_size=SIZE, dtype=np.float64))
    dep = _dependencies(model, 0, 4, 1)
    assert dep[0, 3, 1] and not dep[0, 3, 5]
    expected_past = np.zeros_like(dep)
    expected_past[0, :4] = True
    expected_past[0, 4, :1] = True
    assert not (dep & ~expected_past).any()           # never the future


@pytest.fixture(scope="module")
def real_images():
    images, _ = load_fashion_mnist("train")
    return np.asarray(images[:256])


@pytest.mark.parametrize("cls, kwargs, lr", [(PixelCNN, dict(hidden=16, n_residual=1), 3e-3),
                                             (GatedPixelCNN, dict(hidden=8, n_layers=2), 1e-2)])
def test_loss_decreases_on_real_images(real_images, cls, kwargs, lr):
    """30 Adam steps on 16-image batches of 240 real 8-bit images: held-out bits/dim
    falls from about 8 (uniform) to about 5."""
    model = cls(1, image_size=(28, 28), **kwargs)
    model.reset_parameters(np.random.default_rng(0))
    opt = optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(1)
    held_out = real_images[-16:]
    before = model.bits_per_dim(held_out)
    for _ in range(30):
        batch = real_images[rng.integers(0, 240, 16)]
        loss = model.nll(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.bits_per_dim(held_out)
    assert before > 7.5                      # about log2(256) = 8 at initialisation
    assert after < before - 2.0, (before, after)


@pytest.mark.parametrize("name", ["pixelcnn-1", "pixelcnn-3", "gated-1", "gated-cond"])
def test_fast_sampling_equals_naive(name):
    model = _init(_models()[name])
    classes = _classes(model, 3)
    fast = model.sample(3, np.random.default_rng(7), classes=classes, fast=True)
    naive = model.sample(3, np.random.default_rng(7), classes=classes, fast=False)
    assert fast.shape == (3, model.channels, SIZE, SIZE) and fast.dtype == np.uint8
    np.testing.assert_array_equal(fast, naive)
    assert len(np.unique(fast)) > 3        # real draws, not a constant image


def test_sampling_is_reproducible_and_follows_the_model():
    """The first pixel is drawn from the model's distribution at (0, 0)."""
    model = _init(PixelCNN(1, 8, 1, image_size=2, dtype=np.float64))
    with tg.no_grad():
        logits = model.logits(np.zeros((1, 1, 2, 2), np.uint8)).data[0, :, 0, 0, 0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    a = model.sample(400, np.random.default_rng(8))
    np.testing.assert_array_equal(a, model.sample(400, np.random.default_rng(8)))
    u = np.random.default_rng(8).random(400)       # the first draw of the sampler
    np.testing.assert_array_equal(a[:, 0, 0, 0],
                                  np.minimum(np.searchsorted(np.cumsum(p), u * p.sum()), 255))


def test_complete_keeps_the_given_rows():
    model = _init(_models()["gated-1"])
    images = np.random.default_rng(9).integers(0, 256, (2, SIZE, SIZE), dtype=np.uint8)
    done = model.complete(images, 3, np.random.default_rng(10))
    assert done.shape == (2, 1, SIZE, SIZE)
    np.testing.assert_array_equal(done[:, 0, :3], images[:, :3])
    naive = model.complete(images, 3, np.random.default_rng(10), fast=False)
    np.testing.assert_array_equal(done, naive)


BIG = [PixelCNN(1, 8, 1, image_size=(12, 13), dtype=np.float64),
       GatedPixelCNN(1, 8, 2, image_size=(12, 13), dtype=np.float64),
       GatedPixelCNN(1, 8, 2, kernel_size=5, image_size=(12, 13), dtype=np.float64)]


@pytest.mark.parametrize("model", BIG, ids=["pixelcnn", "gated", "gated-k5"])
def test_receptive_window_is_exact(model):
    """The sampler's window: an output at (r, c) sees row r - receptive_rows and
    columns c - receptive_left and c + receptive_right, nothing beyond them."""
    _init(model)
    R, left, right = model.receptive_rows, model.receptive_left, model.receptive_right
    r, c = 11, 6
    dep = _dependencies(model, 0, r, c)[0]
    assert dep[r - R].any() and not dep[:r - R].any()
    cols = dep.any(axis=0)
    assert cols[c - left] and not cols[:c - left].any()
    assert cols[c + right] and not cols[c + right + 1:].any()


@pytest.mark.parametrize("model", BIG, ids=["pixelcnn", "gated", "gated-k5"])
def test_windowed_sampling_equals_naive_on_big_images(model):
    """Images larger than the receptive field: the window really crops."""
    _init(model)
    assert model.receptive_rows + 1 < 12
    assert model.receptive_left + model.receptive_right + 1 < 13
    fast = model.sample(2, np.random.default_rng(11), fast=True)
    naive = model.sample(2, np.random.default_rng(11), fast=False)
    np.testing.assert_array_equal(fast, naive)


@pytest.mark.parametrize("name, options", [
    ("pixelcnn", {"n_residual": 1}),
    ("gated-pixelcnn", {"n_layers": 2, "conditional": True})])
def test_experiments(real_images, name, options):
    """Registered for ``tinygen train NAME``; a training step, test bits/dim, samples
    and completions."""
    from tinygen.models import EXPERIMENTS
    import tinygen.models.pixelcnn  # noqa: F401  (registers the family)

    experiment = EXPERIMENTS[name]({"hidden": 8, "limit": 32, **options})
    labels = np.arange(32) % 10
    batch = (real_images[:32], labels)
    first = experiment.train_step(batch, np.random.default_rng(0))
    assert first["bpd"] == pytest.approx(first["loss"] / (784 * math.log(2)))
    for _ in range(5):
        last = experiment.train_step(batch, np.random.default_rng(0))
    assert last["loss"] < first["loss"]
    metrics = experiment.evaluate((real_images[:20], labels[:20]), np.random.default_rng(0))
    assert metrics["eval_images"] == 20 and 0 < metrics["test_bpd"] < 9
    experiment.config["eval_batch"] = 7       # batching does not change the mean
    again = experiment.evaluate((real_images[:20], labels[:20]), np.random.default_rng(0))
    assert again["test_bpd"] == pytest.approx(metrics["test_bpd"], rel=1e-5)
    images = experiment.sample(1, np.random.default_rng(1))
    assert images.shape == (1, 28, 28) and images.dtype == np.uint8
    pairs = experiment.visualize("completions", 2, np.random.default_rng(2),
                                 (real_images[:1], labels[:1]))
    assert pairs.shape == (2, 28, 28)
    np.testing.assert_array_equal(pairs[1, :14], real_images[0, :14])
