"""PixelCNN and gated PixelCNN (tinygen.models.pixelcnn), with the softmax and the
discretized logistic mixture ("dlm") heads: the autoregressive property end to end
(raster and colour order; whole pixels for the mixture), the gated model's full receptive
field (no blind spot), shapes and NLL, training on real Fashion-MNIST, sampling and
completion (the windowed and the gated model's incremental samplers draw exactly the
naive sampler's images; the incremental sampler's outputs are the forward's, its work
O(layers) per pixel), the experiments and the command line, bad arguments."""
import math

import numpy as np
import pytest

import tinygen as tg
from tinygen import optim
from tinygen.data import load_fashion_mnist
from tinygen.models.pixelcnn import GatedPixelCNN, GatedPixelCNNLayer, PixelCNN
from tinygen.models.pixelcnn.sampling import GatedIncremental

SIZE = 6


DLM = dict(output="dlm", mixtures=3)


def _models():
    """Small float64 models of both families, channels 1 and 3, conditional too, with
    the softmax head and the mixture head."""
    return {
        "pixelcnn-1": PixelCNN(1, 8, 2, image_size=SIZE, dtype=np.float64),
        "pixelcnn-3": PixelCNN(3, 12, 2, image_size=SIZE, dtype=np.float64),
        "gated-1": GatedPixelCNN(1, 8, 6, image_size=SIZE, dtype=np.float64),
        "gated-3": GatedPixelCNN(3, 24, 6, image_size=SIZE, dtype=np.float64),
        "gated-cond": GatedPixelCNN(1, 8, 3, num_conditions=4, image_size=SIZE,
                                    dtype=np.float64),
        "gated-3-cond": GatedPixelCNN(3, 12, 3, num_conditions=4, image_size=SIZE,
                                      dtype=np.float64),
        "pixelcnn-1-dlm": PixelCNN(1, 8, 2, image_size=SIZE, dtype=np.float64, **DLM),
        "pixelcnn-3-dlm": PixelCNN(3, 8, 2, image_size=SIZE, dtype=np.float64, **DLM),
        "gated-1-dlm": GatedPixelCNN(1, 8, 6, image_size=SIZE, dtype=np.float64, **DLM),
        "gated-3-dlm": GatedPixelCNN(3, 8, 6, image_size=SIZE, dtype=np.float64, **DLM),
        "gated-cond-dlm": GatedPixelCNN(1, 8, 3, num_conditions=4, image_size=SIZE,
                                        dtype=np.float64, **DLM),
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


def _order(model):
    """The model's positions (channels, r, c) in its order: raster, then colour for the
    softmax head (one channel each); whole pixels for the mixture head."""
    if model.output == "dlm":
        return [(tuple(range(model.channels)), r, c) for r in range(SIZE) for c in range(SIZE)]
    return [((k,), r, c) for r in range(SIZE) for c in range(SIZE)
            for k in range(model.channels)]


def _at(model, out, ks, r, c):
    """The output (logits or mixture parameters) of position (ks, r, c) of image 0."""
    if model.output == "dlm":
        return out[0, :, r, c]
    return out[0, :, ks[0], r, c]


@pytest.mark.parametrize("name", [n for n in _models() if not n.endswith("dlm")])
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


@pytest.mark.parametrize("name", [n for n in _models() if n.endswith("dlm")])
def test_shapes_and_nll_with_the_mixture_head(name):
    model = _init(_models()[name])
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, model.channels, SIZE, SIZE), dtype=np.uint8)
    x[0, :, 0, 0], x[0, :, 0, 1] = 0, 255           # the edge levels
    classes = _classes(model, 2)
    params = model.outputs(x, classes)
    per_pixel = 3 * (1 + 2 * model.channels + (3 if model.channels == 3 else 0))
    assert params.shape == (2, per_pixel, SIZE, SIZE)
    nll = model.nll(x, classes)
    assert nll.shape == (2,)
    # the NLL is minus the mixture's log-probabilities of the pixels, summed
    expected = -model.mixture.log_prob(params, x).data.reshape(2, -1).sum(1)
    np.testing.assert_allclose(nll.data, expected, rtol=1e-12)
    bpd = model.bits_per_dim(x, classes)
    assert bpd == pytest.approx(expected.mean() / (x[0].size * math.log(2)))
    with pytest.raises(ValueError, match="use outputs"):
        model.logits(x, classes)


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
        base = model.outputs(x, classes).data
    order = _order(model)
    changed_later = same_row = 0
    for i, (ks, r, c) in enumerate(order):
        y = x.copy()
        for (kks, rr, cc) in order[i:]:
            for kk in kks:
                y[0, kk, rr, cc] = (int(x[0, kk, rr, cc]) + 1 + rng.integers(0, 254)) % 256
        with tg.no_grad():
            out = model.outputs(y, classes).data
        np.testing.assert_array_equal(_at(model, out, ks, r, c), _at(model, base, ks, r, c),
                                      err_msg=f"position {(ks, r, c)} sees its future")
        if i + 1 < len(order) and order[i + 1][1] == r:   # the next one in this row
            later = order[i + 1]
            changed_later += not np.array_equal(_at(model, out, *later),
                                                _at(model, base, *later))
            same_row += 1
    assert changed_later == same_row   # the next position in the row sees the change


