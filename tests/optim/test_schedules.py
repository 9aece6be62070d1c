"""The learning-rate schedules shared by the recipes (``tinygen/optim/schedules.py``)."""
import math

import pytest

from tinygen import optim
from tinygen.optim.schedules import SCHEDULES, check_schedule, scheduled_lr, set_lr


@pytest.mark.parametrize("step, cosine, linear", [
    (0, 1.0, 1.0), (5, 0.5 * (1 + math.cos(math.pi / 2)), 0.5), (10, 0.0, 0.0), (25, 0.0, 0.0)])
def test_the_schedules_go_from_lr_to_lr_min_over_the_decay_steps(step, cosine, linear):
    lr, low = 3e-3, 1e-4
    assert scheduled_lr("constant", lr, low, 10, step) == lr
    assert scheduled_lr("cosine", lr, low, 10, step) == pytest.approx(low + (lr - low) * cosine)
    assert scheduled_lr("linear", lr, low, 10, step) == pytest.approx(low + (lr - low) * linear)


def test_a_bad_schedule_is_a_clear_error():
    assert SCHEDULES == ("constant", "cosine", "linear")
    with pytest.raises(ValueError, match="one of constant, cosine, linear, got 'exp'"):
        check_schedule("exp", 10)
    with pytest.raises(ValueError, match="lr_schedule=cosine needs lr_decay_steps >= 1"):
        check_schedule("cosine", 0)
    check_schedule("constant", 0)
    with pytest.raises(ValueError, match="got 'exp'"):
        scheduled_lr("exp", 1.0, 0.0, 10, 3)


def test_set_lr_sets_every_group():
    opt = optim.SGD([{"params": [_param()]}, {"params": [_param()], "lr": 0.5}], lr=0.1)
    set_lr(opt, 0.02)
    assert [g["lr"] for g in opt.param_groups] == [0.02, 0.02]


def _param():
    import tinygen as tg

    return tg.nn.Parameter(tg.zeros(2))
