"""Progress bars: a command that fails mid-way leaves its error, not a half-drawn bar, as the last thing shown
(``disable=False``: the test run sets TQDM_DISABLE)."""

from __future__ import annotations

import io

import pytest

from explorer.progress import progress_bar


def last_screen_line(text: str) -> str:
    """What a terminal shows on the last line after carriage returns have overwritten it."""
    return text.split("\n")[-1].split("\r")[-1].strip()


def test_a_bar_interrupted_by_an_error_is_cleared():
    out = io.StringIO()
    with (
        pytest.raises(RuntimeError),
        progress_bar(range(10), desc="work", delay=0, file=out, disable=False) as bar,
    ):
        for i in bar:
            if i == 3:
                raise RuntimeError("boom")
    assert "work" in out.getvalue()  # it was drawn while working
    assert last_screen_line(out.getvalue()) == ""  # and wiped when the error came


def test_a_finished_bar_stays_and_a_quick_failure_draws_none():
    done = io.StringIO()
    with progress_bar(range(3), desc="work", delay=0, file=done, disable=False) as bar:
        for _ in bar:
            pass
    assert "3/3" in done.getvalue().splitlines()[-1]

    quick = io.StringIO()
    with pytest.raises(ValueError), progress_bar(range(3), desc="work", file=quick, disable=False) as bar:
        for _ in bar:
            raise ValueError("bad input")
    assert quick.getvalue() == ""  # failed before the bar's delay: nothing drawn at all
