"""A leaf's .grad takes over a gradient's array without a copy exactly when nothing else
can see that array (engine._handover): fresh arrays are handed over; arrays a user, a
second leaf, a saved graph or a hook still refers to are copied, so changing one .grad in
place never changes anything else."""
import numpy as np

import tinygen as tg
from tinygen.autograd.tensor import Tensor


class _Fresh(tg.Function):
    """Identity whose backward returns a fresh array and records it (by id only)."""
    made = []

    def forward(self, a):
        return a.copy()

    def backward(self, g):
        arr = g.data * 1.0
        _Fresh.made.append(id(arr))
        return Tensor._make(arr)


class _Kept(tg.Function):
    """Identity whose backward keeps a reference to the array it returns."""
    kept = []

    def forward(self, a):
        return a.copy()

    def backward(self, g):
        arr = g.data * 1.0
        _Kept.kept.append(arr)
        return Tensor._make(arr)


def _leaf(n=3):
    return tg.tensor(np.ones(n, np.float32), requires_grad=True)


def test_a_fresh_gradient_array_becomes_grad_without_a_copy():
    w = _leaf()
    _Fresh.apply(w).sum().backward()
    assert id(w.grad.data) == _Fresh.made[-1]
    layer = tg.nn.Linear(4, 2)
    layer(tg.randn(3, 4)).sum().backward()
    assert layer.weight.grad.data.base is None


def test_an_array_referred_to_elsewhere_is_copied():
    w = _leaf()
    _Kept.apply(w).sum().backward()
    assert w.grad.data is not _Kept.kept[-1]
    np.testing.assert_array_equal(w.grad.numpy(), _Kept.kept[-1])


def test_a_users_gradient_is_copied_into_grad():
    a, b = _leaf(), _leaf()
    g = tg.tensor(np.arange(3, dtype=np.float32))
    (a + b).backward(g)          # add passes g itself to both leaves
    a.grad.data *= 2
    np.testing.assert_array_equal(g.numpy(), [0, 1, 2])
    np.testing.assert_array_equal(b.grad.numpy(), [0, 1, 2])


def test_one_gradient_reaching_two_leaves_gives_each_its_own_array():
    a, b = _leaf(), _leaf()
    (a + b).sum().backward()     # sum's gradient, passed by add to both leaves
    assert a.grad.data is not b.grad.data
    a.grad.data *= 5
    np.testing.assert_array_equal(b.grad.numpy(), [1, 1, 1])


def test_a_retained_graph_or_a_hook_keeps_its_array():
    w = _leaf()
    y = _Fresh.apply(w) * 2.0
    seen = []
    w.register_hook(lambda g: seen.append(g))
    y.sum().backward(retain_graph=True)
    assert w.grad.data is not seen[-1].data
    first = w.grad.numpy().copy()
    y.sum().backward()          # accumulates into a new array, the old one unchanged
    np.testing.assert_array_equal(w.grad.numpy(), 2 * first)
    np.testing.assert_array_equal(seen[0].numpy(), first)


def test_a_gradient_summed_by_the_engine_is_handed_over(monkeypatch):
    # The engine's own sum of a leaf's gradients is referred to by nothing else, so it
    # becomes .grad as it is.  Seen by recording (by id only: a reference would itself
    # make it copy) every array the engine wraps in a Tensor.
    from types import SimpleNamespace
    from tinygen.autograd import engine

    made = []

    class Recording(Tensor):
        __slots__ = ()

        @classmethod
        def _make(cls, data, grad_fn=None, output_index=0):
            made.append(id(data))
            return Tensor._make(data, grad_fn, output_index)

    monkeypatch.setattr(engine, "_tensor", SimpleNamespace(Tensor=Recording))
    w = _leaf()
    (_Fresh.apply(w) + _Fresh.apply(w) + _Fresh.apply(w)).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3, 3, 3])
    assert id(w.grad.data) == made[0]  # the first sum, the third gradient added in place
