"""Losses, every reduction: cross_entropy (class indices incl. K-dim (N, C, d1, d2),
ignore_index, weight, label_smoothing, probability targets), nll_loss,
binary_cross_entropy, binary_cross_entropy_with_logits (weight, pos_weight),
mse_loss, l1_loss.

Values are checked against plain numpy formulas (always) and against PyTorch's
CPU build when it is installed (optional cross-check); gradients with gradcheck
and gradgradcheck in float64.
"""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg
from tinygen.testing import assert_close, check_grads, f64, strategies as tst

from ._helpers import np_special, f32

REDUCTIONS = ["mean", "sum", "none"]


# --- numpy references -------------------------------------------------------------------------
def _reduce(per_element, reduction, denominator=None):
    if reduction == "none":
        return per_element
    total = per_element.sum()
    if reduction == "sum":
        return total
    return total / (per_element.size if denominator is None else denominator)


def ref_nll(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    """PyTorch's nll_loss for (N, C, d...) or (C,) log-probabilities."""
    batched = logp.ndim >= 2
    if not batched:
        logp, target = logp[None], np.reshape(target, (1,))
    lp = np.moveaxis(logp, 1, -1)  # (N, d..., C)
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    picked = np.take_along_axis(lp, safe[..., None], -1)[..., 0]
    w = valid * (1.0 if weight is None else weight[safe])
    per = -picked * w
    out = _reduce(per, reduction, w.sum())
    return out if batched or reduction != "none" else out[0]


def ref_cross_entropy(logits, target, weight=None, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0):
    class_axis = 1 if logits.ndim >= 2 else 0
    logp = np_special.log_softmax(logits, axis=class_axis)
    n_classes = logits.shape[class_axis]
    w_shape = [1] * logits.ndim
    w_shape[class_axis] = n_classes
    w_c = np.ones(n_classes) if weight is None else weight
    if np.issubdtype(np.asarray(target).dtype, np.floating):  # class probabilities
        p = target * (1 - label_smoothing) + label_smoothing / n_classes
        per = -(logp * p * w_c.reshape(w_shape)).sum(axis=class_axis)
        return _reduce(per, reduction)
    nll = ref_nll(logp, target, weight, ignore_index, reduction)
    if not label_smoothing:
        return nll
    valid = target != ignore_index
    smooth = -(logp * w_c.reshape(w_shape)).sum(axis=class_axis) * valid
    safe = np.where(valid, target, 0)
    denominator = (valid * w_c[safe]).sum()
    return (1 - label_smoothing) * nll + label_smoothing / n_classes * _reduce(
        smooth, reduction, denominator)


def ref_bce(p, t, weight=None, reduction="mean"):
    per = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log1p(-p), -100))
    if weight is not None:
        per = per * weight
    return _reduce(per, reduction)


def ref_bce_with_logits(x, t, weight=None, reduction="mean", pos_weight=None):
    log_sig, log_one_minus = -np.logaddexp(0, -x), -np.logaddexp(0, x)
    pw = 1.0 if pos_weight is None else pos_weight
    per = -(pw * t * log_sig + (1 - t) * log_one_minus)
    if weight is not None:
        per = per * weight
    return _reduce(per, reduction)


# --- strategies ------------------------------------------------------------------------------
@st.composite
def classification_cases(draw, k_dims=(0, 1, 2), max_classes=4):
    """Logits (N, C, d...), integer targets (N, d...) with some ignored, and options."""
    n_extra = draw(st.sampled_from(k_dims), label="extra dims")
    n = draw(st.integers(1, 3 if n_extra == 0 else 2))
    c = draw(st.integers(2, max_classes))
    extra = tuple(draw(st.integers(1, 2)) for _ in range(n_extra))
    logits = draw(tst.tensors((n, c) + extra, requires_grad=True))
    target = draw(hnp.arrays(np.int64, (n,) + extra, elements=st.integers(0, c - 1)))
    ignore_index = draw(st.sampled_from([-100, 1]), label="ignore_index")
    drop = draw(hnp.arrays(np.bool_, target.shape), label="ignored")
    target = np.where(drop, ignore_index, target) if ignore_index == -100 else target
    weight = draw(st.one_of(st.none(), hnp.arrays(np.float64, (c,),
                                                   elements=st.floats(0.2, 2.0))), label="w")
    return logits, target, ignore_index, weight


def _has_weighted_targets(target, ignore_index, weight):
    valid = target != ignore_index
    if weight is None:
        return valid.any()
    return (valid * weight[np.where(valid, target, 0)]).sum() > 0


