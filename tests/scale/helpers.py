"""Test helpers for the scale tests: a partition function that kills its own Dask worker the first time it runs."""

from __future__ import annotations

import os
import signal
from pathlib import Path


class KillOnce:
    """Wrap a partition function: the first call anywhere (marked by creating ``marker``) SIGKILLs its process.

    Picklable, so Dask ships it to the workers; the worker running the first call dies mid-run like a node lost
    to the out-of-memory killer, and the scheduler must rerun its tasks elsewhere.
    """

    def __init__(self, fn, marker: Path):
        self.fn = fn
        self.marker = str(marker)

    def __call__(self, *args, **kwargs):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return self.fn(*args, **kwargs)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable: the process was killed")  # pragma: no cover
