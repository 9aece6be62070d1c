"""nn.utils.ema: the weight average's rule, its decay schedule and its errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
from tinygen import nn
from tinygen.nn.utils.ema import ema_copy, ema_decay, ema_update_


def _model(seed):
    tg.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


@settings(max_examples=25, deadline=None)
@given(decay=st.floats(0.0, 0.999), step=st.integers(0, 10_000))
def test_decay_schedule(decay, step):
    d = ema_decay(decay, step)
    assert d == min(decay, (1 + step) / (10 + step))
    assert 0.0 <= d <= decay and ema_decay(decay) == decay


def test_update_averages_floats_and_copies_ints():
    model, avg = _model(0), None
    avg = ema_copy(model)
    assert avg.training is False
    assert all(not p.requires_grad for p in avg.parameters())
    before = {k: v.numpy().copy() for k, v in avg.state_dict().items()}
    model.train()
    model(tg.randn(8, 3))             # moves the BatchNorm's running stats and its count
    for p in model.parameters():
        p.data += 1.0
    d = ema_update_(avg, model, 0.9, step=5)
    assert d == pytest.approx(6 / 15)
    after, src = avg.state_dict(), model.state_dict()
    for k, v in after.items():
        if before[k].dtype.kind == "f":
            np.testing.assert_allclose(v.numpy(), d * before[k] + (1 - d) * src[k].numpy(),
                                       rtol=1e-6, err_msg=k)
            assert not np.array_equal(v.numpy(), before[k]), k
        else:
            np.testing.assert_array_equal(v.numpy(), src[k].numpy(), err_msg=k)
    # the model itself is untouched by the update, and no graph was built
    assert all(p.grad is None for p in model.parameters())


def test_decay_zero_copies_and_errors_name_the_problem():
    model = _model(1)
    avg = ema_copy(_model(2))
    ema_update_(avg, model, 0.0)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(avg.state_dict()[k].numpy(), v.numpy())
    with pytest.raises(ValueError, match="decay"):
        ema_update_(avg, model, 1.0)
    with pytest.raises(ValueError, match="step"):
        ema_update_(avg, model, 0.5, step=-1)
    with pytest.raises(ValueError, match="different state entries"):
        ema_update_(avg, nn.Sequential(nn.Linear(3, 4)), 0.5)
    with pytest.raises(ValueError, match="float64"):
        ema_update_(avg, _model(1).double(), 0.5)
