"""Anomaly detection: stop backward at the first NaN/Inf gradient and say where it came from.

    with tg.detect_anomaly():
        y = tg.log(x)            # x holds a 0
        y.sum().backward()       # RuntimeError: Function 'Log' returned an Inf ... +
                                 # the stack of the line above
    tg.set_detect_anomaly(True)  # or switch it on for the rest of the program

While it is on, every recorded node keeps the Python stack of the forward call
that created it (``node._creation_stack``), and after each node's backward the
gradients it produced are checked: the first non-finite one raises, naming the
op and showing that stack.  Recording the stacks costs time: a debugging mode.
It is process-wide (not per thread) and nodes recorded while it was off have
no stack to show.
"""
import functools
import os
import traceback

from ..backend import array_module
from . import engine, function

_AUTOGRAD_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

_state = {"enabled": False, "check_nan": True}


def is_anomaly_enabled():
    return _state["enabled"]


def _record_creation_stack(node):
    stack = traceback.extract_stack()
    # Drop the engine's own frames (this observer, Function.apply): the stack
    # should end at the op the user called.
    while stack and stack[-1].filename.startswith(_AUTOGRAD_DIR):
        stack.pop()
    node._creation_stack = stack


def _check_gradients(node, grads_out, grads_in, seconds):
    if not _state["check_nan"]:
        return
    for index, grad in enumerate(grads_in):
        if grad is None:
            continue
        xp = array_module(grad.data)
        finite = xp.isfinite(grad.data)
        if bool(finite.all()):
            continue
        nan = int(xp.isnan(grad.data).sum())
        inf = int(grad.data.size - int(finite.sum()) - nan)
        kinds = " and ".join(k for k, n in (("NaN", nan), ("Inf", inf)) if n)
        shape, dtype = node.input_meta[index]
        raise RuntimeError(
            f"Function '{node.name}' returned {kinds} values in its gradient for input "
            f"{index} (shape {tuple(shape)}, {dtype}): {nan} NaN and {inf} Inf of "
            f"{grad.data.size} values.\n" + creation_report(node)
        )


def creation_report(node):
    """The forward stack that created ``node``, formatted like a traceback."""
    stack = getattr(node, "_creation_stack", None)
    if stack is None:
        return (f"The {node.name} node was recorded while anomaly detection was off, so "
                "the forward call that created it is unknown; enable detect_anomaly() "
                "before the forward pass as well.")
    lines = [f"The forward call that created this {node.name} node (most recent call last):"]
    for frame in stack:  # formatted by hand: the same text on every Python version
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    return "\n".join(lines)


def set_detect_anomaly(mode, check_nan=True):
    """Switch anomaly detection on or off for the whole process."""
    mode = bool(mode)
    _state["check_nan"] = bool(check_nan)
    if mode == _state["enabled"]:
        return
    _state["enabled"] = mode
    if mode:
        function._record_observers.append(_record_creation_stack)
        engine._backward_observers.append(_check_gradients)
    else:
        function._record_observers.remove(_record_creation_stack)
        engine._backward_observers.remove(_check_gradients)


class detect_anomaly:
    """Context manager and decorator turning anomaly detection on, restoring it after."""

    def __init__(self, check_nan=True):
        self.check_nan = check_nan

    def __enter__(self):
        self._previous = (_state["enabled"], _state["check_nan"])
        set_detect_anomaly(True, self.check_nan)
        return self

    def __exit__(self, *exc):
        set_detect_anomaly(*self._previous)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.check_nan):
                return fn(*args, **kwargs)

        return wrapper