def _dependencies(model, k, r, c):
    """Boolean (C, H, W): the input sub-pixels the output at (k, r, c) depends on
    (the gradient of a random projection of that output)."""
    x = np.random.default_rng(5).integers(0, 256, (1, model.channels) + model.image_size)
    inp = model.scale(x.astype(np.uint8))
    inp.requires_grad = True
    cond = model._one_hot(_classes(model, 1), 1)
    out = model(inp, cond)
    w = np.random.default_rng(6).normal(size=out.shape[1])
    (_at(model, out, (k,), r, c) * tg.tensor(w)).sum().backward()
    return np.asarray(inp.grad.data)[0] != 0


@pytest.mark.parametrize("name", ["gated-1", "gated-3", "gated-3-dlm"])
def test_gated_receptive_field_is_the_whole_past(name):
    """No blind spot: with enough layers every earlier (sub-)pixel influences every
    output; never a later one (for the mixture head: no channel of its own pixel)."""
    model = _init(_models()[name])
    order = _order(model)
    for i, (ks, r, c) in enumerate(order):
        dep = _dependencies(model, ks[0], r, c)
        expected = np.zeros_like(dep)
        for (kks, rr, cc) in order[:i]:
            expected[list(kks), rr, cc] = True
        np.testing.assert_array_equal(dep, expected, err_msg=f"position {(ks, r, c)}")


def test_gated_receptive_field_grows_with_depth():
    """In the current row the first layer sees two pixels to the left, each later
    layer one more: two layers reach columns c-3..c-1 only."""
    model = _init(GatedPixelCNN(1, 8, 2, image_size=SIZE, dtype=np.float64))
    dep = _dependencies(model, 0, 3, 5)
    assert dep[0, 3, 2:5].all() and not dep[0, 3, :2].any()


def test_gated_layer_shapes_and_residual_rule():
    layer = GatedPixelCNNLayer(3, 8, kernel_size=5, first=True)
    x = tg.randn(2, 3, 6, 6)
    v, h = layer(x, x)
    assert v.shape == h.shape == (2, 8, 6, 6)
    assert layer.vertical.kernel_size == (3, 5) and layer.horizontal.kernel_size == (1, 3)
    with pytest.raises(ValueError, match="in_channels must equal"):
        GatedPixelCNNLayer(3, 8)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        GatedPixelCNNLayer(3, 8, kernel_size=4, first=True)


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
    before, after = _train_briefly(real_images, cls(1, image_size=(28, 28), **kwargs), lr)
    assert before > 7.5                      # about log2(256) = 8 at initialisation
    assert after < before - 2.0, (before, after)


@pytest.mark.parametrize("cls, kwargs, lr", [(PixelCNN, dict(hidden=16, n_residual=1), 1e-2),
                                             (GatedPixelCNN, dict(hidden=8, n_layers=2), 2e-2)])
