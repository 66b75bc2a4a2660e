"""Catalogue readers: CSV, Parquet, FITS tables, VOTable, ECSV (astropy), and the Galaxy Zoo ``galaxy-datasets`` convention."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.data.formats import register_reader
from explorer.errors import DataError


def _astropy_table_to_pandas(path: Path, fmt: str) -> pd.DataFrame:
    from astropy.table import Table

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unit parse warnings from other tools' files
            table = Table.read(path, format=fmt)
    except FileNotFoundError as err:
        raise DataError(f"{path}: no such file") from err
    except Exception as err:  # astropy raises many types for a damaged file
        raise DataError(f"{path}: cannot read as {fmt} ({type(err).__name__}: {err}); "
                        "check the file is complete and in that format") from err
    multi = [c for c in table.colnames if table[c].ndim > 1]
    if multi:
        warnings.warn(f"{path}: skipped multi-dimensional column(s) {multi} (not catalogue values)", stacklevel=3)
        table.remove_columns(multi)
    for name in table.colnames:
        if table[name].dtype.kind == "S":
            table[name] = np.char.decode(table[name], "utf-8", errors="replace")
    df = table.to_pandas()
    if hasattr(table, "mask") and table.has_masked_values:
        df = df.replace({pd.NA: np.nan})
    return df


def _read_pandas(path: Path, reader) -> pd.DataFrame:
    try:
        return reader(path)
    except FileNotFoundError as err:
        raise DataError(f"{path}: no such file") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); re-save the file as UTF-8") from err
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: cannot read ({type(err).__name__}: {err}); check the file is complete") from err


@register_reader("catalog", "csv", extensions=(".csv", ".csv.gz", ".txt"))
def read_csv(path) -> pd.DataFrame:
    """Comma-separated table with a header row."""
    return _read_pandas(Path(path), lambda p: pd.read_csv(p, dtype={"id": str, "id_str": str}))


@register_reader("catalog", "parquet", extensions=(".parquet", ".pq"))
def read_parquet(path) -> pd.DataFrame:
    """Apache Parquet table."""
    return _read_pandas(Path(path), pd.read_parquet)


@register_reader("catalog", "fits", extensions=(".fits", ".fit", ".fits.gz", ".fts"))
def read_fits_table(path) -> pd.DataFrame:
    """FITS binary table (first table HDU), via astropy."""
    return _astropy_table_to_pandas(Path(path), "fits")


@register_reader("catalog", "votable", extensions=(".vot", ".votable", ".xml"))
def read_votable(path) -> pd.DataFrame:
    """IVOA VOTable, via astropy."""
    return _astropy_table_to_pandas(Path(path), "votable")


@register_reader("catalog", "ecsv", extensions=(".ecsv",))
def read_ecsv(path) -> pd.DataFrame:
    """astropy's Enhanced CSV (units and types in a YAML header)."""
    return _astropy_table_to_pandas(Path(path), "ascii.ecsv")


def _looks_like_galaxy_datasets(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() not in (".csv", ".parquet"):
        return False
    try:
        cols = (pd.read_csv(path, nrows=0).columns if path.suffix.lower() == ".csv"
                else pd.read_parquet(path, columns=None).columns[:200])
    except Exception:
        return False
    return {"id_str", "file_loc"} <= set(cols)


@register_reader("catalog", "galaxy-datasets", identifier=_looks_like_galaxy_datasets)
def read_galaxy_datasets(path) -> pd.DataFrame:
    """Galaxy Zoo ``galaxy-datasets`` catalogue: ``id_str`` plus ``file_loc`` (one image file per galaxy)."""
    path = Path(path)
    df = read_csv(path) if path.suffix.lower() == ".csv" else read_parquet(path)
    missing = {"id_str", "file_loc"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: a galaxy-datasets catalogue needs columns id_str and file_loc; missing {sorted(missing)}")
    df = df.rename(columns={"id_str": "id"})
    base = path.parent
    df["file_loc"] = [str(p if Path(p).is_absolute() else (base / p)) for p in df["file_loc"].astype(str)]
    return df
