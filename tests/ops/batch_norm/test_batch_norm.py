"""batch_norm: finite differences (first and second order) over hypothesis-drawn
configs, reference vs numba kernels, PyTorch CPU as an outside oracle, the
BatchNorm modules, and the error messages."""

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import tinygen as tg
from tinygen.nn import norm as nn
from tinygen.backend.numba_kernels import batch_norm as fast
from tinygen.backend.reference import batch_norm as ref
from tinygen.ops.batch_norm import batch_norm
from tinygen.testing import check_grads, f64

from .._impls import dtypes, impl, seeds, tensor, tolerance


@st.composite
def bn_configs(draw, ndims=(2, 3, 4)):
    ndim = draw(st.sampled_from(ndims))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, 3)) for _ in range(ndim - 2))
    shape = (n, c) + spatial
    assume(n * int(np.prod(spatial)) > 1)
    affine = draw(st.sampled_from(["none", "weight", "bias", "both"]))
    return shape, affine, draw(seeds)


def _inputs(shape, affine, seed, requires_grad=True):
    rng = np.random.default_rng(seed)
    c = shape[1]
    # A spread-out channel (no channel is nearly constant: its inv_std would be huge).
    x = rng.standard_normal(shape) * 1.5 + rng.uniform(-2, 2, (1, c) + (1,) * (len(shape) - 2))
    weight = f64(rng.uniform(0.5, 2.0, c) * rng.choice([-1, 1], c), requires_grad) \
        if affine in ("weight", "both") else None
    bias = f64(rng.standard_normal(c), requires_grad) if affine in ("bias", "both") else None
    return f64(x, requires_grad), weight, bias


def _present(*tensors):
    return tuple(t for t in tensors if t is not None)


def _fn(weight, bias, **kwargs):
    """fn(x, *present affine tensors) for gradcheck."""
    def fn(x, *affine):
        it = iter(affine)
        w = next(it) if weight is not None else None
        b = next(it) if bias is not None else None
        return batch_norm(x, weight=w, bias=b, **kwargs)
    return fn


# --- finite differences (reference kernels) ------------------------------------------------------
@given(bn_configs())
@settings(max_examples=15)
def test_training_mode_gradcheck_and_gradgradcheck(config):
    shape, affine, seed = config
    x, w, b = _inputs(shape, affine, seed)
    fn = _fn(w, b, running_mean=None, running_var=None, training=True)
    with impl("reference"):
        check_grads(fn, (x,) + _present(w, b))


@given(bn_configs())
@settings(max_examples=10)
def test_eval_mode_gradcheck_and_gradgradcheck(config):
    shape, affine, seed = config
    x, w, b = _inputs(shape, affine, seed)
    rng = np.random.default_rng(seed + 1)
    rm = f64(rng.standard_normal(shape[1]), False)
    rv = f64(rng.uniform(0.5, 2.0, shape[1]), False)
    fn = _fn(w, b, running_mean=rm, running_var=rv, training=False)
    with impl("reference"):
        check_grads(fn, (x,) + _present(w, b))


