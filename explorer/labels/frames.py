"""Turning rows read from the label database into pandas DataFrames with stable columns and dtypes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: Columns of :meth:`LabelStore.current` and :meth:`LabelStore.changed_since`.
CURRENT_COLUMNS = ("id", "label", "user", "time", "model_version", "map_version", "note", "event_id")
#: Columns of :meth:`LabelStore.history`.
HISTORY_COLUMNS = (
    "event_id",
    "batch",
    "id",
    "label",
    "user",
    "time",
    "model_version",
    "map_version",
    "note",
    "session",
    "undoes_batch",
)

TEXT_COLUMNS = frozenset(("id", "label", "user", "model_version", "map_version", "note", "session"))


def to_frame(rows: Sequence[tuple], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame of ``rows`` with ``time`` as ``datetime64[..., UTC]`` and integer id columns as int64.

    Text columns hold ``str`` values; a missing value (``label`` of an unlabelled object, an absent note)
    is NA (the text dtype is pandas' default for strings, so a column of missing values has it too).
    ``undoes_batch`` is a nullable ``Int64``.
    """
    import pandas as pd

    frame = pd.DataFrame.from_records(list(rows), columns=list(columns))
    text_dtype = pd.Series(["x"]).dtype  # "str" from pandas 3, object before
    if isinstance(text_dtype, pd.StringDtype):
        for name in TEXT_COLUMNS.intersection(frame.columns):
            frame[name] = frame[name].astype(text_dtype)
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601").dt.as_unit("us")
    for name in ("event_id", "batch"):
        if name in frame:
            frame[name] = frame[name].astype("int64")
    if "undoes_batch" in frame:
        frame["undoes_batch"] = frame["undoes_batch"].astype("Int64")
    return frame