# --- cross_entropy / nll_loss -------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(case=classification_cases(), smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy_class_indices(reduction, case, smoothing):
    logits, target, ignore_index, weight = case
    if reduction == "mean":
        assume(_has_weighted_targets(target, ignore_index, weight))
    w = None if weight is None else tg.tensor(weight, dtype=tg.float64)
    kwargs = dict(weight=w, ignore_index=ignore_index, reduction=reduction,
                  label_smoothing=smoothing)
    expected = ref_cross_entropy(logits.numpy(), target, weight, ignore_index, reduction,
                                 smoothing)
    assert_close(tg.cross_entropy(logits, tg.tensor(target), **kwargs), expected)
    check_grads(lambda x: tg.cross_entropy(x, tg.tensor(target), **kwargs), [logits])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(case=classification_cases())
def test_nll_loss(reduction, case):
    logits, target, ignore_index, weight = case
    if reduction == "mean":
        assume(_has_weighted_targets(target, ignore_index, weight))
    # nll_loss takes any scores (log-probabilities in practice); use the logits as they are
    w = None if weight is None else tg.tensor(weight, dtype=tg.float64)
    kwargs = dict(weight=w, ignore_index=ignore_index, reduction=reduction)
    expected = ref_nll(logits.numpy(), target, weight, ignore_index, reduction)
    assert_close(tg.nll_loss(logits, tg.tensor(target), **kwargs), expected)
    check_grads(lambda x: tg.nll_loss(x, target, **kwargs), [logits])


@st.composite
def soft_label_cases(draw):
    n_extra = draw(st.sampled_from([0, 1]))
    n, c = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    shape = (n, c) + tuple(draw(st.integers(1, 2)) for _ in range(n_extra))
    logits = draw(tst.tensors(shape, requires_grad=True))
    raw = draw(hnp.arrays(np.float64, shape, elements=st.floats(0.05, 1.0)))
    target = f64(raw / raw.sum(axis=1, keepdims=True))  # rows are distributions
    weight = draw(st.one_of(st.none(), hnp.arrays(np.float64, (c,), elements=st.floats(0.2, 2.0))))
    return logits, target, weight


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(case=soft_label_cases(), smoothing=st.sampled_from([0.0, 0.3]))
def test_cross_entropy_probability_targets(reduction, case, smoothing):
    logits, target, weight = case
    w = None if weight is None else tg.tensor(weight, dtype=tg.float64)
    kwargs = dict(weight=w, reduction=reduction, label_smoothing=smoothing)
    expected = ref_cross_entropy(logits.numpy(), target.numpy(), weight, reduction=reduction,
                                 label_smoothing=smoothing)
    assert_close(tg.cross_entropy(logits, target, **kwargs), expected)
    # soft labels are differentiable too
    check_grads(lambda x, t: tg.cross_entropy(x, t, **kwargs), [logits, target])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_unbatched_input(reduction):
    logits = f64([0.3, -1.2, 2.0])
    for target in (0, 2):
        expected = ref_cross_entropy(logits.numpy(), np.array(target), reduction=reduction)
        out = tg.cross_entropy(logits, tg.tensor(target), reduction=reduction)
        assert out.shape == ()
        assert_close(out, expected)
        check_grads(lambda x: tg.cross_entropy(x, tg.tensor(target), reduction=reduction),
                    [logits])


def test_cross_entropy_gradient_is_softmax_minus_one_hot():
    rng = np.random.default_rng(0)
    logits = f64(rng.standard_normal((4, 5)))
    target = np.array([0, 4, 2, 2])
    tg.cross_entropy(logits, tg.tensor(target), reduction="sum").backward()
    expected = np_special.softmax(logits.numpy(), axis=1)
    expected[np.arange(4), target] -= 1.0
    assert_close(logits.grad, expected)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mean_over_only_ignored_targets_is_nan_like_pytorch(smoothing):
    logits = f64(np.zeros((2, 3)))
    target = tg.tensor(np.array([-100, -100]))
    kwargs = dict(label_smoothing=smoothing)
    assert np.isnan(tg.cross_entropy(logits, target, **kwargs).item())
    assert tg.cross_entropy(logits, target, reduction="sum", **kwargs).item() == 0.0
    assert_close(tg.cross_entropy(logits, target, reduction="none", **kwargs), [0.0, 0.0])