def test_loss_decreases_on_real_images_with_the_mixture_head(real_images, cls, kwargs, lr):
    """The same with 3 mixture components: from about 5.6 bits/dim at initialisation
    (unit scales on [-1, 1] already put ~27% on the many black pixels: level 0's bin
    owns everything below) to about 4.5 (measured: 4.3 and 4.8)."""
    model = cls(1, image_size=(28, 28), output="dlm", mixtures=3, **kwargs)
    before, after = _train_briefly(real_images, model, lr)
    assert after < before - 0.7, (before, after)


def _train_briefly(real_images, model, lr):
    """Held-out bits/dim before and after 30 Adam steps on 16-image batches."""
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
    return before, model.bits_per_dim(held_out)


def _assert_every_sampler_draws_the_naive_images(model, draw):
    """``draw(fast)`` with each of the model's samplers gives the naive images (float64:
    their outputs differ by rounding only, far too little to move an inverse-CDF draw)."""
    naive = draw(False)
    assert len(np.unique(naive)) > 3        # real draws, not a constant image
    assert model.samplers[0] == "naive"
    for sampler in model.samplers[1:] + (True,):
        np.testing.assert_array_equal(draw(sampler), naive, err_msg=f"fast={sampler!r}")
    return naive


@pytest.mark.parametrize("name", list(_models()))
def test_every_sampler_draws_the_naive_images(name):
    """Windowed (both models) and incremental (gated; fast=True) sampling, with and
    without conditioning, C=1 and C=3, softmax and mixture heads."""
    model = _init(_models()[name])
    classes = _classes(model, 3)
    images = _assert_every_sampler_draws_the_naive_images(
        model, lambda fast: model.sample(3, np.random.default_rng(7), classes, fast))
    assert images.shape == (3, model.channels, SIZE, SIZE) and images.dtype == np.uint8
    expected = ("naive", "windowed") + (("incremental",) if name.startswith("gated") else ())
    assert model.samplers == expected


def _drive_incremental(model, x, classes):
    """The incremental sampler's outputs at every pixel of a given image x, asked in
    raster order as the sampler does (the forward's layout: (N, P, H, W) or
    (N, n_classes, C, H, W))."""
    sampler = GatedIncremental(model, x, model._one_hot(classes, len(x)))
    outs = [[sampler.at(r, c) for c in range(x.shape[3])] for r in range(x.shape[2])]
    return np.moveaxis(np.array(outs), (0, 1), (-2, -1))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
@pytest.mark.parametrize("kwargs", [
    dict(channels=1), dict(channels=3), dict(channels=3, **DLM), dict(channels=1, **DLM),
    dict(channels=3, num_conditions=4), dict(channels=1, kernel_size=5)],
    ids=["1", "3", "3-dlm", "1-dlm", "3-cond", "1-k5"])
def test_incremental_outputs_are_the_forwards(kwargs, dtype, rtol):
    """Fed a whole random image (the stacks never read the current pixel or later ones,
    the current-pixel conv only earlier colours), the incremental sampler's output at
    every pixel is the forward's, up to float rounding: relative to the largest output,
    1e-13 in float64 and 1e-5 in float32 (measured: 4e-16 and 2e-7).  The image is
    larger than every layer's row and column window."""
    model = _init(GatedPixelCNN(hidden=12, n_layers=3, image_size=(7, 9), dtype=dtype,
                                **kwargs))
    x = np.random.default_rng(12).integers(0, 256, (2, model.channels, 7, 9), dtype=np.uint8)
    classes = _classes(model, 2)
    with tg.no_grad():
        expected = np.asarray(model.outputs(x, classes).data, dtype=np.float64)
    got = _drive_incremental(model, x, classes)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=rtol * np.abs(expected).max())


