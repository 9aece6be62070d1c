"""clip_grad_norm_ and clip_grad_value_, against hand computation and torch."""
import math

import numpy as np
import pytest

import tinygen as tg
from tinygen import nn
from tinygen.nn.utils import clip_grad_norm_, clip_grad_value_


def _params_with_grads(grads, dtype=np.float64):
    params = []
    for g in grads:
        p = nn.Parameter(np.zeros_like(g, dtype=dtype))
        p.grad = tg.tensor(np.asarray(g, dtype=dtype))
        params.append(p)
    return params


GRADS = [np.array([[3.0, -4.0], [1.0, 2.0]]), np.array([0.5, -12.0, 7.0])]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [1.0, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    params = _params_with_grads(GRADS)
    t_params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in GRADS]
    for p, g in zip(t_params, GRADS):
        p.grad = torch.tensor(g)
    total = clip_grad_norm_(params, max_norm, norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(t_params, max_norm, norm_type)
    assert total.item() == pytest.approx(t_total.item(), rel=1e-12)
    for p, tp in zip(params, t_params):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_scales_to_max_norm():
    params = _params_with_grads(GRADS)
    total = clip_grad_norm_(params, 1.0)
    expected = math.sqrt(sum((g ** 2).sum() for g in GRADS))
    assert total.item() == pytest.approx(expected)
    new_norm = math.sqrt(sum((p.grad.numpy() ** 2).sum() for p in params))
    assert new_norm == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_keeps_dtype_skips_none_and_single_tensor():
    params = _params_with_grads(GRADS, dtype=np.float32)
    params.append(nn.Parameter(tg.zeros(3)))  # no grad: skipped
    total = clip_grad_norm_(params, 0.5)
    assert total.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in params[:2])
    single = _params_with_grads([np.array([3.0, 4.0])])[0]
    assert clip_grad_norm_(single, 10.0).item() == pytest.approx(5.0)
    assert clip_grad_norm_([nn.Parameter(tg.zeros(2))], 1.0).item() == 0.0


def test_clip_grad_norm_nonfinite():
    params = _params_with_grads([np.array([1.0, np.inf])])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert math.isinf(clip_grad_norm_(params, 1.0).item())


@pytest.mark.parametrize("max_norm", [-1.0, float("nan")])
def test_clip_grad_norm_refuses_a_negative_or_nan_bound(max_norm):
    params = _params_with_grads(GRADS)
    with pytest.raises(ValueError, match="max_norm must be >= 0"):
        clip_grad_norm_(params, max_norm)
    assert np.array_equal(params[0].grad.numpy(), GRADS[0])        # (untouched)
    total = clip_grad_norm_(params, math.inf)                      # the norm, unclipped
    assert np.array_equal(params[0].grad.numpy(), GRADS[0]) and total.item() > 0


def test_clip_grad_value():
    params = _params_with_grads(GRADS)
    clip_grad_value_(params, 2.5)
    np.testing.assert_array_equal(params[0].grad.numpy(), [[2.5, -2.5], [1.0, 2.0]])
    np.testing.assert_array_equal(params[1].grad.numpy(), [0.5, -2.5, 2.5])


def test_clip_works_on_model_parameters():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    (model(tg.randn(5, 3)) * 100.0).sum().backward()
    clip_grad_norm_(model.parameters(), 0.1)
    norm = math.sqrt(sum((p.grad.numpy().astype(np.float64) ** 2).sum() for p in model.parameters()))
    assert norm <= 0.1 + 1e-5


from hypothesis import given, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402


@given(grads=st.lists(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=4),
                                 elements=st.floats(-1e3, 1e3)), min_size=1, max_size=3),
       max_norm=st.floats(1e-3, 1e3))
def test_clip_grad_norm_property(grads, max_norm):
    params = _params_with_grads(grads)
    total = clip_grad_norm_(params, max_norm).item()
    assert total == pytest.approx(math.sqrt(sum((g ** 2).sum() for g in grads)), rel=1e-9, abs=1e-12)
    new = math.sqrt(sum((p.grad.numpy() ** 2).sum() for p in params))
    assert new <= max_norm * (1 + 1e-9) or new <= total * (1 + 1e-9) <= max_norm * (1 + 1e-6)
    if total + 1e-6 <= max_norm:  # no clipping (the 1e-6 guards a zero norm, as in PyTorch)
        for p, g in zip(params, grads):
            np.testing.assert_array_equal(p.grad.numpy(), g)
