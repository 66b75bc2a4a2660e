"""Reading exported files back the way a user would (pandas, astropy) into comparable pandas frames."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

FORMATS = {"csv": ".csv", "parquet": ".parquet", "fits": ".fits", "votable": ".vot", "ecsv": ".ecsv"}


def read_astropy(path: Path, fmt: str):
    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our own files must read without warnings
        if fmt == "fits":
            return Table.read(path, hdu="OBJECTS")
        return Table.read(path, format={"votable": "votable", "ecsv": "ascii.ecsv"}[fmt])


def astropy_to_frame(table) -> pd.DataFrame:
    """Columns as numpy: floats with NaN for masked, text as ``str`` with ``None`` for masked or empty."""
    out = {}
    for name in table.colnames:
        col = table[name]
        mask = np.asarray(getattr(col, "mask", np.zeros(len(col), bool)), dtype=bool) | np.zeros(
            len(col), bool
        )
        kind = col.dtype.kind
        if kind in "SU":
            values = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(col.data)]
            out[name] = [None if m or v == "" else v for v, m in zip(values, mask, strict=True)]
        elif kind == "f":
            out[name] = np.where(mask, np.nan, np.asarray(col.data, dtype=np.float64))
        else:
            out[name] = np.asarray(col.data)
    return pd.DataFrame(out)


def read_back(path: Path, fmt: str) -> pd.DataFrame:
    """The export at ``path`` as a DataFrame; text missing values are ``None``."""
    if fmt == "csv":
        df = pd.read_csv(path, dtype={"id": str})
    elif fmt == "parquet":
        df = pd.read_parquet(path)
    else:
        return astropy_to_frame(read_astropy(path, fmt))
    for col in df.columns:
        if not (pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col])):
            df[col] = [
                None
                if (v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v == "")
                else str(v)
                for v in df[col].astype(object)
            ]
    return df


def texts(values) -> list:
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