def _unfused_batch_norm(x, w, b):
    """Training-mode batch norm composed of elementary tinygen ops (no batch-norm Function):
    plain autograd through it gives the derivatives the fused nodes must equal."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    centered = x - tg.mean(x, axes, keepdims=True)
    y = centered * (tg.mean(centered * centered, axes, keepdims=True) + 1e-5) ** -0.5
    if w is not None:
        y = y * tg.reshape(w, shape)
    return y + tg.reshape(b, shape) if b is not None else y


@pytest.mark.parametrize("kernels", ["reference", "numba"])
@given(config=bn_configs())
@settings(max_examples=6)
def test_fused_gradients_equal_the_unfused_graphs_to_second_order(kernels, config):
    """BatchNormTrain's backward node (fused kernels) and that node's own backward (the
    closed-form second derivatives) against autograd through the elementary-op composition,
    in float64: the first derivatives, then the derivatives of a penalty on all of them
    with respect to x, the weight, the bias and the upstream gradient."""
    shape, affine, seed = config
    x, w, b = _inputs(shape, affine, seed)
    rng = np.random.default_rng(seed)
    g = f64(rng.standard_normal(shape), True)
    inputs = (x,) + _present(w, b)
    coefficients = [f64(rng.standard_normal(t.shape), False) for t in inputs]
    results = []
    with impl(kernels):
        for y in (batch_norm(x, None, None, w, b, training=True), _unfused_batch_norm(x, w, b)):
            first = tg.grad(y, inputs, g, create_graph=True)
            penalty = sum((d * d * c).sum() for d, c in zip(first, coefficients))
            second = tg.grad(penalty, inputs + (g,), allow_unused=True)
            results.append([t.numpy() if t is not None else None for t in first + second])
    fused, unfused = results
    for a, c in zip(fused, unfused):
        assert (a is None) == (c is None)
        if a is not None:
            np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-10)


def test_third_derivatives_go_through_the_gradient_node():
    """The second-derivative formulas are tinygen ops on x, so they differentiate again."""
    x, w, _ = _inputs((3, 2, 2), "weight", 3)
    g = f64(np.random.default_rng(3).standard_normal((3, 2, 2)), True)

    def first(x, w, g):
        y = batch_norm(x, None, None, w, None, training=True)
        return tg.grad(y, (x, w), g, create_graph=True)

    with impl("reference"):
        check_grads(first, (x, w, g))


# --- reference vs numba --------------------------------------------------------------------------
@given(st.integers(1, 5), st.integers(1, 4), st.integers(1, 20), dtypes, seeds)
def test_numba_kernels_match_reference(n, c, length, dtype, seed):
    assume(n * length > 1)
    rng = np.random.default_rng(seed)
    x3 = (rng.standard_normal((n, c, length)) * 3 + 1).astype(dtype)
    g3 = rng.standard_normal((n, c, length)).astype(dtype)
    tol = tolerance(dtype)
    mean, var = ref.channel_stats(x3)
    mean_f, var_f = fast.channel_stats(x3)
    np.testing.assert_allclose(mean_f, mean, **tol)
    np.testing.assert_allclose(var_f, var, **tol)
    inv_std = 1 / np.sqrt(var + 1e-5)
    scale, shift = rng.standard_normal(c) * inv_std, rng.standard_normal(c)
    y = fast.normalize_affine(x3, mean, scale, shift)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ref.normalize_affine(x3, mean, scale, shift), **tol)
    sums = ref.backward_reduce(g3, x3, mean)
    for a, b in zip(fast.backward_reduce(g3, x3, mean), sums):
        np.testing.assert_allclose(a, b, rtol=tol["rtol"], atol=tol["atol"] * n * length)
    w = rng.standard_normal(c)
    args = (g3, x3, mean, inv_std, w, sums[0], sums[1] * inv_std)
    dx = fast.backward_input(*args)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref.backward_input(*args), **tol)


# --- the fused entry points of the CPU modules (train_stats, backward_stats) ---------------------
def _old_train_stats(x3, eps, running_mean, running_var, momentum):
    """What the op computed before it called train_stats: channel_stats, inv_std, and the
    running update with the unbiased variance, written out here to pin those semantics."""
    mean, var = ref.channel_stats(x3)
    inv_std = 1.0 / np.sqrt(var + eps)
    if running_mean is not None:
        count = x3.shape[0] * x3.shape[2]
        for running, batch in ((running_mean, mean), (running_var, var * (count / (count - 1)))):
            running[...] = ((1.0 - momentum) * running + momentum * batch).astype(running.dtype)
    return mean, var, inv_std


@given(st.integers(1, 5), st.integers(1, 4), st.integers(1, 20), dtypes, seeds,
       st.sampled_from([0.0, 0.1, 0.75, 1.0]), st.booleans())
def test_train_stats_of_both_cpu_modules_equal_the_old_composition(n, c, length, dtype, seed,
                                                                    momentum, track):
    assume(n * length > 1 or not track)
    rng = np.random.default_rng(seed)
    x3 = (rng.standard_normal((n, c, length)) * 3 + 1).astype(dtype)
    eps = 10.0 ** rng.uniform(-6, -1)
    buffers0 = (rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype))
    results = {}
    for name, train_stats in (("old", _old_train_stats), ("reference", ref.train_stats),
                              ("numba", fast.train_stats)):
        running = [b.copy() for b in buffers0] if track else [None, None]
        stats = train_stats(x3, eps, *running, momentum if track else None)
        assert all(s.dtype == np.float64 and s.shape == (c,) for s in stats)
        results[name] = stats, running
    # the reference is the old composition, bit for bit
    for a, b in zip(results["reference"][0] + tuple(results["reference"][1]),
                    results["old"][0] + tuple(results["old"][1])):
        np.testing.assert_array_equal(a, b)
    (mean, var, inv_std), running = results["numba"]
    expected, expected_running = results["old"]
    np.testing.assert_allclose(mean, expected[0], rtol=1e-12, atol=1e-12 * np.abs(x3).max())
    np.testing.assert_allclose(var, expected[1], rtol=1e-12)
    np.testing.assert_allclose(inv_std, expected[2], rtol=1e-12)
    if track:
        assert running[0].dtype == running[1].dtype == dtype
        assert not np.array_equal(running[1], buffers0[1]) or momentum == 0.0
        for a, b in zip(running, expected_running):
            np.testing.assert_allclose(a, b, **(tolerance(dtype) if dtype == np.float32
                                                 else dict(rtol=1e-12, atol=1e-12)))


@given(st.integers(1, 5), st.integers(1, 4), st.integers(1, 20), seeds)
def test_backward_stats_of_both_cpu_modules_equal_the_old_composition(n, c, length, seed):
    rng = np.random.default_rng(seed)
    x3 = rng.standard_normal((n, c, length)) * 3 + 1
    g3 = rng.standard_normal((n, c, length))
    mean, var = ref.channel_stats(x3)
    inv_std = 1.0 / np.sqrt(var + 1e-5)
    sum_g, sum_gc = ref.backward_reduce(g3, x3, mean)
    old = (sum_g, sum_gc * inv_std)  # what the op computed before it called backward_stats
    for a, b in zip(ref.backward_stats(g3, x3, mean, inv_std), old):
        np.testing.assert_array_equal(a, b)
    # sums of terms of both signs: the error is relative to the sum of the terms' sizes
    scale = (np.abs(g3).sum(axis=(0, 2)),
             (np.abs(g3) * np.abs(x3 - mean[:, None]) * inv_std[:, None]).sum(axis=(0, 2)))
    for a, b, size in zip(fast.backward_stats(g3, x3, mean, inv_std), old, scale):
        assert a.dtype == np.float64 and a.shape == (c,)
        assert np.all(np.abs(a - b) <= 1e-12 * size)


@pytest.mark.parametrize("k", [ref, fast], ids=["reference", "numba"])
def test_train_stats_with_one_value_per_channel_and_bad_arguments(k):
    x3 = np.array([[[2.0], [-3.0]]])  # (1, 2, 1): the biased variance is 0, M - 1 is 0
    mean, var, inv_std = k.train_stats(x3, 0.25)
    np.testing.assert_array_equal(mean, [2.0, -3.0])
    np.testing.assert_array_equal(var, [0.0, 0.0])
    np.testing.assert_array_equal(inv_std, [2.0, 2.0])
    running_mean, running_var = np.zeros(2), np.ones(2)
    with pytest.raises(ValueError, match=r"unbiased variance .* more than 1 value per channel, "
                                         r"got input shape \(1, 2, 1\)"):
        k.train_stats(x3, 0.25, running_mean, running_var, 0.1)
    np.testing.assert_array_equal(running_mean, 0.0)  # refused before anything was written
    with pytest.raises(ValueError, match="running_mean and running_var must both be given"):
        k.train_stats(np.zeros((2, 2, 1)), 0.25, running_mean, None, 0.1)
    with pytest.raises(ValueError, match="eps must be positive, got 0"):
        k.train_stats(x3, 0)


@pytest.mark.parametrize("name", ["reference", "numba"])
def test_module_momentum_none_keeps_the_cumulative_average(name):
    """BatchNorm(momentum=None) passes momentum = 1 / num_batches to the op: the running
    statistics are the plain average of the batches' mean and unbiased variance."""
    rng = np.random.default_rng(5)
    batches = [rng.standard_normal((4, 2, 3)) * (i + 1) + i for i in range(3)]
    bn = nn.BatchNorm1d(2, momentum=None, dtype=tg.float64)
    with impl(name):
        for x in batches:
            bn(tg.tensor(x, dtype=tg.float64))
    means = [x.mean(axis=(0, 2)) for x in batches]
    variances = [x.var(axis=(0, 2), ddof=1) for x in batches]
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean(means, axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), np.mean(variances, axis=0), rtol=1e-12)


