"""Parameter: a leaf that requires grad and shares the data it is built from."""
import numpy as np
import pytest

import tinygen as tg
from tinygen import nn


def test_parameter_is_a_leaf_requiring_grad():
    p = nn.Parameter(tg.zeros(2, 3))
    assert isinstance(p, tg.Tensor) and p.is_leaf and p.requires_grad
    assert p.grad is None and p.shape == (2, 3)
    assert not nn.Parameter(tg.zeros(2), requires_grad=False).requires_grad


def test_parameter_shares_data_with_tensor_and_array():
    array = np.zeros(3, dtype=np.float32)
    p = nn.Parameter(array)
    assert p.data is array
    t = tg.ones(3)
    assert nn.Parameter(t).data is t.data


def test_parameter_from_non_leaf_is_a_new_leaf():
    x = tg.ones(2, requires_grad=True)
    y = x * 2.0
    p = nn.Parameter(y)
    assert p.is_leaf and p.data is y.data


def test_parameter_has_no_dict_and_repr():
    p = nn.Parameter(tg.zeros(2))
    assert not hasattr(p, "__dict__")
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert "requires_grad=True" in repr(p)


def test_ops_on_parameters_give_plain_tensors():
    p = nn.Parameter(tg.ones(2))
    out = p * 2.0
    assert type(out) is tg.Tensor and type(p.detach()) is tg.Tensor
    out.sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [2.0, 2.0])


def test_integer_parameter_cannot_require_grad():
    with pytest.raises(TypeError, match="floating"):
        nn.Parameter(np.zeros(2, dtype=np.int64))
    assert nn.Parameter(np.zeros(2, dtype=np.int64), requires_grad=False).dtype == np.int64
