"""Progress bars for long work in the terminal (tqdm), drawn so that a failure reads cleanly.

:func:`progress_bar` is ``tqdm`` with two differences that matter when a command fails: the bar appears only once
the work has run for ``delay`` seconds (an input that fails at once prints its error alone, not a ``0/1`` bar
above it), and a bar interrupted by an exception is cleared rather than left on screen (``leave=False``), so the
command's ``error:`` line is the last thing the user reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

#: Seconds before a bar is first drawn.
DELAY = 0.5


class _Bar:
    """Iterates ``iterable`` and advances ``bar`` after each item; anything else goes to the tqdm bar.

    Not tqdm's own iterator: when the loop body raises, Python closes that iterator as the exception leaves the
    loop, and tqdm then finishes the bar on screen before :func:`progress_bar` can clear it.
    """

    def __init__(self, bar: tqdm, iterable: Iterable | None) -> None:
        self._bar, self._iterable = bar, iterable

    def __iter__(self) -> Iterator:
        for item in self._iterable:
            yield item
            self._bar.update(1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bar, name)


@contextmanager
def progress_bar(iterable: Iterable | None = None, *, delay: float = DELAY, **kwargs: Any) -> Iterator[Any]:
    """A tqdm bar over ``iterable`` (or with ``total=``) that is cleared if the block raises.

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate (``for x in bar``); omit it and call ``bar.update`` with ``total=`` instead.
    delay : float
        Seconds before the bar is first drawn.
    **kwargs
        Passed to ``tqdm`` (``desc``, ``unit``, ``total``, ``disable``...).
    """
    if iterable is not None and "total" not in kwargs and hasattr(iterable, "__len__"):
        kwargs["total"] = len(iterable)
    bar = tqdm(delay=delay, **kwargs)
    try:
        yield _Bar(bar, iterable)
    except BaseException:
        bar.leave = False  # the error message, not a half-finished bar, is what stays on screen
        raise
    finally:
        bar.close()