@pytest.mark.parametrize("k", [ref, fast], ids=["reference", "numba"])
def test_op_calls_the_fused_entry_points_of_the_cpu_module(k, monkeypatch):
    calls, depth = [], [0]

    def spy(function):
        def wrapper(*args):
            if depth[0] == 0:  # the op's own calls, not the module's calls to its pieces
                calls.append(function.__name__)
            depth[0] += 1
            try:
                return function(*args)
            finally:
                depth[0] -= 1
        return wrapper

    for name in ("train_stats", "backward_stats", "channel_stats", "backward_reduce"):
        monkeypatch.setattr(k, name, spy(getattr(k, name)))
    rng = np.random.default_rng(6)
    x, w, b = _inputs((3, 2, 4), "both", 6)
    with impl("reference" if k is ref else "numba"):
        y = batch_norm(x, f64(np.zeros(2), False), f64(np.ones(2), False), w, b, training=True)
        assert calls == ["train_stats"]
        g = f64(rng.standard_normal(y.shape), False)
        tg.grad(y, [x, w, b], g, retain_graph=True)
        assert calls == ["train_stats", "backward_stats"]
        gx, _, _ = tg.grad(y, [x, w, b], g, create_graph=True)  # the same node, recorded
        assert calls == ["train_stats", "backward_stats", "backward_stats"]
        assert type(gx.grad_fn).__name__ == "BatchNormTrainGrad"


