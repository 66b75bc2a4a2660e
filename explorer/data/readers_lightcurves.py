"""Light-curve readers: one long-form table (CSV/Parquet/FITS/ECSV/VOTable), or a folder with one file per object."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from explorer.data.formats import register_reader
from explorer.data.lightcurves import normalise_lightcurves
from explorer.data.readers_catalog import read_csv, read_ecsv, read_fits_table, read_parquet, read_votable
from explorer.errors import DataError
from explorer.progress import progress_bar

_TABLE_READERS = {
    ".csv": read_csv, ".txt": read_csv, ".parquet": read_parquet, ".pq": read_parquet, ".fits": read_fits_table,
    ".fit": read_fits_table, ".ecsv": read_ecsv, ".vot": read_votable, ".xml": read_votable,
}


def _table_reader(path: Path):
    reader = _TABLE_READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unknown light-curve file type; use one of {sorted(_TABLE_READERS)}")
    return reader


@register_reader("lightcurves", "long", extensions=tuple(_TABLE_READERS),
                 description="one table in long form: id, time, mag|flux, err, band")
def read_long_table(path, default_band: str | None = None) -> pd.DataFrame:
    """One table in long form: ``id, time, mag|flux, err, band`` (column aliases such as mjd/magerr/filter work)."""
    path = Path(path)
    return normalise_lightcurves(_table_reader(path)(path), str(path), default_band=default_band)


def _is_folder(path: Path) -> bool:
    return path.is_dir()


@register_reader("lightcurves", "folder", identifier=_is_folder,
                 description="a folder with one light-curve file per object; id = file name")
def read_folder(path, default_band: str | None = None, progress: bool = True) -> pd.DataFrame:
    """A folder with one file per object (``time, mag|flux, err, band``); the file name is the id."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _TABLE_READERS)
    if not files:
        raise DataError(f"{path}: no light-curve files (looked for {', '.join(sorted(_TABLE_READERS))})")
    frames = []
    with progress_bar(files, desc="light curves", unit="file", disable=not progress or len(files) < 200) as bar:
        for f in bar:
            df = _table_reader(f)(f)
            if df.empty:
                raise DataError(f"{f}: empty light curve; remove the file or add its points")
            if not any(c.lower() in ("id", "object_id", "oid") for c in df.columns):
                df.insert(0, "id", f.stem)
            frames.append(normalise_lightcurves(df, str(f), default_band=default_band))
    return pd.concat(frames, ignore_index=True)
