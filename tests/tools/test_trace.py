"""trace_backward(): one record per backward step, as a table and as JSON."""
import json

import numpy as np

import tinygen as tg
from tinygen.autograd import engine


def f64(*shape, seed=0):
    rng = np.random.default_rng(seed)
    return tg.tensor(rng.standard_normal(shape), dtype=tg.float64, requires_grad=True)


def test_records_each_step_with_shapes_in_engine_order():
    x, y = f64(3), f64(3, seed=1)
    z = (x * y + x.exp()).sum()
    with tg.trace_backward() as trace:
        z.backward()
    assert [r.op for r in trace.records] == ["Sum", "Add", "Mul", "Exp"]
    assert [r.step for r in trace.records] == [1, 2, 3, 4]
    first = trace.records[0]
    assert first.grad_outputs == [((), "float64")]          # the incoming gradient
    assert first.grad_inputs == [((3,), "float64")]         # the produced gradient
    assert trace.records[2].grad_inputs == [((3,), "float64"), ((3,), "float64")]
    assert all(r.seconds >= 0 for r in trace.records)
    assert trace.total_seconds == sum(r.seconds for r in trace.records)


def test_table_shows_broadcast_reduction_and_unneeded_inputs():
    w = f64(4, 3)
    b = tg.tensor(np.zeros(3), dtype=tg.float64, requires_grad=True)
    c = tg.tensor(np.ones(3), dtype=tg.float64)  # no grad wanted
    with tg.trace_backward() as trace:
        ((w + b) * c).sum().backward()
    table = trace.table(timings=False)
    lines = table.splitlines()
    assert lines[0].split() == ["step", "op", "incoming", "grad", "produced", "grads"]
    assert "(4, 3); (4, 3)->(3,)" in table         # Add's gradient for b is summed to (3,)
    assert "(4, 3); -" in table                     # Mul produced nothing for c
    assert "ms" not in lines[0]
    timed = str(trace)
    assert timed.splitlines()[0].split()[-1] == "ms"
    assert timed.splitlines()[-1].startswith("3 steps, ")


def test_to_json_round_trips():
    x = f64(2, 2)
    with tg.trace_backward() as trace:
        (x @ x).tanh().sum().backward()
    data = json.loads(trace.to_json())
    assert [s["op"] for s in data["steps"]] == ["Sum", "Tanh", "MatMul"]
    matmul = data["steps"][2]
    assert matmul["grad_outputs"] == [{"shape": [2, 2], "dtype": "float64"}]
    assert matmul["grad_inputs"] == [{"shape": [2, 2], "dtype": "float64"}] * 2
    assert matmul["input_shapes"] == [[2, 2], [2, 2]]
    assert data["total_seconds"] >= 0


def test_only_backwards_inside_the_context_are_recorded_and_the_observer_is_removed():
    x = f64(3)
    before = list(engine._backward_observers)
    with tg.trace_backward() as trace:
        pass
    (x * 2).sum().backward()
    assert trace.records == []
    assert engine._backward_observers == before
    try:
        with tg.trace_backward():
            raise KeyError("boom")
    except KeyError:
        pass
    assert engine._backward_observers == before


def test_double_backward_is_traced_too():
    x = f64(3)
    with tg.trace_backward() as trace:
        (g,) = tg.grad((x ** 3).sum(), x, create_graph=True)
        first = len(trace.records)
        g.sum().backward()
    assert [r.op for r in trace.records[:first]] == ["Sum", "PowConstant"]
    assert len(trace.records) > first  # the gradient's own graph ran backward
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.numpy())


def test_nested_traces_both_record():
    x = f64(3)
    with tg.trace_backward() as outer:
        with tg.trace_backward() as inner:
            x.exp().sum().backward()
    assert [r.op for r in outer.records] == [r.op for r in inner.records] == ["Sum", "Exp"]
    assert repr(outer) == "<BackwardTrace: 2 steps>"