def test_strided_running_buffers_are_updated_in_place():
    rng = np.random.default_rng(7)
    x = f64(rng.standard_normal((5, 3, 2)), False)
    storage = f64(np.arange(12.0), False)
    running_mean, running_var = storage[0:6:2], storage[7:12:2]  # views, not contiguous
    batch_norm(x, running_mean, running_var, training=True, momentum=0.5)
    x3 = x.numpy()
    expected = np.arange(12.0)
    expected[0:6:2] = 0.5 * expected[0:6:2] + 0.5 * x3.mean(axis=(0, 2))
    expected[7:12:2] = 0.5 * expected[7:12:2] + 0.5 * x3.var(axis=(0, 2), ddof=1)
    np.testing.assert_allclose(storage.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_op_gives_the_same_results_with_both_kernels(dtype, training):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4, 3, 2)).astype(dtype)
    w, b = rng.standard_normal(4).astype(dtype), rng.standard_normal(4).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    results = []
    for name in ("reference", "numba"):
        with impl(name):
            xt, wt, bt = (tensor(a, dtype, True) for a in (x, w, b))
            rm, rv = tensor(np.zeros(4), dtype), tensor(np.ones(4) * 2, dtype)
            y = batch_norm(xt, rm, rv, wt, bt, training=training)
            y.backward(tensor(g, dtype))
            results.append([y.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy(),
                            rm.numpy(), rv.numpy()])
    for a, c in zip(*results):
        np.testing.assert_allclose(a, c, **tolerance(dtype))


def test_float32_statistics_are_accurate_with_a_large_mean():
    """Two-pass float64 accumulation: no cancellation when |mean| >> std."""
    rng = np.random.default_rng(0)
    x = (1e4 + rng.standard_normal((64, 3, 16))).astype(np.float32)
    truth = x.astype(np.float64).var(axis=(0, 2))
    for k in (ref, fast):
        _, var = k.channel_stats(x)
        np.testing.assert_allclose(var, truth, rtol=1e-10)
    y = batch_norm(tensor(x, np.float32), None, None, training=True).numpy()
    np.testing.assert_allclose(y.std(axis=(0, 2)), 1.0, rtol=1e-4)


