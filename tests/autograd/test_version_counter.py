"""Issue 11: an in-place change to a tensor saved for backward is an error naming the op
and the tensor (PyTorch's version counter), never a silently wrong gradient."""
import numpy as np
import pytest

import tinygen as tg


def leaf(values=(1.0, 2.0, 3.0)):
    return tg.tensor(np.array(values, dtype=np.float64), requires_grad=True)


@pytest.mark.parametrize("change, what", [
    (lambda t: t.fill_(100.0), "fill_"),
    (lambda t: t.zero_(), "zero_"),
    (lambda t: t.copy_(np.full(3, 7.0)), "copy_"),
    (lambda t: t.detach().fill_(5.0), "fill_"),       # a detached alias shares the counter
])
def test_in_place_change_of_a_saved_input_is_an_error(change, what):
    a = leaf()
    y = (a * a).sum()      # Mul saves a; a.fill_(100) used to give 200, not 2a
    change(a)
    with pytest.raises(RuntimeError) as e:
        y.backward()
    msg = str(e.value)
    assert msg.startswith("Mul backward:") and what in msg
    assert "float64 tensor of shape (3,)" in msg and "version 0 when saved, 1 now" in msg


def test_assigning_data_of_a_saved_tensor_is_an_error():
    a = leaf()
    y = a.tanh().sum() + (a * 2.0).sum()
    w = leaf()
    z = (w * w).sum()
    w.data = np.zeros(3)
    with pytest.raises(RuntimeError, match=r"Mul backward: .*assignment to its \.data"):
        z.backward()
    y.backward()  # untouched graph: fine


def test_in_place_change_of_a_saved_output_is_an_error():
    x = leaf()
    z = x.exp()            # Exp saves its output
    s = z.sum()
    z.fill_(0.0)
    with pytest.raises(RuntimeError, match=r"Exp backward: its output 0 .* by fill_"):
        s.backward()


def test_optimizer_step_between_forward_and_backward_is_an_error():
    w = tg.nn.Parameter(tg.tensor(np.ones((2, 2), dtype=np.float32)))
    opt = tg.optim.SGD([w], lr=0.1)
    x = tg.tensor(np.ones((3, 2), dtype=np.float32))
    first = (x @ w).sum()
    first.backward(retain_graph=True)
    second = ((x @ w) ** 2).sum()    # built from w as it was
    opt.step()                       # w changes in place
    with pytest.raises(RuntimeError, match=r"SGD\.step"):
        second.backward()


def test_legitimate_uses_still_work():
    # change after backward, changes under no_grad before the forward, repeated steps
    w = tg.nn.Parameter(tg.tensor(np.ones(3, dtype=np.float64)))
    opt = tg.optim.Adam([w], lr=0.1)
    for _ in range(3):
        loss = (w * w).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    w.fill_(2.0)
    w.grad = None
    loss = (w * w).sum()
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), np.full(3, 4.0))
    a = leaf()
    b = a.clone()
    y = (b * b).sum()
    a.fill_(9.0)           # a clone is not an alias
    y.backward()
    np.testing.assert_allclose(a.grad.numpy(), [2.0, 4.0, 6.0])
    assert a._version == 1 and b._version == 0