# --- binary cross-entropy ---------------------------------------------------------------------------
@st.composite
def binary_cases(draw, probabilities):
    shape = draw(st.sampled_from([(3,), (2, 3), (2, 1, 3)]))
    if probabilities:
        x = draw(tst.tensors(shape, min_value=0.05, max_value=0.95, requires_grad=True))
    else:
        x = draw(tst.tensors(shape, requires_grad=True))
    target = draw(tst.tensors(shape, min_value=0.0, max_value=1.0, requires_grad=True))
    weight = draw(st.one_of(st.none(), hnp.arrays(np.float64, draw(st.sampled_from([shape, (3,)])),
                                                   elements=st.floats(0.2, 2.0))))
    pos_weight = draw(st.one_of(st.none(), hnp.arrays(np.float64, (3,),
                                                       elements=st.floats(0.2, 3.0))))
    return x, target, weight, pos_weight


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(case=binary_cases(probabilities=True))
def test_binary_cross_entropy(reduction, case):
    x, target, weight, _ = case
    w = None if weight is None else tg.tensor(weight, dtype=tg.float64)
    expected = ref_bce(x.numpy(), target.numpy(), weight, reduction)
    assert_close(tg.binary_cross_entropy(x, target, weight=w, reduction=reduction), expected)
    check_grads(lambda p, t: tg.binary_cross_entropy(p, t, weight=w, reduction=reduction),
                [x, target])


def test_binary_cross_entropy_clamps_logs_at_minus_100():
    p = f64([0.0, 1.0, 0.5], requires_grad=False)
    t = f64([1.0, 0.0, 1.0], requires_grad=False)
    with np.errstate(divide="ignore"):
        out = tg.binary_cross_entropy(p, t, reduction="none")
    assert_close(out, [100.0, 100.0, np.log(2.0)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(case=binary_cases(probabilities=False))
def test_binary_cross_entropy_with_logits(reduction, case):
    x, target, weight, pos_weight = case
    w = None if weight is None else tg.tensor(weight, dtype=tg.float64)
    pw = None if pos_weight is None else tg.tensor(pos_weight, dtype=tg.float64)
    kwargs = dict(weight=w, reduction=reduction, pos_weight=pw)
    expected = ref_bce_with_logits(x.numpy(), target.numpy(), weight, reduction, pos_weight)
    assert_close(tg.binary_cross_entropy_with_logits(x, target, **kwargs), expected)
    check_grads(lambda z, t: tg.binary_cross_entropy_with_logits(z, t, **kwargs), [x, target])


def test_binary_cross_entropy_with_logits_is_stable_for_large_logits():
    x = f64([-800.0, 800.0, 30.0, -30.0])
    t = f64([1.0, 0.0, 1.0, 0.0], requires_grad=False)
    out = tg.binary_cross_entropy_with_logits(x, t, reduction="none")
    assert_close(out, ref_bce_with_logits(x.numpy(), t.numpy(), reduction="none"), rtol=1e-8)
    out.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))


# --- regression losses ----------------------------------------------------------------------------
@st.composite
def regression_cases(draw, avoid_ties):
    shapes = draw(st.sampled_from([((), ()), ((3,), (3,)), ((2, 3), (2, 3)), ((2, 1, 2), (2, 1, 2))]))
    x = draw(tst.tensors(shapes[0], requires_grad=True))
    diff = draw(tst.tensors(shapes[1], avoid=(0.0,) if avoid_ties else (), margin=0.1))
    target = f64(x.numpy() + diff.numpy())  # |x - target| kept away from l1's kink
    return x, target


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(case=regression_cases(avoid_ties=False))
def test_mse_loss(reduction, case):
    x, target = case
    expected = _reduce((x.numpy() - target.numpy()) ** 2, reduction)
    assert_close(tg.mse_loss(x, target, reduction=reduction), expected)
    check_grads(lambda a, b: tg.mse_loss(a, b, reduction=reduction), [x, target])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@given(case=regression_cases(avoid_ties=True))
def test_l1_loss(reduction, case):
    x, target = case
    expected = _reduce(np.abs(x.numpy() - target.numpy()), reduction)
    assert_close(tg.l1_loss(x, target, reduction=reduction), expected)
    check_grads(lambda a, b: tg.l1_loss(a, b, reduction=reduction), [x, target])


def test_losses_default_to_mean_reduction():
    x = f64([[1.0, 2.0], [3.0, 5.0]])
    t = f64([[0.0, 2.0], [1.0, 1.0]], requires_grad=False)
    assert_close(tg.mse_loss(x, t), (1 + 0 + 4 + 16) / 4)
    assert_close(tg.l1_loss(x, t), (1 + 0 + 2 + 4) / 4)