# --- PyTorch CPU as an outside oracle (the ``torch`` fixture skips without it) ----------------
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 4, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_gradients_match_pytorch(torch, shape, training):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape) * 2 + 0.5
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    rm0, rv0 = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    g = rng.standard_normal(shape)
    xt, wt, bt = (f64(a) for a in (x, w, b))
    rm, rv = f64(rm0, False), f64(rv0, False)
    y = batch_norm(xt, rm, rv, wt, bt, training=training, momentum=0.3, eps=1e-3)
    y.backward(f64(g, False))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    trm, trv = torch.tensor(rm0), torch.tensor(rv0)
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training=training, momentum=0.3,
                                        eps=1e-3)
    ty.backward(torch.tensor(g))
    for ours, theirs in [(y, ty), (xt.grad, tx.grad), (wt.grad, tw.grad), (bt.grad, tb.grad),
                         (rm, trm), (rv, trv)]:
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_double_backward_matches_pytorch(torch):
    """A WGAN-GP-style penalty: the gradient of ||d out / d x||^2 w.r.t. x and the weight."""
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(3), rng.standard_normal(3)
    v = rng.standard_normal(x.shape)

    xt, wt, bt = (f64(a) for a in (x, w, b))
    out = (batch_norm(xt, None, None, wt, bt, training=True).tanh() * f64(v, False)).sum()
    (gx,) = tg.grad(out, [xt], create_graph=True)
    penalty = (gx * gx).sum()
    ours = tg.grad(penalty, [xt, wt, bt], allow_unused=True)

    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tout = (torch.tanh(torch.nn.functional.batch_norm(tx, None, None, tw, tb, training=True))
            * torch.tensor(v)).sum()
    (tgx,) = torch.autograd.grad(tout, [tx], create_graph=True)
    theirs = torch.autograd.grad((tgx * tgx).sum(), [tx, tw, tb], allow_unused=True)
    for a, c in zip(ours, theirs):
        if c is None:
            assert a is None or np.allclose(a.numpy(), 0)
        else:
            np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("module, shape", [("BatchNorm1d", (8, 4)), ("BatchNorm1d", (5, 4, 3)),
                                           ("BatchNorm2d", (3, 4, 3, 3))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_module_running_stats_match_pytorch_after_several_steps(torch, module, shape, momentum):
    rng = np.random.default_rng(4)
    ours = getattr(nn, module)(4, momentum=momentum)
    theirs = getattr(torch.nn, module)(4, momentum=momentum)
    for step in range(4):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        y, ty = ours(tg.tensor(x)), theirs(torch.tensor(x))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(),
                                   rtol=1e-5, atol=1e-6)
    assert ours.num_batches_tracked.item() == theirs.num_batches_tracked.item() == 4
    ours.eval(), theirs.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(ours(tg.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


# --- modules -------------------------------------------------------------------------------------
def test_module_defaults_and_state_dict():
    bn = nn.BatchNorm2d(3)
    assert (bn.weight.numpy() == 1).all() and (bn.bias.numpy() == 0).all()
    assert (bn.running_mean.numpy() == 0).all() and (bn.running_var.numpy() == 1).all()
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.shape == ()
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    assert bn.eps == 1e-5 and bn.momentum == 0.1 and bn.weight.dtype == np.float32
    assert repr(bn) == "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"

    bn(tg.randn(4, 3, 2, 2) * 3 + 1)
    fresh = nn.BatchNorm2d(3)
    fresh.load_state_dict(bn.state_dict())
    for key, value in bn.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[key].numpy(), value.numpy())


def test_module_without_affine_or_running_stats():
    bn = nn.BatchNorm1d(2, affine=False, track_running_stats=False)
    assert list(bn.parameters()) == [] and list(bn.state_dict()) == []
    bn.eval()  # no running statistics: the batch's are used in eval mode too
    x = tg.randn(6, 2) * 5
    np.testing.assert_allclose(bn(x).numpy().mean(0), 0, atol=1e-5)


def test_eval_mode_uses_running_stats_and_leaves_them_alone():
    bn = nn.BatchNorm1d(2, dtype=tg.float64)
    bn.running_mean.copy_(np.array([1.0, -1.0]))
    bn.running_var.copy_(np.array([4.0, 0.25]))
    bn.eval()
    x = np.array([[3.0, 0.0], [1.0, -1.5]])
    y = bn(tg.tensor(x, dtype=tg.float64)).numpy()
    np.testing.assert_allclose(y, (x - [1.0, -1.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5))
    assert bn.num_batches_tracked.item() == 0
    np.testing.assert_array_equal(bn.running_mean.numpy(), [1.0, -1.0])


# --- errors --------------------------------------------------------------------------------------
def test_errors_name_the_argument_and_the_shapes():
    x = tg.randn(4, 3, 2)
    with pytest.raises(ValueError, match=r"running_mean should contain 3 elements.*\(4, 3, 2\).*\(5,\)"):
        batch_norm(x, tg.zeros(5), tg.ones(3))
    with pytest.raises(ValueError, match=r"weight should contain 3 elements.*got shape \(2,\)"):
        batch_norm(x, None, None, weight=tg.ones(2), training=True)
    with pytest.raises(TypeError, match=r"bias has dtype float64 but the input \(shape \(4, 3, 2\)\)"):
        batch_norm(x, None, None, bias=tg.zeros(3, dtype=tg.float64), training=True)
    with pytest.raises(ValueError, match=r"2-D \(N, C\).*got shape \(4,\)"):
        batch_norm(tg.randn(4), None, None, training=True)
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 1, 1, 1\)"):
        batch_norm(tg.randn(1, 2, 1, 1, 1), None, None, training=True)
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, "
                                         r"got input size \(1, 3, 1\)"):
        batch_norm(tg.randn(1, 3, 1), None, None, training=True)
    with pytest.raises(ValueError, match="running_mean and running_var must be given"):
        batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match="eps must be a positive number"):
        batch_norm(x, None, None, training=True, eps=0)
    with pytest.raises(TypeError, match="momentum must be a number"):
        batch_norm(x, tg.zeros(3), tg.ones(3), training=True, momentum=None)


def test_module_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4D input \(got 3D input of shape \(2, 3, 4\)\)"):
        nn.BatchNorm2d(3)(tg.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 2D or 3D input"):
        nn.BatchNorm1d(3)(tg.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): expected 3 channels.*\(2, 5\)"):
        nn.BatchNorm1d(3)(tg.randn(2, 5))
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match="eps"):
        nn.BatchNorm2d(2, eps=-1.0)


