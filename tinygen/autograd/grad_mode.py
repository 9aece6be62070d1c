"""Whether operations record a graph: ``no_grad`` / ``enable_grad``.

The flag is thread-local so a data-loading thread cannot switch off recording
for the training thread.
"""
import functools
import threading

class _State(threading.local):
    enabled = True  # every thread starts with recording on


_state = _State()


def is_grad_enabled():
    return _state.enabled


def set_grad_enabled(mode):
    _state.enabled = bool(mode)


class _GradMode:
    """Context manager and decorator that sets grad mode, restoring it after."""

    mode = True

    def __enter__(self):
        self._previous = is_grad_enabled()
        set_grad_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        set_grad_enabled(self._previous)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Operations inside build no graph (evaluation, optimizer updates)."""

    mode = False


class enable_grad(_GradMode):
    """Re-enable recording inside a ``no_grad`` region."""

    mode = True
