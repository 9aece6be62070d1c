"""``trace_backward()``: watch the engine run, one backward step at a time.

    with tg.trace_backward() as trace:
        loss.backward()
    print(trace)            # a table: step, op, incoming gradient, produced gradients, time
    trace.to_json()         # the same, for a notebook or a plot

A step is one node's backward: it receives the gradient of the loss with
respect to the node's output(s) (the *incoming* gradient) and produces one
gradient per input.  When a produced gradient has the broadcast shape rather
than the input's, the table shows ``(4, 3)->(3,)``: the engine sums it back to
the input's shape (broadcasting is undone there, in one place).

The trace sees every backward that runs while it is open, in any thread.
"""
import json
from dataclasses import dataclass

from . import engine


@dataclass
class BackwardRecord:
    step: int
    op: str
    grad_outputs: list      # [(shape, dtype)] incoming, one per node output
    grad_inputs: list       # [(shape, dtype) or None] produced, one per node input
    input_shapes: list      # the inputs' own shapes (a produced gradient is summed to these)
    seconds: float


def _meta(t):
    return (tuple(t.shape), str(t.dtype))


def _shape(shape):
    return str(tuple(shape))


class BackwardTrace:
    """Records of the backward steps seen while the context was open."""

    def __init__(self):
        self.records = []

    # --- the observer the engine calls ---------------------------------------------
    def _observe(self, node, grads_out, grads_in, seconds):
        self.records.append(BackwardRecord(
            step=len(self.records) + 1,
            op=node.name,
            grad_outputs=[_meta(g) for g in grads_out],
            grad_inputs=[None if g is None else _meta(g) for g in grads_in],
            input_shapes=[tuple(shape) for shape, _ in node.input_meta],
            seconds=seconds,
        ))

    def __enter__(self):
        engine._backward_observers.append(self._observe)
        return self

    def __exit__(self, *exc):
        engine._backward_observers.remove(self._observe)
        return False

    # --- views -------------------------------------------------------------------
    @property
    def total_seconds(self):
        return sum(r.seconds for r in self.records)

    def table(self, timings=True):
        """The records as a text table (``timings=False`` for reproducible output)."""
        rows = []
        for r in self.records:
            produced = []
            for meta, own in zip(r.grad_inputs, r.input_shapes):
                if meta is None:
                    produced.append("-")
                elif tuple(meta[0]) != own:
                    produced.append(f"{_shape(meta[0])}->{_shape(own)}")
                else:
                    produced.append(_shape(meta[0]))
            row = [str(r.step), r.op, "; ".join(_shape(s) for s, _ in r.grad_outputs),
                   "; ".join(produced)]
            if timings:
                row.append(f"{r.seconds * 1e3:.3f}")
            rows.append(row)
        header = ["step", "op", "incoming grad", "produced grads"]
        if timings:
            header.append("ms")
        widths = [max(len(x) for x in column) for column in zip(header, *rows)]
        right = {0, 4}  # numbers align right

        def line(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        lines = [line(header), line(["-" * w for w in widths])]
        lines += [line(row) for row in rows]
        if timings:
            lines.append(f"{len(self.records)} steps, "
                         f"{self.total_seconds * 1e3:.3f} ms in backward functions")
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def __repr__(self):
        return f"<BackwardTrace: {len(self.records)} steps>"

    def to_dicts(self):
        """The records as plain dicts: shapes as lists, a gradient as {shape, dtype}."""
        def grad(meta):
            return None if meta is None else {"shape": list(meta[0]), "dtype": meta[1]}

        return [{"step": r.step, "op": r.op,
                 "grad_outputs": [grad(m) for m in r.grad_outputs],
                 "grad_inputs": [grad(m) for m in r.grad_inputs],
                 "input_shapes": [list(s) for s in r.input_shapes],
                 "seconds": r.seconds} for r in self.records]

    def to_json(self, indent=2):
        """The records as JSON (shapes as lists, None as null)."""
        return json.dumps({"steps": self.to_dicts(), "total_seconds": self.total_seconds},
                          indent=indent)


def trace_backward():
    """Context manager recording every backward step (see the module docstring)."""
    return BackwardTrace()
