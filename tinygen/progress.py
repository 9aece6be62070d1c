"""Progress bars for long, otherwise silent work (IWAE evaluation, FD features,
PixelCNN / WaveNet sampling), switched on by whoever runs it:

    with tinygen.progress.shown():           # the runner, `tinygen sample/eval`
        images = model.sample(64, rng)       # draws a bar on stderr

    for lo in progress.steps(range(0, n, batch), "IWAE", unit="batch"):  # inside a model
        ...

Off by default, so library calls, tests and scripts print nothing unless asked. Bars
are tqdm's, on stderr, and only appear for work lasting more than a moment.
"""
import contextlib
import sys

_shown = [False]
# seconds before a bar appears (quick work stays quiet) and between its refreshes
DELAY, MININTERVAL = 1.0, 0.5


@contextlib.contextmanager
def shown(enabled=True):
    """Inside the block, ``steps``/``bar`` draw bars (when ``enabled``)."""
    previous, _shown[0] = _shown[0], bool(enabled)
    try:
        yield
    finally:
        _shown[0] = previous


def is_shown():
    return _shown[0]


class NoBar:
    """A bar that shows nothing (the same calls as tqdm's)."""

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def bar(total, desc, unit="it", show=None, leave=False, delay=None):
    """A tqdm bar of ``total`` steps, or a do-nothing one when not shown: ``show`` None
    follows ``shown``, True / False decide here.  ``leave``: the finished bar stays on
    screen (a training epoch's) instead of being cleared (a moment's work);
    ``delay``: seconds before it appears (None: ``DELAY``)."""
    if not (_shown[0] if show is None else show):
        return NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr,
                leave=leave, mininterval=MININTERVAL, delay=DELAY if delay is None else delay)


def steps(iterable, desc, unit="it", total=None):
    """``iterable``, advancing a bar (when shown) as it is consumed."""
    if not _shown[0]:
        yield from iterable
        return
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with bar(total, desc, unit) as b:
        for item in iterable:
            yield item
            b.update(1)