# --- PyTorch cross-check (optional) ---------------------------------------------------------------
TORCH_CASES = [
    ("cross_entropy", dict()), ("cross_entropy", dict(label_smoothing=0.1)),
    ("cross_entropy", dict(weight=True)), ("cross_entropy", dict(ignore_index=2)),
    ("cross_entropy", dict(weight=True, ignore_index=-100)),
    ("cross_entropy", dict(weight=True, label_smoothing=0.3, ignore_index=0)),
    ("cross_entropy-kdim", dict(weight=True)), ("cross_entropy-kdim", dict(label_smoothing=0.25)),
    ("cross_entropy-kdim", dict(weight=True, label_smoothing=0.15)),
    ("cross_entropy-probs", dict(weight=True, label_smoothing=0.2)),
    ("nll_loss", dict(weight=True, ignore_index=1)), ("nll_loss-kdim", dict()),
    ("binary_cross_entropy", dict(weight=True)),
    ("binary_cross_entropy_with_logits", dict(weight=True, pos_weight=True)),
    ("mse_loss", dict()), ("l1_loss", dict()),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, options", TORCH_CASES,
                         ids=[f"{n}-{'-'.join(o) or 'plain'}" for n, o in TORCH_CASES])
def test_losses_match_pytorch(name, options, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    base, _, variant = name.partition("-")
    c = 4
    shape = (3, c, 2, 2) if variant == "kdim" else (5, c)
    x = rng.standard_normal(shape)
    tshape = (shape[0],) + shape[2:]
    if base in ("cross_entropy", "nll_loss"):
        if variant == "probs":
            target = rng.dirichlet(np.ones(c), size=shape[0])
        else:
            target = rng.integers(0, c, tshape)
            target.flat[0] = options.get("ignore_index", -100)
        if base == "nll_loss":
            x = np_special.log_softmax(x, axis=1)
    elif base == "binary_cross_entropy":
        x = rng.uniform(0.05, 0.95, shape)
        target = rng.uniform(0, 1, shape)
    else:
        target = rng.standard_normal(shape) if base in ("mse_loss", "l1_loss") else \
            rng.uniform(0, 1, shape)
    kwargs_tg, kwargs_t = dict(reduction=reduction), dict(reduction=reduction)
    for key, value in options.items():
        if value is True:  # a tensor option
            array = rng.uniform(0.3, 2.0, (c,))
            kwargs_tg[key], kwargs_t[key] = f64(array, False), torch.tensor(array)
        else:
            kwargs_tg[key] = kwargs_t[key] = value
    ours_x, theirs_x = f64(x), torch.tensor(x, requires_grad=True)
    ours_t = f64(target, False) if target.dtype == np.float64 else tg.tensor(target)
    ours = getattr(tg, base)(ours_x, ours_t, **kwargs_tg)
    theirs = getattr(F, base)(theirs_x, torch.tensor(target), **kwargs_t)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    upstream = rng.standard_normal(ours.shape)
    ours.backward(tg.tensor(upstream, dtype=tg.float64))
    theirs.backward(torch.tensor(upstream))
    np.testing.assert_allclose(ours_x.grad.numpy(), theirs_x.grad.numpy(), rtol=1e-9, atol=1e-12)


# --- float32 stays float32 ---------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda x: tg.cross_entropy(x, tg.tensor([0, 2])),
    lambda x: tg.cross_entropy(x, tg.tensor([0, 2]), weight=f32([1.0, 2.0, 0.5], False)),
    lambda x: tg.cross_entropy(x, tg.tensor([0, 2]), label_smoothing=0.1),
    lambda x: tg.cross_entropy(x, f32([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], False)),
    lambda x: tg.nll_loss(x, tg.tensor([1, 1]), reduction="sum"),
    lambda x: tg.binary_cross_entropy(tg.sigmoid(x), f32([[0, 1, 1], [1, 0, 0]], False)),
    lambda x: tg.binary_cross_entropy_with_logits(x, f32([[0, 1, 1], [1, 0, 0]], False),
                                                  pos_weight=f32([1.0, 2.0, 3.0], False)),
    lambda x: tg.mse_loss(x, f32(np.zeros((2, 3)), False)),
    lambda x: tg.l1_loss(x, f32(np.zeros((2, 3)), False), reduction="none"),
], ids=["ce", "ce-weight", "ce-smoothing", "ce-probs", "nll", "bce", "bce-logits", "mse", "l1"])
def test_float32_losses_stay_float32(fn):
    x = f32([[0.3, -1.2, 2.0], [1.1, 0.4, -0.6]])
    out = fn(x)
    assert out.dtype == np.float32
    (g,) = tg.grad(out.sum(), x)
    assert g.dtype == np.float32