def test_incremental_sampler_reuses_the_stacks_work():
    """O(layers) work per pixel: each layer's vertical conv runs once per row on at most
    kh + 1 rows, its horizontal conv once per pixel (not per colour) on at most kw + 1
    columns; the head runs once per sub-pixel."""
    H, W, layers = 5, 6, 3
    model = _init(GatedPixelCNN(3, 12, layers, kernel_size=5, image_size=(H, W),
                                dtype=np.float64))
    seen = {"vertical": [], "horizontal": [], "head": []}
    for layer in model.layers:
        layer.vertical.register_forward_hook(
            lambda m, args, out: seen["vertical"].append(args[0].shape))
        layer.horizontal.register_forward_hook(
            lambda m, args, out: seen["horizontal"].append(args[0].shape))
    model.head.register_forward_hook(lambda m, args, out: seen["head"].append(1))
    model.sample(2, np.random.default_rng(13))
    assert len(seen["vertical"]) == H * layers
    assert max(shape[2] for shape in seen["vertical"]) == 3 + 1       # kh = 3
    assert len(seen["horizontal"]) == H * W * layers
    assert {shape[2] for shape in seen["horizontal"]} == {1}
    assert max(shape[3] for shape in seen["horizontal"]) == 3 + 1     # kw = 3
    assert len(seen["head"]) == H * W * 3


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


def test_mixture_sampling_draws_each_pixel_from_its_mixture():
    """The first pixel is the mixture's draw from the parameters at (0, 0); a later one
    from the parameters given the pixels drawn before it; one network pass per pixel
    (the softmax head needs one per sub-pixel)."""
    model = _init(PixelCNN(3, 8, 1, image_size=2, dtype=np.float64, **DLM))
    passes = []
    model.register_forward_hook(lambda module, args, out: passes.append(1))
    a = model.sample(300, np.random.default_rng(8), fast=False)
    assert len(passes) == 4
    np.testing.assert_array_equal(a, model.sample(300, np.random.default_rng(8), fast=False))
    gen = np.random.default_rng(8)
    with tg.no_grad():
        first = model.outputs(np.zeros((300, 3, 2, 2), np.uint8)).data[:, :, 0, 0]
        np.testing.assert_array_equal(a[:, :, 0, 0], model.mixture.sample(first, gen))
        given_first = a.copy()
        given_first[:, :, 0, 1:] = given_first[:, :, 1] = 0
        second = model.outputs(given_first).data[:, :, 0, 1]
        np.testing.assert_array_equal(a[:, :, 0, 1], model.mixture.sample(second, gen))
    assert len({tuple(p) for p in a[:, :, 0, 0]}) > 100       # real draws of RGB triples


@pytest.mark.parametrize("name", ["gated-1", "gated-1-dlm", "gated-3-cond", "pixelcnn-3"])
def test_complete_keeps_the_given_rows(name):
    """And every sampler completes as the naive one does (the incremental sampler starts
    from the given rows' vertical features)."""
    model = _init(_models()[name])
    images = np.random.default_rng(9).integers(0, 256, (2, model.channels, SIZE, SIZE),
                                               dtype=np.uint8)
    classes = _classes(model, 2)
    done = _assert_every_sampler_draws_the_naive_images(
        model, lambda fast: model.complete(images, 3, np.random.default_rng(10), classes,
                                           fast))
    assert done.shape == (2, model.channels, SIZE, SIZE)
    np.testing.assert_array_equal(done[:, :, :3], images[:, :, :3])


BIG = [PixelCNN(1, 8, 1, image_size=(12, 13), dtype=np.float64),
       GatedPixelCNN(1, 8, 2, image_size=(12, 13), dtype=np.float64),
       GatedPixelCNN(1, 8, 2, kernel_size=5, image_size=(12, 13), dtype=np.float64),
       GatedPixelCNN(3, 8, 2, image_size=(12, 13), dtype=np.float64, **DLM)]
BIG_IDS = ["pixelcnn", "gated", "gated-k5", "gated-3-dlm"]


@pytest.mark.parametrize("model", BIG, ids=BIG_IDS)
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


