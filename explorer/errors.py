"""The one exception type users see: a message that names the bad value, the file or id, and the fix."""

from __future__ import annotations


class ExplorerError(Exception):
    """An error caused by input the user can fix.

    The command line prints ``str(err)`` on one line and exits with code 2; the app shows it as a
    message. Write the message as: what is wrong, where (file, object id, column), and what to do.

    Examples
    --------
    >>> raise ExplorerError("cutouts.fits: HDU 3 has shape (64, 32), expected (64, 64); "
    ...                     "resample the cutouts to one size or ingest them as separate image sets")
    """


class WorkspaceError(ExplorerError):
    """A workspace folder is missing, incomplete, or lacks a derived product (embeddings, map...)."""


class DataError(ExplorerError):
    """Input data (a catalogue, cutouts, light curves) cannot be read or is inconsistent."""


class ModelError(ExplorerError):
    """A checkpoint or encoder cannot be loaded or does not fit the data."""
