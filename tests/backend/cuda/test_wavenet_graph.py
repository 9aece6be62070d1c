"""generate(graph=True): one step's launches with fixed arguments replayed every step
(tinygen.backend.cuda_kernels.wavenet.StepGraph) -- a CUDA graph on a GPU.  The capture
itself needs a GPU and is not run here; what runs without one: the replayed calls on the
emulator (device-resident time moved on by wavenet_advance, the code buffer read as
`previous` and written by the draw, inputs copied in per step) give the codes and rings
of one launch sequence per step bit for bit, and StepGraph's run/capture/launch order
against a stand-in for cupy's stream and graph."""
import numpy as np
import pytest

from tinygen.backend.cuda_kernels import wavenet as cuda_wavenet
from tinygen.backend.cuda_kernels.launch import launch



@pytest.fixture
def launched(monkeypatch):
    names = []

    def spy(name, grid, block, args):
        names.append(name)
        return launch(name, grid, block, args)

    monkeypatch.setattr(cuda_wavenet, "launch", spy)
    return names


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("per_step", [False, True], ids=["cond per sequence", "cond per step"])
def test_replayed_steps_equal_a_launch_sequence_per_step(odd_weights, emulated, rng, launched,
                                                         dtype, per_step):
    """From t = 4 (ring positions depend on t: a time not moved on, or moved twice, puts
    the taps in the wrong slots), a started sequence and a fresh one."""
    weights = odd_weights(rng, dtype)
    n, batch = 7, 2
    uniforms = rng.random((n, batch))
    cond = rng.standard_normal(((n,) if per_step else ()) + (batch, 3, 10)).astype(dtype)
    start = cuda_wavenet.new_ring(weights, batch)
    start[...] = rng.standard_normal(start.shape)  # as if 4 steps had run
    previous = np.array([3, -1])
    results = {}
    for graph in (False, True):
        ring = start.copy()
        launched.clear()
        codes = cuda_wavenet.generate(weights, ring, 4, previous, uniforms, 0.9, cond,
                                      graph=graph)
        results[graph] = codes, ring
        advances = [name for name in launched if name.startswith("wavenet_advance")]
        assert len(advances) == (n if graph else 0)
    for a, b in zip(results[False], results[True]):
        np.testing.assert_array_equal(a, b)


def test_the_environment_variable_turns_the_graph_on(odd_weights, emulated, rng, launched,
                                                    monkeypatch):
    weights = odd_weights(rng)
    uniforms = rng.random((3, 1))
    monkeypatch.delenv(cuda_wavenet.GRAPH_ENV, raising=False)
    cuda_wavenet.generate(weights, cuda_wavenet.new_ring(weights, 1), 0, np.array([-1]),
                          uniforms)
    assert not any(name.startswith("wavenet_advance") for name in launched)
    monkeypatch.setenv(cuda_wavenet.GRAPH_ENV, "1")
    cuda_wavenet.generate(weights, cuda_wavenet.new_ring(weights, 1), 0, np.array([-1]),
                          uniforms)
    assert sum(name.startswith("wavenet_advance") for name in launched) == 3


# --- StepGraph against a stand-in for cupy's streams and graphs ------------------------------
class _Log(list):
    pass


class _FakeEvent:
    def __init__(self, stream):
        self.stream = stream


class _FakeStream:
    def __init__(self, log, name, non_blocking=False):
        self.log, self.name, self.capturing = log, name, None

    def record(self):
        self.log.append(("record", self.name))
        return _FakeEvent(self)

    def wait_event(self, event):
        self.log.append(("wait", self.name, event.stream.name))

    def __enter__(self):
        self.log.append(("enter", self.name))
        return self

    def __exit__(self, *exc):
        self.log.append(("exit", self.name))

    def begin_capture(self):
        self.log.append(("begin_capture", self.name))
        self.capturing = []

    def end_capture(self):
        self.log.append(("end_capture", self.name))
        captured, self.capturing = self.capturing, None
        return _FakeGraph(self.log, captured)


class _FakeGraph:
    def __init__(self, log, calls):
        self.log, self.calls = log, calls

    def launch(self, stream=None):
        self.log.append(("graph_launch", stream.name, tuple(self.calls)))


class _FakeCupy:
    """xp.cuda.Stream / get_current_stream, as StepGraph uses them."""

    def __init__(self):
        self.log = _Log()
        self.current = _FakeStream(self.log, "current")
        outer = self

        class cuda:
            @staticmethod
            def Stream(non_blocking=False):
                return _FakeStream(outer.log, "graph", non_blocking)

            @staticmethod
            def get_current_stream():
                return outer.current

        self.cuda = cuda


def test_step_graph_runs_once_then_captures_once_then_launches():
    xp = _FakeCupy()
    executed = []

    def kernel(name):
        # a launch during capture is recorded into the graph, otherwise it runs
        stream = plan.stream
        (stream.capturing if stream.capturing is not None else executed).append(name)

    plan = cuda_wavenet.StepGraph(xp, [(kernel, ("layers",)), (kernel, ("heads",)),
                                       (kernel, ("advance",))])
    with plan:
        for _ in range(4):
            plan.run()
    assert executed == ["layers", "heads", "advance"]  # step 0 ran (loading the kernels)
    assert plan.runs == 4 and plan.captures == 1
    launches = [entry for entry in xp.log if entry[0] == "graph_launch"]
    assert launches == [("graph_launch", "graph", ("layers", "heads", "advance"))] * 3
    log = [entry[:2] for entry in xp.log]
    # ordered after the current stream's work, and the current stream after the graph's
    assert log[:3] == [("record", "current"), ("wait", "graph"), ("enter", "graph")]
    assert log[-3:] == [("exit", "graph"), ("record", "graph"), ("wait", "current")]
    assert log.count(("begin_capture", "graph")) == 1


def test_step_graph_on_the_emulator_executes_every_run():
    executed = []
    plan = cuda_wavenet.StepGraph(np, [(executed.append, ("step",))])
    with plan:
        for _ in range(3):
            plan.run()
    assert executed == ["step"] * 3 and plan.captures == 0 and plan.stream is None