@pytest.mark.parametrize("model", BIG, ids=BIG_IDS)
def test_every_sampler_draws_the_naive_images_on_big_images(model):
    """Images larger than the receptive field: the windows really crop."""
    _init(model)
    assert model.receptive_rows + 1 < 12
    assert model.receptive_left + model.receptive_right + 1 < 13
    classes = _classes(model, 2)
    _assert_every_sampler_draws_the_naive_images(
        model, lambda fast: model.sample(2, np.random.default_rng(11), classes, fast))


@pytest.mark.parametrize("name, options", [
    ("pixelcnn", {"n_residual": 1}),
    ("gated-pixelcnn", {"n_layers": 2, "conditional": True}),
    ("gated-pixelcnn", {"n_layers": 2, "output": "dlm", "mixtures": 3})])
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


def test_command_line_train_sample_eval_resume_with_the_mixture_head(tmp_path, monkeypatch,
                                                                     capsys):
    """``tinygen train gated-pixelcnn -o output=dlm -o mixtures=2`` on a tiny budget; the
    checkpoint rebuilds the mixture head for sample, eval and --resume."""
    import json

    from tinygen.cli import main

    monkeypatch.setenv("TINYGEN_OFFLINE", "1")
    out = tmp_path / "run"
    options = ["-o", "hidden=8", "-o", "n_layers=1", "-o", "output=dlm", "-o", "mixtures=2"]
    assert main(["train", "gated-pixelcnn", "--epochs", "1", "--limit", "32", "--batch-size",
                 "16", "--test-limit", "8", "--n-samples", "1", "--out", str(out),
                 "--no-progress", *options]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["output"] == "dlm" and metrics["config"]["mixtures"] == 2
    assert 0 < metrics["metrics"]["test_bpd"] < 9
    capsys.readouterr()
    assert main(["eval", "--run", str(out), "--test-limit", "4"]) == 0
    assert 0 < json.loads(capsys.readouterr().out)["test_bpd"] < 9
    png = tmp_path / "grid.png"
    assert main(["sample", "--run", str(out), "--n", "1", "--out", str(png)]) == 0
    assert png.is_file()
    assert main(["train", "gated-pixelcnn", "--epochs", "2", "--out", str(out), "--resume",
                 "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 2
    capsys.readouterr()
    assert main(["train", "gated-pixelcnn", "--epochs", "1", "--limit", "16", "--out",
                 str(tmp_path / "bad"), "--no-progress", "-o", "output=logistic"]) == 1
    assert "-o output=logistic: output must be one of softmax, dlm" in capsys.readouterr().err


def test_bad_sampler_raises_a_clear_error():
    with pytest.raises(ValueError, match=r"fast must be True, False or one of \('naive', "
                                         r"'windowed'\) for PixelCNN, got 'incremental'"):
        PixelCNN(1, 8, 1, image_size=4).sample(1, np.random.default_rng(0), fast="incremental")
    with pytest.raises(ValueError, match="fast must be .* got 1"):
        GatedPixelCNN(1, 8, 1, image_size=4).complete(np.zeros((1, 4, 4), np.uint8), 2,
                                                      np.random.default_rng(0), fast=1)


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN])
def test_bad_head_arguments_raise_clear_errors(cls):
    with pytest.raises(ValueError, match="output must be 'softmax' .* or 'dlm'"):
        cls(1, 8, output="logistic")
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="mixtures must be a positive int"):
            cls(1, 8, output="dlm", mixtures=bad)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        cls(2, 8, output="dlm")
    with pytest.raises(ValueError, match="n_classes must be 256"):
        cls(1, 8, n_classes=16, output="dlm")
    model = cls(1, 8, 1, image_size=4, output="dlm", mixtures=2)
    with pytest.raises(ValueError, match=r"integers in \[0, 256\)"):
        model.nll(np.full((1, 4, 4), 256, dtype=np.int64))
    with pytest.raises(ValueError, match=r"integers in \[0, 256\)"):
        model.nll(np.full((1, 4, 4), -1, dtype=np.int64))
    with pytest.raises(ValueError, match=r"expected images \(N, 1, H, W\)"):
        model.nll(np.zeros((1, 3, 4, 4), dtype=np.uint8))
