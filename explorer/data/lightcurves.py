"""Light curves in long form (``id, time, mag|flux, err, band``): validation and the columnar store.

A workspace keeps its light curves as Parquet parts under ``lightcurves/`` (one part per ingest or simulation
run), sorted by id then time. :class:`LightCurveStore` reads them once, lazily, and hands out one object's curve
or many objects' curves by id.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.errors import DataError, WorkspaceError

VALUE_COLUMNS = ("mag", "flux")
ERROR_ALIASES = ("err", "magerr", "mag_err", "fluxerr", "flux_err", "sigma", "e_mag")
TIME_ALIASES = ("time", "mjd", "jd", "hjd", "bjd", "t")
BAND_ALIASES = ("band", "filter", "passband", "filtercode")


def _pick(columns: Sequence[str], aliases: Sequence[str]) -> str | None:
    lower = {c.lower(): c for c in columns}
    return next((lower[a] for a in aliases if a in lower), None)


#: Magnitudes beyond this, or errors above :data:`MAX_MAG_ERR`, are survey placeholders for "no measurement"
#: (SDSS writes 99.99 with an error of 99.999; nothing in the sky is fainter than ~35 or brighter than -30).
MAX_ABS_MAG = 50.0
MAX_MAG_ERR = 10.0


def normalise_lightcurves(df: pd.DataFrame, source: str, *, default_band: str | None = None,
                          known_bands: Sequence[str] | None = None) -> pd.DataFrame:
    """Check a long-form light-curve table and bring it to ``id, time, mag|flux, err, band``.

    Column names are matched case-insensitively with common aliases (``mjd``, ``magerr``, ``filter`` ...).
    Rows with a NaN time or value are dropped with a warning, and so are magnitudes that are placeholders for no
    measurement (:data:`MAX_ABS_MAG`, :data:`MAX_MAG_ERR`); exact duplicate rows are dropped with a warning.

    Parameters
    ----------
    df : DataFrame
        The table as read.
    source : str
        The file it came from, for error messages.
    default_band : str, optional
        Band to use when the table has no band column (a single-band survey).
    known_bands : sequence of str, optional
        If given, any other band is an error naming it.
    """
    cols = list(df.columns)
    id_col = _pick(cols, ("id", "object_id", "objectid", "oid", "source_id"))
    time_col = _pick(cols, TIME_ALIASES)
    value_col = _pick(cols, VALUE_COLUMNS)
    err_col = _pick(cols, ERROR_ALIASES)
    band_col = _pick(cols, BAND_ALIASES)
    missing = [n for n, c in (("id", id_col), ("time", time_col), ("mag or flux", value_col)) if c is None]
    if missing:
        raise DataError(f"{source}: light-curve table lacks column(s) {', '.join(missing)} "
                        f"(has {cols}); name them id, time, mag|flux, err, band")
    value_name = "flux" if value_col.lower() == "flux" else "mag"
    out = pd.DataFrame({"id": df[id_col].astype(str).to_numpy(dtype=object)})
    out["time"] = _numeric(df[time_col], source, time_col, np.float64)
    out[value_name] = _numeric(df[value_col], source, value_col, np.float32)
    out["err"] = _numeric(df[err_col], source, err_col, np.float32) if err_col else np.float32(np.nan)
    if band_col is not None:
        out["band"] = df[band_col].astype(str).to_numpy(dtype=object)
    elif default_band is not None:
        out["band"] = default_band
    else:
        raise DataError(f"{source}: light-curve table has no band column; add one or pass a default band")
    if known_bands is not None:
        unknown = sorted(set(out["band"]) - set(known_bands))
        if unknown:
            raise DataError(f"{source}: unknown band(s) {unknown}; expected one of {list(known_bands)}")
    bad = ~np.isfinite(out["time"]) | ~np.isfinite(out[value_name])
    if bad.any():
        warnings.warn(f"{source}: dropped {int(bad.sum())} rows with NaN/inf time or {value_name}", stacklevel=2)
        out = out[~bad.to_numpy()]
    if value_name == "mag":
        placeholder = (out["mag"].abs() > MAX_ABS_MAG) | (out["err"] > MAX_MAG_ERR)
        if placeholder.any():
            warnings.warn(f"{source}: dropped {int(placeholder.sum())} rows whose magnitude or error says there is "
                          f"no measurement (|mag| > {MAX_ABS_MAG:g} or err > {MAX_MAG_ERR:g}, e.g. SDSS's 99.99)",
                          stacklevel=2)
            out = out[~placeholder.to_numpy()]
    dups = out.duplicated()
    if dups.any():
        warnings.warn(f"{source}: dropped {int(dups.sum())} duplicate rows", stacklevel=2)
        out = out[~dups.to_numpy()]
    if out.empty:
        raise DataError(f"{source}: no usable light-curve points (empty, or every time/{value_name} is NaN)")
    return out.sort_values(["id", "time"], kind="stable").reset_index(drop=True)


def _numeric(col: pd.Series, source: str, name: str, dtype) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna() & col.notna()
    if bad.any():
        first = col[bad].iloc[0]
        raise DataError(f"{source}: column {name!r} has non-numeric value {first!r} "
                        f"(row {int(np.flatnonzero(bad.to_numpy())[0])}); fix or remove that row")
    return values.to_numpy(dtype=dtype)


class LightCurveStore:
    """All light curves of a workspace, read lazily from its Parquet parts.

    Parameters
    ----------
    path : Path
        The ``lightcurves/`` folder of a workspace.
    parts : list of str, optional
        The part files to read (the workspace manifest lists them, so a part whose ingest never completed is
        ignored); default every ``part-*.parquet`` in ``path``.
    """

    def __init__(self, path: Path, parts: list[str] | None = None):
        self.path = Path(path)
        self.parts = parts
        self._table: pd.DataFrame | None = None
        self._spans: pd.DataFrame | None = None

    @staticmethod
    def write_part(out: Path, df: pd.DataFrame, provenance: dict | None = None) -> Path:
        """Write one normalised long-form table as the part file ``out`` (its provenance beside it)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(out, index=False)
        out.with_suffix(".json").write_text(json.dumps(provenance or {}, indent=2))
        return out

    def _load(self) -> pd.DataFrame:
        if self._table is None:
            parts = (sorted(self.path.glob("part-*.parquet")) if self.parts is None
                     else [self.path / p for p in self.parts])
            if not parts:
                raise WorkspaceError(f"{self.path}: the workspace has no light curves")
            try:
                frames = [pd.read_parquet(p) for p in parts]
            except (OSError, ValueError) as err:
                raise WorkspaceError(f"{self.path}: light curves unreadable ({err})") from err
            table = pd.concat(frames, ignore_index=True).sort_values(["id", "time"], kind="stable")
            table["id"] = table["id"].astype(object)
            self._table = table.reset_index(drop=True)
            ids = self._table["id"].to_numpy()
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
            stops = np.r_[starts[1:], len(ids)]
            self._spans = pd.DataFrame({"start": starts, "stop": stops}, index=pd.Index(ids[starts], name="id"))
        return self._table

    @property
    def table(self) -> pd.DataFrame:
        """Every point of every light curve (long form)."""
        return self._load()

    @property
    def ids(self) -> np.ndarray:
        """Ids of objects that have a light curve."""
        self._load()
        return self._spans.index.to_numpy()

    @property
    def value_column(self) -> str:
        """``"mag"`` or ``"flux"``."""
        return "flux" if "flux" in self._load().columns else "mag"

    @property
    def bands(self) -> list[str]:
        """Sorted names of the bands that occur in the light curves."""
        return sorted(self._load()["band"].unique().tolist())

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, object_id: str) -> pd.DataFrame:
        """One object's light curve; :class:`DataError` if it has none."""
        return self.get_many([object_id])

    def get_many(self, ids: Sequence[str]) -> pd.DataFrame:
        """The light curves of ``ids`` (long form, in the order given)."""
        table = self._load()
        spans = self._spans.reindex(pd.Index(list(ids)))
        if spans["start"].isna().any():
            missing = spans.index[spans["start"].isna()][0]
            raise DataError(f"object {missing!r} has no light curve in {self.path}")
        rows = np.concatenate([np.arange(a, b) for a, b in spans.astype(int).itertuples(index=False)]
                              or [np.empty(0, int)])
        return table.iloc[rows].reset_index(drop=True)
