"""detect_anomaly(): backward stops at the first NaN/Inf gradient, naming the op and
showing the forward call that created it."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.autograd import engine, function
from tinygen.autograd.anomaly import is_anomaly_enabled
from tinygen.autograd.function import Function


@pytest.fixture(autouse=True)
def anomaly_off():
    tg.set_detect_anomaly(False)
    observers = (list(engine._backward_observers), list(function._record_observers))
    yield
    tg.set_detect_anomaly(False)
    assert (engine._backward_observers, function._record_observers) == observers


@pytest.fixture(autouse=True)
def quiet_numpy():
    with np.errstate(divide="ignore", invalid="ignore"):
        yield


def test_injected_log_of_zero_is_caught_and_named():
    x = tg.tensor([0.0, 1.0], requires_grad=True)
    with tg.detect_anomaly():
        y = tg.log(x)  # the forward call to blame
        loss = (y * 2).sum()
        with pytest.raises(RuntimeError) as info:
            loss.backward()
    message = str(info.value)
    assert message.startswith("Function 'Log' returned Inf values in its gradient for input 0 "
                              "(shape (2,), float32): 0 NaN and 1 Inf of 2 values.")
    assert "The forward call that created this Log node (most recent call last):" in message
    assert "test_anomaly.py" in message and "y = tg.log(x)  # the forward call to blame" in message
    # the stack ends at the op, not inside the autograd machinery
    assert "autograd/function.py" not in message and "autograd/anomaly.py" not in message


def test_the_first_bad_op_is_named_not_the_ones_after_it():
    x = tg.tensor([0.0, 4.0], requires_grad=True)
    with tg.detect_anomaly():
        loss = tg.sqrt(x).exp().sum()  # sqrt's gradient 1/(2 sqrt 0) is Inf; exp's is fine
        with pytest.raises(RuntimeError, match="^Function 'Sqrt' returned Inf"):
            loss.backward()


def test_nan_from_a_custom_function():
    class Broken(Function):
        def forward(self, a):
            return a * 1

        def backward(self, grad):
            return grad * float("nan")

    x = tg.randn(3, requires_grad=True)
    with tg.detect_anomaly():
        y = Broken.apply(x)
        with pytest.raises(RuntimeError, match=r"'Broken' returned NaN values.*3 NaN and 0 Inf"):
            y.sum().backward()


def test_without_anomaly_mode_backward_completes_with_inf():
    x = tg.tensor([0.0, 1.0], requires_grad=True)
    tg.log(x).sum().backward()
    assert np.isinf(x.grad.numpy()[0])


def test_creation_stacks_are_kept_only_while_enabled():
    x = tg.randn(2, requires_grad=True)
    assert getattr(x.exp().grad_fn, "_creation_stack", None) is None
    with tg.detect_anomaly():
        node = x.exp().grad_fn
    assert node._creation_stack[-1].name == "exp"  # the op function
    assert any(frame.name == "test_creation_stacks_are_kept_only_while_enabled"
               for frame in node._creation_stack)
    assert node.saved_arrays()  # the stack is bookkeeping, not saved state


def test_node_recorded_before_anomaly_mode_says_its_stack_is_unknown():
    x = tg.tensor([0.0], requires_grad=True)
    loss = tg.log(x).sum()
    with tg.detect_anomaly():
        with pytest.raises(RuntimeError, match="recorded while anomaly detection was off"):
            loss.backward()


def test_set_detect_anomaly_context_and_decorator_restore_state():
    assert not is_anomaly_enabled()
    tg.set_detect_anomaly(True)
    tg.set_detect_anomaly(True)  # idempotent: one observer each
    assert engine._backward_observers.count(engine._backward_observers[0]) == 1
    with tg.detect_anomaly():
        assert is_anomaly_enabled()
    assert is_anomaly_enabled()  # restored to the previous (on) state
    tg.set_detect_anomaly(False)
    assert not is_anomaly_enabled()

    @tg.detect_anomaly()
    def step(x):
        assert is_anomaly_enabled()
        return tg.log(x).sum().backward()

    with pytest.raises(RuntimeError, match="'Log'"):
        step(tg.tensor([0.0], requires_grad=True))
    assert not is_anomaly_enabled()


def test_check_nan_false_records_stacks_but_does_not_raise():
    x = tg.tensor([0.0], requires_grad=True)
    with tg.detect_anomaly(check_nan=False):
        y = tg.log(x)
        y.sum().backward()
    assert y.grad_fn._creation_stack
    assert np.isinf(x.grad.numpy()[0])


def test_finite_gradients_pass_and_match_normal_mode():
    x = tg.randn(4, requires_grad=True)
    with tg.detect_anomaly():
        (x.tanh() * x).sum().backward()
    expected = x.grad.numpy().copy()
    x.grad = None
    (x.tanh() * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), expected)
