"""Issue 11: the README says names follow PyTorch, but `x.sum(dim=1)` raised. Every
reduction and shape op (function and Tensor method) accepts PyTorch's dim/keepdim as
well as numpy's axis/keepdims; max/min called with dim return PyTorch's
(values, indices)."""
import numpy as np
import pytest

import tinygen as tg

X = np.random.default_rng(0).standard_normal((3, 4, 2))

REDUCTIONS = ["sum", "mean", "var", "std", "logsumexp", "argmax", "argmin", "norm"]
SHAPE_CALLS = [  # (function, args, numpy spelling, PyTorch spelling)
    (tg.softmax, (), {"axis": 1}, {"dim": 1}),
    (tg.log_softmax, (), {"axis": 0}, {"dim": 0}),
    (tg.unsqueeze, (), {"axis": 1}, {"dim": 1}),
    (tg.squeeze, (), {"axis": 0}, {"dim": 0}),
    (lambda x, **k: tg.concatenate([x, x], **k), (), {"axis": 2}, {"dim": 2}),
    (lambda x, **k: tg.cat([x, x], **k), (), {"axis": 1}, {"dim": 1}),
    (lambda x, **k: tg.stack([x, x], **k), (), {"axis": 1}, {"dim": 1}),
    (lambda x, **k: tg.split(x, 2, **k)[1], (), {"axis": 1}, {"dim": 1}),
    (lambda x, **k: tg.chunk(x, 2, **k)[0], (), {"axis": 1}, {"dim": 1}),
]


def t():
    return tg.tensor(X, requires_grad=True)


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("keep", [False, True])
def test_reductions_take_dim_and_keepdim(name, keep):
    numpy_way = getattr(t(), name)(axis=1, keepdims=keep)
    for torch_way in (getattr(t(), name)(dim=1, keepdim=keep),
                      getattr(tg, name)(t(), dim=1, keepdim=keep)):
        np.testing.assert_array_equal(torch_way.numpy(), numpy_way.numpy())
    if name not in ("argmax", "argmin"):  # and gradients flow the same way
        a, b = t(), t()
        getattr(a, name)(axis=1, keepdims=keep).sum().backward()
        getattr(b, name)(dim=1, keepdim=keep).sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


@pytest.mark.parametrize("fn, args, numpy_kw, torch_kw", SHAPE_CALLS)
def test_shape_ops_take_dim(fn, args, numpy_kw, torch_kw):
    x = tg.tensor(X[:1] if fn is tg.squeeze else X)
    np.testing.assert_array_equal(fn(x, *args, **torch_kw).numpy(),
                                  fn(x, *args, **numpy_kw).numpy())
    for method in ("softmax", "log_softmax", "unsqueeze", "squeeze"):
        if fn is getattr(tg, method):
            np.testing.assert_array_equal(getattr(x, method)(**torch_kw).numpy(),
                                          fn(x, **numpy_kw).numpy())


@pytest.mark.parametrize("name, arg", [("max", "argmax"), ("min", "argmin")])
def test_max_min_with_dim_return_values_and_indices(name, arg):
    values, indices = getattr(t(), name)(dim=2)
    np.testing.assert_array_equal(values.numpy(), getattr(np, name)(X, axis=2))
    np.testing.assert_array_equal(indices.numpy(), getattr(np, arg)(X, axis=2))
    pair = getattr(tg, name)(t(), dim=0, keepdim=True)
    assert pair.values.shape == pair.indices.shape == (1, 4, 2)
    # numpy's spelling keeps numpy's result: the values alone
    np.testing.assert_array_equal(getattr(t(), name)(axis=2).numpy(), values.numpy())
    torch = pytest.importorskip("torch")
    ref = getattr(torch.tensor(X), name)(dim=2)
    np.testing.assert_array_equal(indices.numpy(), ref.indices.numpy())


def test_both_spellings_at_once_is_an_error():
    with pytest.raises(TypeError, match="both 'axis' and 'dim'"):
        t().sum(axis=1, dim=1)
    with pytest.raises(TypeError, match="both 'keepdims' and 'keepdim'"):
        tg.mean(t(), keepdims=True, keepdim=True)
